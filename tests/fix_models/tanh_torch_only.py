"""A tanh MLP that imports only torch, with weights of a fixed std whatever the fan-in."""
import torch


class TanhNet(torch.nn.Module):
    def __init__(self, width=64, depth=10):
        super().__init__()
        blocks = []
        for _ in range(depth):
            fc = torch.nn.Linear(width, width)
            torch.nn.init.normal_(fc.weight, std=0.5)
            blocks += [fc, torch.nn.Tanh()]
        self.net = torch.nn.Sequential(*blocks)

    def forward(self, x):
        return self.net(x)
