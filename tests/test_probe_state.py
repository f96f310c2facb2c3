"""The probe hands the model back exactly as it found it, even when the forward raises."""
import random

import numpy as np
import pytest
import torch
from torch import nn

from gradcheck_tool import scan
from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.probe.engine import run_probe


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2))
    model.eval()
    model[1].train()  # mixed modes must come back as they were
    model[4].bias.requires_grad_(False)
    model[0].weight.grad = torch.full_like(model[0].weight, 3.0)
    return model


def _snapshot(model):
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "grad_ids": [id(p.grad) for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
    }


def _assert_same(before, after):
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["grad_ids"] == after["grad_ids"]
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    assert before["hooks"] == after["hooks"]


def _rng():
    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()


def test_probe_restores_model_and_rng():
    model = _model()
    before, rng = _snapshot(model), _rng()
    grad_enabled = torch.is_grad_enabled()
    with torch.no_grad():
        run_probe(model, lambda: torch.randn(6, 4), probes=3)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled() == grad_enabled
    _assert_same(before, _snapshot(model))
    after = _rng()
    assert torch.equal(rng[0], after[0]) and rng[1] == after[1] and np.array_equal(rng[2], after[2])


def test_probe_restores_everything_when_forward_raises():
    class Flaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 4)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("boom on the second batch")
            return self.fc(x)

    model = nn.Sequential(_model(), Flaky())
    before, rng = _snapshot(model), _rng()
    with pytest.raises(RuntimeError, match="boom"):
        run_probe(model, lambda: torch.randn(6, 4), probes=3)
    _assert_same(before, _snapshot(model))
    assert torch.equal(rng[0], _rng()[0])


def test_no_trainable_parameters_is_a_clear_error():
    model = nn.Linear(3, 3).requires_grad_(False)
    with pytest.raises(GradhealthError, match="no trainable parameters"):
        run_probe(model, lambda: torch.randn(2, 3))


def test_python_api_scan_reports_and_restores():
    model = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(32, 32), nn.Sigmoid())])
    before = _snapshot(model)
    report = scan(model, torch.randn(16, 32))
    assert "GH102" in {f.code for f in report.findings}
    assert report.probes[0].record.batches == 3
    _assert_same(before, _snapshot(model))
