"""GH150/GH151: the per-module magnitudes the probe records (against plain autograd), the static read
of how a file trains (autocast, GradScaler, trainers), and the verdicts on overflow, underflow and
healthy fixtures, through the real CLI."""
import dataclasses
import json
import subprocess
import sys
import textwrap

import jsonschema
import pytest
import torch
from torch import nn

from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.probe.record import Precision
from gradcheck_tool.report.json import load_schema
from gradcheck_tool.rules import run_rules
from gradcheck_tool.rules.underflow import flushed_share
from gradcheck_tool.static.analysis.amp_usage import read_precision


def test_magnitudes_equal_plain_autograd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(8, 16)
    loss_fn = lambda out, inp: out.square().mean() * 1e-6  # noqa: E731
    record = run_probe(model, lambda: x, loss_fn, probes=1)

    outputs, grads = {}, {}

    def keep(name):
        def hook(module, inputs, output):
            outputs[name] = output
            output.register_hook(lambda g: grads.__setitem__(name, g))
        return hook

    for name, module in model.named_children():
        module.register_forward_hook(keep(name))
    loss_fn(model(x), x).backward()
    for name in ("0", "1", "2"):
        layer = record.layer(name)
        assert layer.out_max == pytest.approx(outputs[name].abs().max().item(), rel=1e-6)
        assert layer.grad_max == pytest.approx(grads[name].abs().max().item(), rel=1e-6)
        g = grads[name][grads[name] != 0]
        assert sum(c for _, c in layer.grad_exponents) == g.numel()
        expected = torch.floor(torch.log2(g.abs())).long()
        assert dict(layer.grad_exponents) == {int(e): int((expected == e).sum()) for e in expected.unique()}
        for scale in (1.0, 8.0):  # a power-of-two scale falls on a bin edge: the share is exact
            assert flushed_share(layer, scale) == pytest.approx((g.abs() * scale < 2.0**-24).float().mean().item())


@pytest.mark.parametrize("source,expected", [
    ("with torch.autocast('cuda', dtype=torch.float16):\n    pass\nscaler = torch.amp.GradScaler()",
     Precision("fp16", True, 2.0**16)),
    ("with torch.cuda.amp.autocast():\n    pass", Precision("fp16", False)),
    ("with torch.autocast(device_type='cuda', dtype=torch.bfloat16):\n    pass", Precision("bf16", False)),
    ("with torch.autocast('cpu'):\n    pass", Precision("bf16", False)),
    ("s = GradScaler(init_scale=2.**10)\nwith autocast(device_type='cuda'):\n    pass", Precision("fp16", True, 1024.0)),
    ("model = Net().half()", Precision("fp16", False)),
    ("trainer = L.Trainer(precision='16-mixed')", Precision("fp16", True)),
    ("args = TrainingArguments('out', bf16=True)", Precision("bf16", False)),
    ("acc = Accelerator(mixed_precision='fp16')", Precision("fp16", True)),
    ("with torch.autocast('cuda', enabled=False):\n    pass\nscaler = GradScaler(enabled=False)", Precision(None, False)),
    ("x = 1", Precision(None, False)),
    # diffusers' train_text_to_image.py: a run-time device, and accelerate scaling the loss itself
    ("ctx = torch.autocast(accelerator.device.type)", Precision(None, False)),
    ("with torch.autocast('cuda'):\n    pass\naccelerator.backward(loss)", Precision("fp16", True)),
    # nanoGPT's train.py: the dtype is chosen at run time (bf16 where supported): no claim either way
    ("ctx = torch.amp.autocast(device_type=device_type, dtype=ptdtype)\n"
     "scaler = torch.cuda.amp.GradScaler(enabled=(dtype == 'float16'))", Precision(None, False)),
])
def test_how_the_file_trains_is_read_from_its_source(source, expected):
    assert dataclasses.replace(read_precision(source), trains=True) == expected


@pytest.mark.parametrize("source,trains", [
    ("model = Net().half()\nout = model(x)", False),  # fp16 inference: only the forward range matters
    ("model = Net().half()\nloss.backward()", True),
    ("trainer = L.Trainer(precision='16-mixed')", True),
])
def test_a_backward_pass_tells_training_from_inference(source, trains):
    assert read_precision(source).trains is trains


def _overflowing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    with torch.no_grad():
        model[0].weight.mul_(100.0)
        model[2].weight.mul_(1000.0)  # its outputs reach ~1e5 on unit inputs, the last layer's ~2.5e4
    return model


def _verdicts(model, loss_fn, precision, shape=(32, 64)):
    record = run_probe(model, lambda: torch.randn(*shape), loss_fn, probes=2)
    record = dataclasses.replace(record, precision=precision)
    return {(f.code, f.severity.value, f.module) for f in run_rules(record, ["GH150", "GH151"])}


RMS = lambda out, x: out.square().mean().sqrt()  # noqa: E731  (gradients ~1/N, no saturated softmax)


def test_overflow_is_named_at_the_first_module_in_forward_order():
    fp16 = _verdicts(_overflowing(), RMS, Precision("fp16", True))
    assert fp16 == {("GH150", "error", "2")}  # module 3 (ReLU) and 4 overflow too: 2 is first
    assert _verdicts(_overflowing(), RMS, Precision(None, False)) == set()  # an fp32 recipe: nothing overflows
    assert _verdicts(_overflowing(), RMS, Precision("fp16", True, asked=True)) == {("GH150", "error", "2")}  # --amp
    assert _verdicts(_overflowing(), RMS, Precision("bf16", False)) == set()


def test_underflow_without_loss_scaling():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    tiny = lambda out, x: out.square().mean() * 1e-5  # noqa: E731  (gradients ~2^-29, a tail to 2^-34)
    unscaled = _verdicts(model, tiny, Precision("fp16", False))
    assert {(c, s) for c, s, _ in unscaled} == {("GH151", "error")}
    assert _verdicts(model, tiny, Precision("fp16", True, 2.0**16)) == set()  # x 2^16: fits
    assert {(c, s) for c, s, _ in _verdicts(model, tiny, Precision("fp16", True, 1.0))} == {("GH151", "warning")}
    assert _verdicts(model, tiny, Precision("bf16", False)) == set()
    assert _verdicts(model, tiny, Precision(None, False)) == set()  # fp32: nothing flushes
    assert _verdicts(model, tiny, Precision("fp16", False, trains=False)) == set()  # fp16 inference: no gradients


def test_under_a_grad_scaler_underflow_is_a_warning_only_where_no_scale_fits():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    tinier = lambda out, x: out.square().mean() * 1e-9  # noqa: E731  (gradients ~2^-42: 2^16 is too low)
    (finding,) = run_rules(dataclasses.replace(run_probe(model, lambda: torch.randn(32, 64), tinier, probes=1),
                                               precision=Precision("fp16", True)), ["GH151"])
    assert finding.severity.value == "info" and "grows to 2^" in finding.message  # the scaler grows into it
    assert finding.evidence["scale_needed"] <= finding.evidence["scale_ceiling"]
    # one output with gradients 100: it caps the scale at 2^9, far under what the other outputs need
    spread = lambda out, x: (out[:, 0] * 100.0).sum() + out[:, 1:].square().mean() * 1e-9  # noqa: E731
    (finding,) = run_rules(dataclasses.replace(run_probe(model, lambda: torch.randn(32, 64), spread, probes=1),
                                               precision=Precision("fp16", True)), ["GH151"])
    assert finding.severity.value == "warning" and "no scale keeps them" in finding.message


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=1000, n_positions=64,
                                      bos_token_id=0, eos_token_id=0))


@pytest.mark.slow
@pytest.mark.parametrize("precision", [Precision("fp16", True), Precision("bf16", False)])
def test_healthy_models_trained_by_the_book_get_nothing_above_info(precision):
    from transformers import ResNetConfig, ResNetForImageClassification
    lm_loss = lambda out, inp: nn.functional.cross_entropy(  # noqa: E731
        out.logits.flatten(0, 1), inp["input_ids"].flatten())
    gpt2 = run_probe(_gpt2(), lambda: {"input_ids": torch.randint(0, 1000, (4, 32))}, lm_loss, probes=2)
    torch.manual_seed(0)
    resnet = ResNetForImageClassification(ResNetConfig(depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128],
                                                       embedding_size=16, num_labels=10))
    image_loss = lambda out, x: nn.functional.cross_entropy(out.logits, torch.zeros(4, dtype=torch.long))  # noqa: E731
    resnet = run_probe(resnet, lambda: torch.randn(4, 3, 32, 32), image_loss, probes=2)
    for record in (gpt2, resnet):
        findings = run_rules(dataclasses.replace(record, precision=precision), ["GH150", "GH151"])
        assert [f for f in findings if f.severity.value != "info"] == []


MODEL = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 64)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def example_inputs():
    return torch.randn(16, 32)


def loss_fn(output, inputs):
    return output.square().mean() * 1e-5


def train(model, data):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in data:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
'''


@pytest.mark.slow
def test_cli_reports_underflow_where_the_file_trains_in_fp16(tmp_path):
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL))
    (tmp_path / "scaled.py").write_text(textwrap.dedent(MODEL).replace(
        "    opt = torch.optim", "    scaler = torch.amp.GradScaler()\n    opt = torch.optim"))
    result = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", "model.py", "scaled.py", "--format", "json",
                             "--select", "GH150,GH151", "--train-steps", "0"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    jsonschema.validate(report, load_schema())
    found = {(f["filename"], f["code"], f["severity"]) for f in report["findings"]}
    assert found == {("model.py", "GH151", "error")}, result.stderr
    (finding,) = report["findings"]
    assert finding["module"] == "fc1" and finding["location"]["row"] == 9  # all flush: the first module
    assert finding["evidence"]["flushed"] > 0.9 and "GradScaler" in finding["fix"]["message"]
    precision = {p["filename"]: p["precision"] for p in report["probes"]}
    common = {"dtype": "fp16", "init_scale": 65536.0, "trains": True, "growth_interval": 2000, "asked": False}
    assert precision == {"model.py": dict(common, scaler=False), "scaled.py": dict(common, scaler=True)}
    assert result.returncode == 1
