"""A ten-layer sigmoid tower: the classic vanishing-gradient network (Glorot & Bengio 2010).

    gradhealth scan examples/deep_sigmoid.py
"""
import torch
import torch.nn as nn


class SigmoidTower(nn.Module):
    def __init__(self, width=64, depth=10):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.body(x))


def example_inputs():
    return torch.randn(32, 64)


def loss_fn(logits, inputs):
    targets = torch.arange(logits.shape[0]) % logits.shape[1]
    return nn.functional.cross_entropy(logits, targets)


if __name__ == "__main__":
    model = SigmoidTower()
    print(model)
