"""The init classifier against the analytic variances of torch.nn.init's schemes."""
import pytest
import torch
from torch import nn

from gradcheck_tool.probe.init_scheme import classify, fans


def _weight(shape, init=None):
    torch.manual_seed(0)
    w = torch.empty(shape)
    if init is None:  # PyTorch's layer default
        nn.init.kaiming_uniform_(w, a=5**0.5)
    else:
        init(w)
    return w


@pytest.mark.parametrize("shape,init,expected", [
    ((256, 128), None, "pytorch-default"),
    ((64, 32, 3, 3), None, "pytorch-default"),
    ((256, 128), lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"), "kaiming-normal"),
    ((256, 128), lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"), "kaiming-uniform"),
    ((256, 128), lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), "kaiming-fan-out-normal"),
    ((256, 128), nn.init.xavier_normal_, "xavier-normal"),
    ((256, 128), nn.init.xavier_uniform_, "xavier-uniform"),
    ((300, 100), lambda w: nn.init.kaiming_normal_(w, nonlinearity="linear"), "lecun-normal"),
    ((128, 256), nn.init.orthogonal_, "orthogonal(gain=1)"),
    ((128, 64), nn.init.zeros_, "zeros"),
    ((128, 64), lambda w: nn.init.normal_(w, 0.0, 1.0), "normal(std=1)"),
    ((768, 768), lambda w: nn.init.normal_(w, 0.0, 0.02), "normal(std=0.02)"),
])
def test_classify(shape, init, expected):
    stats = classify(_weight(shape, init))
    assert stats.scheme == expected


def test_gain2_is_var_times_fan_in():
    w = _weight((200, 100), lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
    stats = classify(w)
    assert (stats.fan_in, stats.fan_out) == (100, 200)
    assert stats.gain2 == pytest.approx(2.0, rel=0.05)
    assert fans(torch.empty(8, 4, 3, 5)) == (60, 120)
