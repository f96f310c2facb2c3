"""An MLP trained with Adam at lr=5e-3 and no weight decay: the weights' norms keep growing (GH143)."""
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, width=128, depth=4):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.body(x))


def example_inputs():
    return torch.randn(32, 128)


def train(model, data, epochs=10):
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)  # tuned on the small set
    for _ in range(epochs):
        for x, y in data:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
