"""The loop rules users get wrong (GH209-GH212): cases beyond each rule's GOOD/BAD examples."""
from __future__ import annotations

import pytest

from gradcheck_tool.api import calibrate_clipping
from gradcheck_tool.findings import ProbeResult, ProbeStatus, Severity
from gradcheck_tool.probe.record import ProbeRecord
from gradcheck_tool.static import check_source
from gradcheck_tool.static.engine import analyse


def hits(source: str, code: str):
    return [f for f in check_source(source, "t.py") if f.code == code]


# --- GH209 zero-grad-before-step ------------------------------------------------------------

def test_gh209_points_at_the_reset_and_names_both_ends() -> None:
    source = ("for x, y in loader:\n    loss = loss_fn(model(x), y)\n    loss.backward()\n"
              "    optimizer.zero_grad()\n    optimizer.step()\n")
    (finding,) = hits(source, "GH209")
    assert finding.location.row == 4 and finding.severity is Severity.ERROR
    assert finding.evidence == {"backward_line": 3, "zero_grad_line": 4, "step_line": 5}


@pytest.mark.parametrize("body", [
    # the reset of the previous iteration, then a fresh backward
    "    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n",
    # an LBFGS closure resets and recomputes inside step()
    "    def closure():\n        optimizer.zero_grad()\n        loss = f()\n        loss.backward()\n"
    "        return loss\n    optimizer.step(closure)\n",
    # a tensor's own gradient reset, not the optimizer's
    "    loss.backward()\n    x.grad.zero_()\n    optimizer.step()\n",
])
def test_gh209_leaves_correct_orders_alone(body: str) -> None:
    assert hits("for batch in loader:\n" + body, "GH209") == []


# --- GH210 accumulation-without-averaging ---------------------------------------------------

ACCUM = """\
for i, batch in enumerate(loader):
    loss = model(batch)
    {scale}
    loss.backward()
    if (i + 1) % k == 0:
        optimizer.step()
        optimizer.zero_grad()
"""


@pytest.mark.parametrize(("scale", "fires"), [
    ("pass", True),
    ("loss = loss / k", False),
    ("loss /= k", False),
    ("loss = loss * (1.0 / k)", False),
    ("loss = loss.div(k)", False),
    ("loss = loss.mean()", True),  # a mean over the batch is not one over the k micro-batches
])
def test_gh210_scalings_that_average_over_the_accumulated_batches(scale: str, fires: bool) -> None:
    assert bool(hits(ACCUM.format(scale=scale), "GH210")) is fires


def test_gh210_needs_a_step_on_every_kth_iteration_only() -> None:
    every = ACCUM.format(scale="pass").replace("    if (i + 1) % k == 0:\n", "    if True:\n")
    assert hits(every, "GH210") == []
    # `if i % log_every == 0: print(...)` is logging, not accumulation
    logging = ("for i, b in enumerate(loader):\n    loss = model(b)\n    loss.backward()\n"
               "    optimizer.step()\n    optimizer.zero_grad()\n    if i % 10 == 0:\n        print(loss)\n")
    assert hits(logging, "GH210") == []


ACCELERATE = """\
from accelerate import Accelerator
accelerator = Accelerator({kwargs})
for step, batch in enumerate(loader):
    loss = model(**batch).loss
    accelerator.backward(loss)
    if step % accum == 0:
        optimizer.step()
        optimizer.zero_grad()
"""


def test_gh210_accelerate_divides_only_when_told_the_accumulation() -> None:
    assert hits(ACCELERATE.format(kwargs="mixed_precision='fp16'"), "GH210")
    assert hits(ACCELERATE.format(kwargs="gradient_accumulation_steps=accum"), "GH210") == []


# --- GH211 epoch-scheduler-per-batch --------------------------------------------------------

SCHED = """\
import torch
sched = torch.optim.lr_scheduler.{kind}
def train_one_epoch(model, loader, opt, epoch):
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()
"""


@pytest.mark.parametrize(("kind", "fires"), [
    ("StepLR(opt, step_size=30, gamma=0.1)", True),
    ("StepLR(opt, 7)", True),
    ("MultiStepLR(opt, milestones=[100, 150])", True),
    ("MultiStepLR(opt, milestones=[m * iters_per_epoch for m in (30, 60)])", False),
    ("StepLR(opt, step_size=len(loader) * 30)", False),
    ("StepLR(opt, step_size=20000)", False),
    ("ExponentialLR(opt, gamma=0.9)", True),
    ("ExponentialLR(opt, gamma=0.9999)", False),
    ("OneCycleLR(opt, max_lr=0.1, total_steps=1000)", False),  # per batch by design
])
def test_gh211_periods_that_read_as_epochs(kind: str, fires: bool) -> None:
    assert bool(hits(SCHED.format(kind=kind), "GH211")) is fires


def test_gh211_a_step_based_loop_counts_in_iterations() -> None:
    source = SCHED.format(kind="StepLR(opt, step_size=30)").replace(
        "def train_one_epoch(model, loader, opt, epoch):", "def train(model, loader, opt):")
    assert hits(source, "GH211") == []


# --- GH212 clip-threshold-too-low (with a probe's numbers) ----------------------------------

CLIPPED = """\
import torch
CLIP = {value}
for x, y in loader:
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=CLIP)
    opt.step()
"""


def probe(norms: tuple[float, ...]) -> ProbeResult:
    record = ProbeRecord(model="M", device="cpu", seed=0, batches=len(norms), loss="loss_fn", inputs="x",
                         layers=(), parameters=(), total_grad_norms=norms, recommended_max_norm=2 * sorted(norms)[1])
    return ProbeResult("t.py", ProbeStatus.OK, record=record)


@pytest.mark.parametrize(("value", "fires"), [("0.01", True), ("0.5", False), ("1.0", False)])
def test_gh212_compares_the_literal_threshold_with_the_measured_norms(value: str, fires: bool) -> None:
    analysis = analyse(CLIPPED.format(value=value), "t.py")
    assert [t.value for t in analysis.clip_thresholds] == [float(value)]
    out = calibrate_clipping(analysis.findings, [], probe((4.0, 5.0, 6.0)), analysis.clip_thresholds)
    found = [f for f in out if f.code == "GH212"]
    assert bool(found) is fires
    if fires:
        assert found[0].location.row == 6 and found[0].evidence["ratio"] == 400.0
        assert "max_norm=10" in found[0].message


UNCLIPPED = """\
def train(model, opt, loader):
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
"""


@pytest.mark.parametrize(("norms", "reported"), [
    ((4.0, 5.0, 6.0), False),  # steady gradients: nothing to say about a model the source does not show
    ((1.0, 5.0, 9.0), True),  # the global norm varies 9x between batches: clip, at the measured max_norm
])
def test_gh201_on_a_model_the_source_does_not_show_is_the_probes_call(norms, reported: bool) -> None:
    analysis = analyse(UNCLIPPED, "t.py")
    assert analysis.findings == [] and [f.code for f in analysis.undecided] == ["GH201"]
    out = calibrate_clipping(analysis.findings, [], probe(norms), analysis.clip_thresholds, analysis.undecided)
    found = [f for f in out if f.code == "GH201"]
    assert bool(found) is reported
    if reported:
        assert found[0].severity is Severity.WARNING and "max_norm=10" in found[0].fix.message
        assert found[0].evidence["probe_grad_norms"] == [1.0, 5.0, 9.0]
    # without a probe record (skipped, failed, --static-only) it is never reported
    skipped = ProbeResult("t.py", ProbeStatus.SKIPPED, reason="no model")
    assert calibrate_clipping(analysis.findings, [], skipped, (), analysis.undecided) == []


def test_gh212_needs_a_probe_and_a_literal() -> None:
    analysis = analyse(CLIPPED.format(value="args.clip"), "t.py")
    assert analysis.clip_thresholds == ()
    static_only = analyse(CLIPPED.format(value="0.01"), "t.py")
    assert "GH212" not in [f.code for f in static_only.findings]


MODEL_FILE = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        return self.body(x)


def train(model, loader):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm={value})
        opt.step()
"""


@pytest.mark.slow
@pytest.mark.parametrize(("value", "fires"), [("1e-4", True), ("1.0", False)])
def test_gh212_through_the_cli_with_a_real_probe(tmp_path, value: str, fires: bool) -> None:
    import json
    import subprocess
    import sys

    path = tmp_path / "m.py"
    path.write_text(MODEL_FILE.format(value=value))
    done = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", str(path), "--select", "GH212",
                           "--format", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout)
    assert report["probes"][0]["status"] == "ok", done.stderr
    found = [f for f in report["findings"] if f["code"] == "GH212"]
    assert bool(found) is fires and done.returncode == int(fires)
    if fires:
        norms = found[0]["evidence"]["probe_grad_norms"]
        assert min(norms) / 1e-4 == pytest.approx(found[0]["evidence"]["ratio"], rel=1e-3)
        assert found[0]["location"]["row"] == 19
