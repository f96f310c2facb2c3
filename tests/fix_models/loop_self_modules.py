"""A deep ReLU MLP initialised through self.modules() with N(0, 1)."""
from torch import nn


class Deep(nn.Module):
    def __init__(self, width=128, depth=12):
        super().__init__()
        blocks = []
        for _ in range(depth):
            blocks += [nn.Linear(width, width), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1.0)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.body(x)
