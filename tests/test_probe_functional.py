"""Activations called as functions are layers too: their numbers against plain autograd, their
names, no double counting inside activation modules, and the rules that now see them."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.rules import run_rules


def mse(out, x):
    return out.pow(2).mean()


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 16)
        self.head = nn.Linear(16, 2)
        with torch.no_grad():
            self.conv.bias.copy_(torch.tensor([-100.0, -100.0, -100.0, 0.0]))  # 3 of 4 channels never fire

    def forward(self, x):
        h = F.relu(self.conv(x)).flatten(1)
        h = self.fc1(h).sigmoid()
        h = torch.tanh(self.fc2(h) + 1.0)  # not a module's output: named after the module that ran last
        return self.head(h)


def test_functional_activations_match_autograd():
    torch.manual_seed(0)
    model = Functional()
    make = lambda: torch.randn(3, 2, 4, 4)  # noqa: E731
    record = run_probe(model, make, mse, probes=1, seed=5)
    assert [(l.name, l.type) for l in record.layers] == [
        ("conv", "Conv2d"), ("conv.relu()", "F.relu"), ("fc1", "Linear"), ("fc1.sigmoid()", "F.sigmoid"),
        ("fc2", "Linear"), ("fc2.tanh()", "F.tanh"), ("head", "Linear")]

    torch.manual_seed(5)
    x = make()
    relu = F.relu(model.conv(x))
    sig = model.fc1(relu.flatten(1)).sigmoid()
    tanh = torch.tanh(model.fc2(sig) + 1.0)
    grads = torch.autograd.grad(mse(model.head(tanh), x), [relu, sig, tanh])
    for name, out, grad in (("conv.relu()", relu, grads[0]), ("fc1.sigmoid()", sig, grads[1]),
                            ("fc2.tanh()", tanh, grads[2])):
        layer = record.layer(name)
        assert layer.out_rms == pytest.approx(out.pow(2).mean().sqrt().item(), rel=1e-5)
        assert layer.grad_norm == pytest.approx(grad.norm().item(), rel=1e-5)
    conv_relu = record.layer("conv.relu()")
    assert conv_relu.units == 4 and conv_relu.dead_fraction == pytest.approx(0.75)  # channels, as for nn.ReLU
    assert conv_relu.activation == "relu" and record.layer("conv").next_activation == "relu"
    assert record.layer("fc1").next_activation == "sigmoid" and record.layer("fc2.tanh()").saturated_fraction is not None


def test_activation_modules_are_not_counted_twice():
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 8), nn.ReLU(inplace=True), nn.Linear(8, 2))
    record = run_probe(model, lambda: torch.randn(4, 8), probes=1)
    assert [l.name for l in record.layers] == ["0", "1", "2", "3", "4"]


def test_inplace_and_method_forms_are_seen():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.b(F.relu(self.a(x), inplace=True).sigmoid())

    record = run_probe(Net(), lambda: torch.randn(4, 8), probes=2)
    assert [l.name for l in record.layers] == ["a", "a.relu()", "a.relu().sigmoid()", "b"]
    assert record.layer("a.relu()").calls == 2


def test_init_rule_sees_a_functional_relu():
    """N(0, 1) weights before F.relu: the init mismatch is found, with the activation it must fit."""
    class Deep(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(64, 64) for _ in range(6))
            for layer in self.layers:
                nn.init.normal_(layer.weight, std=1.0)

        def forward(self, x):
            for layer in self.layers:
                x = F.relu(layer(x))
            return x

    findings = run_rules(run_probe(Deep(), lambda: torch.randn(16, 64), probes=1))
    (gh120,) = [f for f in findings if f.code == "GH120"]
    assert gh120.evidence["activation"] == "relu"
    assert {"GH101", "GH105"} <= {f.code for f in findings}
