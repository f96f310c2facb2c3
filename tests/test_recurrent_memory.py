"""GH132: memory length vs the probed sequence length, on analytic profiles and real RNN/GRU/LSTM layers,
and its boundary with GH131 (one report per layer)."""
import pytest
import torch
from torch import nn

from gradcheck_tool.findings import Severity
from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.rules import examples, run_rules
from gradcheck_tool.rules.memory import FP32_EPS, memory_steps


@pytest.mark.parametrize("per_step,steps", [(0.5, 64), (0.63, 100), (0.9, 300)])
def test_memory_is_where_the_gradient_leaves_fp32_resolution(per_step, steps):
    (stats,) = examples.rnn(per_step, steps=steps).recurrent
    # per_step**k >= 2^-23  <=>  k <= log(2^-23) / log(per_step)
    import math

    expected = min(steps, math.floor(math.log(FP32_EPS) / math.log(per_step)) + 1)
    assert memory_steps(stats) == expected


class Classifier(nn.Module):
    def __init__(self, cell, forget_bias=None):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = cell(32, 128, batch_first=True)
        if forget_bias is not None:
            with torch.no_grad():
                self.rnn.bias_ih_l0[128:256].fill_(forget_bias)
                self.rnn.bias_hh_l0[128:256].zero_()
        self.head = nn.Linear(128, 5)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _scan(model, steps):
    record = run_probe(model, lambda: torch.randn(8, steps, 32), probes=1)
    return record, {f.code: f for f in run_rules(record, ["GH131", "GH132"])}


def test_vanilla_rnn_on_long_sequences_is_a_warning_and_fine_on_short_ones():
    record, found = _scan(Classifier(nn.RNN), 256)
    assert set(found) == {"GH132"} and found["GH132"].severity is Severity.WARNING
    (stats,) = record.recurrent
    # The memory read from the probe's per-step gradient, checked against plain autograd.
    x = torch.randn(8, 256, 32, requires_grad=True)
    out = Classifier(nn.RNN).rnn(x)[0][:, -1]  # the same weights (seed 0)
    (grad,) = torch.autograd.grad(out.sum(), x)
    norms = grad.norm(dim=(0, 2)).flip(0)
    direct = 1 + max(k for k, v in enumerate(norms.tolist()) if v >= norms.max() * FP32_EPS)
    assert abs(memory_steps(stats) - direct) <= 3 and 20 <= direct <= 40
    assert found["GH132"].evidence["memory_steps"] == memory_steps(stats)
    _, short = _scan(Classifier(nn.RNN), 32)
    assert short == {}


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_gated_layers_on_their_trained_length_are_quiet_and_information_beyond(cell):
    assert _scan(Classifier(cell), 32)[1] == {}
    _, long = _scan(Classifier(cell), 200)
    assert set(long) == {"GH132"} and long["GH132"].severity is Severity.INFO


def test_fast_decay_is_gh131s_alone():
    _, found = _scan(Classifier(nn.LSTM, forget_bias=-6.0), 128)
    assert set(found) == {"GH131"}
