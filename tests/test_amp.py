"""The real AMP probe (--amp, probe/amp.py): skipped steps and the scale a real torch GradScaler
settles at, against an analytic result; how skips are classified; an fp16 overflow fixture collapses
and is named at the right module, a healthy model does not; GH150/GH151 read from it; the CLI.
On CPU with torch's CPU autocast (fp16 and bf16) and GradScaler("cpu"); the CUDA test runs where a
CUDA device is."""
import dataclasses
import json
import subprocess
import sys
import textwrap

import jsonschema
import pytest
import torch
from torch import nn

from gradcheck_tool.probe.amp import classify, measure_amp
from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.probe.record import Precision
from gradcheck_tool.report.json import load_schema
from gradcheck_tool.rules import run_rules
from gradcheck_tool.static.analysis.amp_usage import as_asked, read_precision
from test_precision import _overflowing  # its outputs reach ~1e5 (fp16 max 65504)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("scales,losses,skipped,kinds,verdict", [
    ([2.0**16] * 4, [1.0] * 4, [], [], "clean"),
    # the scaler's search from 2^16: three halvings, then every step fits
    ([2.0**16, 2.0**15, 2.0**14, 2.0**13, 2.0**13], [1.0] * 5, [0, 1, 2], ["search"] * 3, "search"),
    # a step overflows at a scale two earlier steps fit at, then fits again at half of it
    ([8.0, 8.0, 8.0, 4.0, 4.0], [1.0] * 5, [2], ["spike"], "spike"),
    # a non-finite loss once: the forward overflowed, whatever the scale
    ([8.0, 8.0, 4.0, 4.0], [1.0, None, 1.0, 1.0], [1], ["forward"], "spike"),
    # after a growth (growth_interval reached) the new scale is searched again
    ([4.0, 4.0, 8.0, 4.0, 4.0], [1.0] * 5, [2], ["search"], "search"),
    # the forward overflows step after step: the scale keeps falling
    ([2.0**16, 2.0**15, 2.0**14], [None] * 3, [0, 1, 2], ["forward"] * 3, "collapse"),
    # the search runs out of room: still falling at the end of the run
    ([2.0**-6, 2.0**-7, 2.0**-8], [1.0] * 3, [0, 1, 2], ["search"] * 3, "collapse"),
])
def test_skips_are_classified(scales, losses, skipped, kinds, verdict):
    assert classify(scales, losses, skipped) == (kinds, verdict)


def test_without_a_scaler_there_is_no_search():
    assert classify([1.0, 1.0, 1.0], [1.0] * 3, [0], scaler=False) == (["spike"], "spike")


def _linear(batch=8, c=4.0):
    """One Linear fed ones, loss c * sum(output): every weight and bias gradient entry is exactly
    batch * c, so under a loss scale S the fp16 backward overflows iff batch * c * S > 65504."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 4))
    return model, (lambda: torch.ones(batch, 16)), (lambda out, x: out.float().sum() * c)


@pytest.mark.parametrize("device", DEVICES)
def test_the_scale_settles_where_the_gradients_fit(device):
    model, make, loss = _linear()
    model.to(device)
    stats = measure_amp(model, lambda: make().to(device), loss, torch.optim.SGD(model.parameters(), lr=0.0),
                        dtype="fp16", device_type=device, steps=5, seed=0)
    # batch * c = 32: the largest power of two S with 32 S <= 65504 is 2^10, six halvings from 2^16
    assert stats.final_scale == 2.0**10 and stats.skipped == (0, 1, 2, 3, 4, 5)
    assert stats.scales == tuple(2.0**p for p in range(16, 9, -1)) + (2.0**10,) * 4
    assert stats.kinds == ("search",) * 6 and stats.verdict == "search" and stats.first_nonfinite is None
    # the file's own scaler settings: from 2^8, doubling after every 2 clean steps, up to 2^11, which overflows
    model, make, loss = _linear()
    model.to(device)
    low = measure_amp(model, lambda: make().to(device), loss, None, dtype="fp16", device_type=device, steps=7,
                      seed=0, init_scale=2.0**8, growth_interval=2)
    assert low.scales == (2.0**8, 2.0**8, 2.0**9, 2.0**9, 2.0**10, 2.0**10, 2.0**11, 2.0**10)
    assert low.skipped == (6,)
    assert low.kinds == ("search",) and low.verdict == "search" and low.optimizer == ""


def _healthy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


CE = lambda out, x: nn.functional.cross_entropy(out.float(), torch.zeros(len(out), dtype=torch.long))  # noqa: E731


def test_fp16_overflow_collapses_and_is_named_at_its_module():
    model = _overflowing()
    stats = measure_amp(model, lambda: torch.randn(32, 64), CE, torch.optim.AdamW(model.parameters(), lr=1e-3),
                        dtype="fp16", device_type="cpu", steps=10, seed=0)
    assert stats.verdict == "collapse" and stats.kinds == ("forward",) * 3  # stops after 3: no scale reaches it
    assert stats.scales == (2.0**16, 2.0**15, 2.0**14) and stats.final_scale == 2.0**13
    assert (stats.first_nonfinite, stats.nonfinite_in) == ("2", "forward")
    bf16 = measure_amp(_overflowing(), lambda: torch.randn(32, 64), CE, None, dtype="bf16", device_type="cpu",
                       steps=4, seed=0)
    assert bf16.verdict == "clean" and not bf16.scaler and bf16.scales == (1.0,) * 4  # fp32's range



class _Attention(nn.Module):
    """Self-attention whose input projection overflows fp16: MultiheadAttention computes its
    projections with its own weights, so no submodule's forward runs where the overflow is."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.attn = nn.MultiheadAttention(64, 4, batch_first=True)
        self.head = nn.Linear(64, 10)
        with torch.no_grad():
            self.attn.in_proj_weight.mul_(3e4)

    def forward(self, x):
        return self.head(self.attn(x, x, x, need_weights=False)[0].mean(1))


def test_an_overflow_inside_attention_is_named_at_the_attention_module_not_after_it():
    stats = measure_amp(_Attention(), lambda: torch.randn(8, 12, 64), CE, None, dtype="fp16", device_type="cpu",
                        steps=3, seed=0)
    assert stats.verdict == "collapse" and (stats.first_nonfinite, stats.nonfinite_in) == ("attn", "forward")

def test_a_transient_spike_is_told_from_a_collapse():
    model, _, loss = _linear(c=1.0)
    calls = []

    def make():  # step 6's batch is 64x larger: its gradients overflow at the scale the others fit at
        calls.append(1)
        return torch.ones(8, 16) * (64.0 if len(calls) == 6 else 1.0)

    stats = measure_amp(model, make, loss, None, dtype="fp16", device_type="cpu", steps=8, seed=0,
                        init_scale=2.0**12)
    assert stats.skipped == (5,) and stats.kinds == ("spike",) and stats.verdict == "spike"
    assert stats.final_scale == 2.0**11  # the weight's gradient overflowed (8 x 64 x 2^12 > 65504), not the output's
    assert (stats.first_nonfinite, stats.nonfinite_in) == ("0", "backward")


def _above_info(stats):
    """GH150/GH151 above info on the healthy model's fp32 record with ``stats`` as its --amp fp16 run."""
    record = run_probe(_healthy(), lambda: torch.randn(32, 64), CE, probes=1)
    record = dataclasses.replace(record, amp=stats, precision=Precision("fp16", True, asked=True))
    return [f for f in run_rules(record, ["GH150", "GH151"]) if f.severity.value != "info"]


def test_healthy_model_searches_cleanly_and_gets_nothing_above_info():
    model = _healthy()
    stats = measure_amp(model, lambda: torch.randn(32, 64), CE, torch.optim.AdamW(model.parameters(), lr=1e-3),
                        dtype="fp16", device_type="cpu", steps=10, seed=0)
    assert stats.verdict in ("clean", "search") and len(stats.scales) == 10 + len(stats.skipped)
    assert all(loss is not None for loss in stats.losses) and _above_info(stats) == []


def test_amp_asks_for_a_precision_the_file_does_not_have():
    fp32 = read_precision("x = 1")
    assert as_asked(fp32, "fp16").dtype == "fp16" and as_asked(fp32, "fp16").scaler and as_asked(fp32, "fp16").asked
    assert not as_asked(fp32, "bf16").scaler
    unscaled = read_precision("with torch.autocast('cuda', dtype=torch.float16):\n    pass")
    assert not as_asked(unscaled, "fp16").scaler  # the file trains fp16 without a scaler: probed so
    own = read_precision("s = torch.amp.GradScaler('cuda', 2.**10, 2.0, 0.5, 100)\n"
                         "t = torch.cuda.amp.GradScaler(growth_interval=50)\nwith torch.autocast('cuda'):\n    pass")
    assert (own.init_scale, own.growth_interval) == (1024.0, 50)
    legacy = read_precision("s = torch.cuda.amp.GradScaler(2.**12, 2.0, 0.5, 300)")
    assert (legacy.init_scale, legacy.growth_interval) == (4096.0, 300)


def test_python_api_runs_the_amp_probe_and_restores_the_model():
    from gradcheck_tool import scan

    model = _overflowing()
    before = [p.detach().clone() for p in model.parameters()]
    report = scan(model, lambda: torch.randn(32, 64), CE, select=["GH150", "GH151"], amp="fp16",
                  optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3), train_steps=3)
    assert [(f.code, f.severity.value, f.module) for f in report.findings] == [("GH150", "error", "2")]
    assert report.probes[0].record.amp.verdict == "collapse"
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert scan(_overflowing(), lambda: torch.randn(32, 64), CE, select=["GH150", "GH151"]).findings == ()


MODEL = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 512)
        self.fc2 = nn.Linear(512, 512)
        self.fc3 = nn.Linear(512, 10)
        with torch.no_grad():
            self.fc1.weight.mul_(SCALE1)
            self.fc2.weight.mul_(SCALE2)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def example_inputs():
    return torch.randn(32, 64)


def train(model, data):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for x, y in data:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
'''


def _scan(tmp_path, *args, device="cpu"):
    result = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", "over.py", "healthy.py", "--format",
                             "json", "--select", "GH150,GH151", "--device", device, *args],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = json.loads(result.stdout)
    jsonschema.validate(report, load_schema())
    return result, report


@pytest.mark.slow
def test_cli_amp_probe(tmp_path):
    (tmp_path / "over.py").write_text(textwrap.dedent(MODEL).replace("SCALE1", "100.0").replace("SCALE2", "1000.0"))
    (tmp_path / "healthy.py").write_text(textwrap.dedent(MODEL).replace("SCALE1", "1.0").replace("SCALE2", "1.0"))
    result, report = _scan(tmp_path)  # fp32 files: nothing to overflow, nothing said
    assert report["findings"] == [] and result.returncode == 0, result.stderr
    assert all(p["amp"] is None for p in report["probes"])
    result, report = _scan(tmp_path, "--amp", "fp16", "--train-steps", "4")
    found = {(f["filename"], f["code"], f["severity"], f["module"]) for f in report["findings"]}
    assert found == {("over.py", "GH150", "error", "fc2")}, result.stderr
    (finding,) = report["findings"]
    assert finding["location"]["row"] == 10 and finding["evidence"]["verdict"] == "collapse"
    amp = {p["filename"]: p["amp"] for p in report["probes"]}
    assert amp["over.py"]["verdict"] == "collapse" and amp["over.py"]["optimizer"] == "AdamW"
    assert amp["healthy.py"]["verdict"] in ("clean", "search") and amp["healthy.py"]["scaler"]
    assert {p["filename"]: p["precision"]["asked"] for p in report["probes"]} == {"over.py": True, "healthy.py": True}
    assert result.returncode == 1
    result, report = _scan(tmp_path, "--amp", "bf16", "--train-steps", "4")
    assert report["findings"] == [] and result.returncode == 0, result.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_amp_probe_collapses_on_overflow_and_not_on_a_healthy_model():
    stats = measure_amp(_overflowing().cuda(), lambda: torch.randn(32, 64, device="cuda"), CE, None, dtype="fp16",
                        device_type="cuda", steps=10, seed=0)
    assert stats.verdict == "collapse" and stats.first_nonfinite == "2"
    model = _healthy().cuda()
    stats = measure_amp(model, lambda: torch.randn(32, 64, device="cuda"), CE,
                        torch.optim.AdamW(model.parameters(), lr=1e-3), dtype="fp16", device_type="cuda", steps=10,
                        seed=0)
    assert stats.verdict in ("clean", "search") and _above_info(stats) == []
