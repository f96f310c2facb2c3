"""GH112 and a zero-initialised classifier head (torchvision's ViT: ``nn.init.zeros_(heads.head.weight)``).

The head gets a gradient, every layer before it gets exactly zero until the first step moves the
head: by design, not a blocked path (the zoo's torchvision ViTs had 70+ such GH112 infos each).
A zero layer in the middle of the network is still reported."""
import torch
from torch import nn

from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.rules import run_rules
from gradcheck_tool.rules.parameters import zero_head


def _gh112(zero):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    nn.init.zeros_(model[zero].weight)
    record = run_probe(model, lambda: torch.randn(16, 16), probes=2, seed=0)
    return record, [f.module for f in run_rules(record, ["GH112"])]


def test_layers_before_a_zero_initialised_head_are_not_reported():
    record, modules = _gh112(zero=4)
    assert zero_head(record) == "4"
    assert modules == []


def test_a_zero_layer_in_the_middle_still_blocks_what_is_before_it():
    record, modules = _gh112(zero=2)
    assert zero_head(record) is None
    assert modules == ["0"]
