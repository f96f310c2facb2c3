"""A small model that trips several rules, sharded by the 2-process gloo test (tests/test_sharded_probe.py):
a deep sigmoid stack (GH102), dead ReLU units, a residual BatchNorm branch, a tied embedding/head
(shared by two modules: FSDP2's root unit holds it), a detached branch (GH112 cut), an unused
parameter (GH112 unused), functional activations, and rows that split unevenly over 2 ranks."""
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.bn = nn.BatchNorm1d(width)

    def forward(self, x):
        return x + self.bn(self.fc(x))


class Rich(nn.Module):
    def __init__(self, vocab=37, width=33, depth=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.block = Block(width)
        self.body = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.Sigmoid())])
        self.dead = nn.Linear(width, width)
        with torch.no_grad():
            self.dead.bias[:20] = -100.0
        self.side = nn.Linear(width, width)
        self.spare = nn.Parameter(torch.zeros(3))
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens):
        h = self.block(self.embed(tokens).mean(dim=1))
        h = self.body(h)
        h = F.relu(self.dead(h)) + torch.tanh(self.side(h).detach())
        return self.head(h)


def build_model():
    return Rich()


def example_inputs():
    return torch.randint(0, 37, (32, 5))
