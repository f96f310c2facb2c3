"""A deep ReLU MLP whose layers live in a ModuleList, initialised in a loop with Glorot."""
import torch
from torch import nn


class Deep(nn.Module):
    def __init__(self, width=128, depth=20):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x
