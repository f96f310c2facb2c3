"""Glorot init before ReLU, written through `from torch.nn import init`."""
import torch.nn as nn
from torch.nn import init


class AliasInitMLP(nn.Module):
    def __init__(self, width=128, depth=20):
        super().__init__()
        self.layers = nn.ModuleList()
        self.act = nn.ReLU()
        for _ in range(depth):
            layer = nn.Linear(width, width)
            init.xavier_uniform_(layer.weight)  # Glorot: loses sqrt(2) per ReLU
            init.zeros_(layer.bias)
            self.layers.append(layer)

    def forward(self, x):
        for layer in self.layers:
            x = self.act(layer(x))
        return x
