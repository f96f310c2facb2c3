"""A deep ReLU MLP initialised with self.apply(self._init_weights), Glorot on every Linear."""
from torch import nn


class Deep(nn.Module):
    def __init__(self, width=128, depth=20):
        super().__init__()
        self.body = nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(depth)])
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.body(x)
