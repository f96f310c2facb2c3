"""Attribute layers drawn from N(0, 1) in place through .data: the first one explodes the signal."""
import torch.nn as nn


class AttrNormalMLP(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.fc.weight.data.normal_(0, 1)  # unscaled: ~sqrt(width / 2) per layer
        self.act = nn.ReLU()
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        return self.out(self.act(self.fc(x)))
