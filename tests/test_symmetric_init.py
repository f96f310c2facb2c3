"""GH121: the probe's identical-unit count checked against plain autograd, and the rule on real models."""
import torch
from torch import nn

from gradcheck_tool.findings import Severity
from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.probe.symmetry import unit_symmetry
from gradcheck_tool.rules import run_rules


def _constant_mlp(value=0.01):
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, value)
            nn.init.zeros_(m.bias)
    return model


def _probe(model, shape=(32, 32)):
    return run_probe(model, lambda: torch.randn(*shape))


def _codes(record, code="GH121"):
    return [f for f in run_rules(record, [code])]


def test_constant_hidden_layers_train_as_one_unit_as_autograd_shows():
    model = _constant_mlp()
    record = _probe(model)
    by_name = {s.name: s for s in record.symmetry}
    assert set(by_name) == {"0", "2"}  # the output layer "4" is told apart by its targets
    assert (by_name["0"].units, by_name["0"].learning_units, by_name["0"].constant) == (64, 1, True)
    assert (by_name["2"].units, by_name["2"].learning_units) == (48, 1)
    # Plain autograd: the hidden rows' gradients are identical, the output rows' are not.
    torch.manual_seed(0)
    x = torch.randn(32, 32)
    nn.functional.cross_entropy(model(x), torch.randint(0, 10, (32,))).backward()
    g0, g4 = model[0].weight.grad, model[4].weight.grad
    assert torch.allclose(g0, g0[:1].expand_as(g0), rtol=1e-5, atol=0) and g0.abs().max() > 0
    assert not torch.allclose(g4, g4[:1].expand_as(g4))
    findings = _codes(record)
    assert {f.module for f in findings} == {"0", "2"} and all(f.severity is Severity.ERROR for f in findings)


def test_copied_rows_count_exactly():
    torch.manual_seed(0)
    hidden, out = nn.Linear(16, 8), nn.Linear(8, 4)
    with torch.no_grad():
        hidden.weight[1:4] = hidden.weight[0]  # units 0-3 identical in and ...
        hidden.bias[1:4] = hidden.bias[0]
        out.weight[:, 1:4] = out.weight[:, :1]  # ... out: stuck together
        hidden.weight[6] = hidden.weight[5]  # units 5 and 6 identical in, different out: not stuck
        hidden.bias[6] = hidden.bias[5]
    model = nn.Sequential(hidden, nn.Tanh(), out)
    model(torch.randn(32, 16)).square().sum().backward()
    stats = unit_symmetry("0", hidden)
    assert (stats.units, stats.distinct_weights, stats.learning_units, stats.constant) == (8, 4, 5, False)


def test_distinct_rows_cost_nothing_and_report_nothing():
    layer = nn.Linear(64, 64)
    layer(torch.randn(4, 64)).sum().backward()
    assert unit_symmetry("l", layer) is None


def test_zero_init_residual_branch_lora_and_head_stay_quiet():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(32, 128), nn.Linear(128, 32)
            self.lora_a, self.lora_b = nn.Linear(32, 4, bias=False), nn.Linear(4, 32, bias=False)
            self.head = nn.Linear(32, 1000)
            for zero in (self.fc2.weight, self.fc2.bias, self.lora_b.weight):
                nn.init.zeros_(zero)

        def forward(self, x):
            x = x + self.fc2(torch.relu(self.fc1(x))) + self.lora_b(self.lora_a(x))
            return self.head(x)

    record = _probe(Net())
    stats = {s.name: s for s in record.symmetry}
    assert stats["fc2"].distinct_weights == 1 and stats["fc2"].learning_units == 32
    assert stats["lora_b"].learning_units == 32
    assert _codes(record) == []
    head = Net()
    nn.init.zeros_(head.head.weight)  # a zero 1000-class head: most classes are absent from a batch of 32
    assert _codes(_probe(head)) == []


def test_lstm_with_constant_weights_is_found_on_its_gate_units():
    lstm = nn.LSTM(16, 32, batch_first=True)
    for p in lstm.parameters():
        nn.init.constant_(p, 0.05)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = lstm, nn.Linear(32, 5)
            nn.init.constant_(self.head.weight, 0.1)

        def forward(self, x):
            return self.head(self.lstm(x)[0][:, -1])

    (stats,) = _probe(Net(), (8, 12, 16)).symmetry
    assert stats.name == "lstm" and stats.units == 128 and stats.learning_units == 4  # one unit per gate
