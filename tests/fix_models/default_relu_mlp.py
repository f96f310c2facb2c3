"""A deep ReLU MLP left at PyTorch's default init: each layer loses ~sqrt(6) of the signal."""
import torch.nn as nn

WIDTH = 128


class DefaultReLUMLP(nn.Module):
    """Twelve Linear+ReLU blocks, nothing initialised explicitly."""

    def __init__(self, width=WIDTH, depth=12):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers.append(nn.Linear(width, width))  # kaiming_uniform_(a=sqrt(5)) by default
            layers.append(nn.ReLU())
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.body(x))
