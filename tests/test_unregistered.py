"""GH113 on real modules: which autograd leaves the probe finds unregistered, the attribute it names,
their gradient norm against plain autograd, and the optimizer read that sets the severity."""
import textwrap

import pytest
import torch
import torch.nn as nn

from gradcheck_tool import scan
from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.static.analysis.optimizer_params import read_optimizer_params


class InList(nn.Module):
    def __init__(self, container=list):
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.blocks = container([nn.Linear(16, 16), nn.Linear(16, 16)])

    def forward(self, x):
        x = self.inp(x)
        for block in self.blocks:
            x = torch.tanh(block(x))
        return x


class InDict(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(8, 16)
        self.heads = {"a": nn.Linear(16, 2), "b": nn.Linear(16, 3)}
        self.gain = torch.ones(16, requires_grad=True)

    def forward(self, x):
        h = self.trunk(x) * self.gain
        return torch.cat([head(h) for head in self.heads.values()], dim=1)


class Registered(InList):
    def __init__(self):
        super().__init__(nn.ModuleList)


def probe(model, x=None, loss_fn=None):
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)) if x is None else x
    return run_probe(model, lambda: x, loss_fn, probes=2)


@pytest.mark.parametrize("container", [list, tuple])
def test_layers_in_a_plain_list_or_tuple_are_named_by_their_attribute(container):
    (held,) = probe(InList(container)).unregistered
    assert held.holder == "blocks" and held.container == container.__name__ and held.owner_type == "InList"
    assert held.tensors == ("blocks[0].weight", "blocks[0].bias", "blocks[1].weight", "blocks[1].bias")
    assert held.numel == 2 * (16 * 16 + 16) and held.modules == ("Linear", "Linear") and held.site == "blocks[0]"


def test_dict_heads_and_a_plain_tensor_are_both_found():
    found = {h.holder: h for h in probe(InDict()).unregistered}
    assert set(found) == {"heads", "gain"}
    assert found["heads"].tensors == ("heads['a'].weight", "heads['a'].bias", "heads['b'].weight", "heads['b'].bias")
    assert found["gain"].container == "tensor" and found["gain"].tensors == ("gain",)


def test_a_plain_list_of_parameters_gets_parameter_list_advice_and_no_edit():
    model = Registered()
    model.scales = [nn.Parameter(torch.ones(16)) for _ in range(2)]
    original = model.forward
    model.forward = lambda x: original(x) * model.scales[0] * model.scales[1]
    (finding,) = scan(model, torch.randn(4, 8), probes=1, select=["GH113"]).findings
    assert "nn.ParameterList" in finding.fix.message and finding.evidence["registrable"] is False
    assert finding.evidence["tensors"] == ["scales[0]", "scales[1]"]


def test_grad_norm_is_plain_autograd_and_grads_are_given_back():
    torch.manual_seed(0)
    model = InList()
    x = torch.randn(4, 8)
    loss_fn = lambda out, inputs: out.pow(2).mean()  # noqa: E731
    (held,) = probe(model, x, loss_fn).unregistered
    assert all(p.grad is None for block in model.blocks for p in block.parameters())  # restored
    loss_fn(model(x), x).backward()
    expected = sum(float(p.grad.norm()) ** 2 for block in model.blocks for p in block.parameters()) ** 0.5
    assert held.grad_norm == pytest.approx(expected, rel=1e-6)


def test_registered_layers_inputs_that_require_grad_and_loss_parameters_are_not_reported():
    assert probe(Registered()).unregistered == ()
    x = torch.randn(4, 8, requires_grad=True)  # an input that requires grad on purpose
    assert probe(Registered(), x).unregistered == ()
    temperature = nn.Parameter(torch.ones(()))  # the loss's own parameter, not the model's
    assert probe(Registered(), loss_fn=lambda out, inputs: (out / temperature).pow(2).mean()).unregistered == ()


def test_frozen_or_eval_helpers_hidden_in_a_list_are_information_at_most():
    model = Registered()
    model.teacher = [nn.Linear(8, 16).eval()]  # eval mode, still requires grad
    original = model.forward
    model.forward = lambda x: original(x) + model.teacher[0](x)
    (held,) = probe(model).unregistered
    assert held.eval_mode
    report = scan(model, torch.randn(4, 8), probes=1, select=["GH113"])
    assert [f.severity.value for f in report.findings] == ["info"]
    model.teacher[0].requires_grad_(False)  # frozen: not a leaf that requires grad
    assert probe(model).unregistered == ()


def test_severity_follows_the_files_optimizer():
    from gradcheck_tool.rules.registration import UnregisteredParameters
    import dataclasses

    record = probe(InList())
    rule = UnregisteredParameters()
    severity = lambda built: [f.severity.value for f in rule.check(  # noqa: E731
        dataclasses.replace(record, optimizer_from_parameters=built))]
    assert severity(True) == ["error"] and severity(False) == ["warning"] and severity(None) == ["warning"]


@pytest.mark.parametrize("source,expected", [
    ("opt = torch.optim.Adam(model.parameters(), lr=1e-3)", True),
    ("opt = optim.SGD(params=net.parameters(), lr=0.1)", True),
    ("from torch.optim import AdamW\nopt = AdamW(filter(lambda p: p.requires_grad, self.model.parameters()))", True),
    ("opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])", True),
    ("opt = torch.optim.Adam(list(model.parameters()) + list(extra.parameters()))", False),
    ("opt = torch.optim.Adam([{'params': model.parameters()}, {'params': head}])", False),
    ("from torch.optim.lr_scheduler import StepLR\nopt = torch.optim.SGD(model.parameters())\nStepLR(opt, 10)", True),
    ("x = 1", None),
    ("def broken(:", None),
])
def test_read_optimizer_params(source, expected):
    assert read_optimizer_params(textwrap.dedent(source)) is expected


@pytest.mark.slow
def test_cli_points_at_the_list_and_exits_1(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "layers_in_list.py"
    proc = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", str(fixture), "--format", "json",
                           "--select", "GH113"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    (finding,) = json.loads(proc.stdout)["findings"]
    line = fixture.read_text().splitlines()[finding["location"]["row"] - 1]
    assert finding["severity"] == "error" and "self.hidden = [nn.Linear" in line
    assert finding["evidence"]["holder"] == "hidden" and finding["evidence"]["optimizer_from_parameters"] is True
    assert "nn.ModuleList" in finding["fix"]["message"]


def test_record_round_trips_through_the_child_process_format():
    import torch.nn.functional as F
    from gradcheck_tool.probe.record import ProbeRecord

    model = InDict()
    record = probe(model, loss_fn=lambda out, x: F.mse_loss(out[:, :1], torch.zeros(4)))
    assert record.unregistered and record.loss_calls
    assert ProbeRecord.from_dict(record.to_dict()) == record
