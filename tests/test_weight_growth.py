"""GH143 end to end: the optimizer found in the source, the steps it runs (against a plain training
loop), the growth model (against longer real training), the weight-decay fix verified by re-probing."""
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import torch
from torch import nn

from gradcheck_tool import loader
from gradcheck_tool.api import ScanOptions
from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.probe.outputs import default_loss
from gradcheck_tool.probe.record import ProbeRecord
from gradcheck_tool.probe.steps import build_optimizer, measure_steps
from gradcheck_tool.report.json import load_schema
from gradcheck_tool.rules.growth import (
    TARGET,
    decay_per_step,
    measured_growth,
    projected_growth,
    suggested_weight_decay,
)
from gradcheck_tool.rules import examples
from gradcheck_tool.runtime import scan_path, train_spec
from gradcheck_tool.static.engine import optimizer_calls

MODEL = Path(__file__).resolve().parent / "fix_models" / "adam_no_decay.py"


def _mlp(width: int = 32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


# --- the steps equal a plain training loop --------------------------------------------------------

@pytest.mark.parametrize("make_optimizer,loss_fn", [
    (lambda p: torch.optim.Adam(p, lr=3e-3), None),
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), lambda out, x: out.square().mean()),
])
def test_steps_equal_a_plain_training_loop(make_optimizer, loss_fn):
    inputs = lambda: torch.randn(8, 32)  # noqa: E731
    model = _mlp()
    stats = measure_steps(model, inputs, loss_fn, make_optimizer(model.parameters()), steps=5, seed=7)

    plain = _mlp()
    optimizer = make_optimizer(plain.parameters())
    weights = [p for p in plain.parameters() if p.dim() >= 2]
    norms, losses = [[w.norm().item() for w in weights]], []
    for step in range(5):
        torch.manual_seed(7 + step)
        x = torch.randn(8, 32)
        out = plain(x)
        loss = loss_fn(out, x) if loss_fn else default_loss(out, 7 + step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        norms.append([w.norm().item() for w in weights])
    assert stats.losses == pytest.approx(losses, rel=1e-6)
    for i, weight in enumerate(stats.weights):
        assert weight.norms == pytest.approx([n[i] for n in norms], rel=1e-6)
    assert [w.name for w in stats.weights] == ["0.weight", "2.weight", "4.weight"]  # matrices only
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), plain.parameters()))


def test_optimizer_settings_are_read_back_from_the_built_optimizer():
    model = _mlp()
    stats = measure_steps(model, lambda: torch.randn(4, 32), None,
                          build_optimizer("AdamW", {"lr": 1e-3}, model), steps=1, seed=0)
    assert (stats.optimizer, stats.weight_decay, stats.decoupled) == ("AdamW", 0.01, True)  # AdamW's default
    assert decay_per_step(stats) == pytest.approx(1e-5)
    with pytest.raises(GradhealthError, match="could not be rebuilt"):
        build_optimizer("Adam", {"lr": 1e-3, "bogus": 1}, model)
    with pytest.raises(GradhealthError, match="Invalid beta"):  # the file's own training would fail there too
        build_optimizer("Adam", {"lr": 1e-3, "betas": (0.9, 1.5)}, model)
    # Written for CUDA graphs / fused kernels: how the step runs, not what it computes; runs on CPU.
    cuda_style = build_optimizer("Adam", {"lr": 1e-3, "capturable": True, "fused": True}, model)
    assert measure_steps(model, lambda: torch.randn(4, 32), None, cuda_style, steps=2, seed=0) is not None
    with pytest.raises(GradhealthError, match="cannot be run"):
        build_optimizer("LBFGS", {}, model)


def test_record_with_steps_round_trips_through_json():
    record = examples.trained("Adam", lr=3e-3, growth=4.5e-3)
    assert ProbeRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


# --- the growth model ------------------------------------------------------------------------------

def test_growth_model_matches_its_recursion():
    """x(t) = ||W||^2 / ||W_0||^2 with dx = 2r - 2dx per step: the closed form against the recursion."""
    base = examples.trained("AdamW", lr=1e-3, growth=4e-4, weight_decay=0.1)
    d = decay_per_step(base.steps)
    net = measured_growth(base.steps)
    assert net == pytest.approx(4e-4, rel=1e-9)  # read back from the synthetic norms
    x = 1.0
    for _ in range(10_000):
        x += 2 * (net + d) - 2 * d * x
    assert projected_growth(base.steps) == pytest.approx(math.sqrt(x), rel=1e-3)
    undecayed = examples.trained("Adam", lr=1e-3, growth=4e-4).steps
    assert projected_growth(undecayed) == pytest.approx(math.sqrt(1 + 2 * 4e-4 * 10_000))


def test_suggested_decay_settles_at_the_target_norm():
    stats = examples.trained("Adam", lr=1e-3, growth=2e-4).steps
    lam = suggested_weight_decay(stats)
    assert lam == pytest.approx(0.05)  # 2e-4 / 2^2 / 1e-3
    settled = examples.trained("AdamW", lr=1e-3, growth=2e-4 - 1e-3 * lam, weight_decay=lam).steps
    assert projected_growth(settled, horizon=10**7) == pytest.approx(TARGET, rel=1e-6)
    assert suggested_weight_decay(examples.trained("SGD", lr=0.1, growth=2e-4).steps) is None
    assert suggested_weight_decay(examples.trained("RMSprop", lr=1e-3, growth=2e-4).steps) is None


def test_projection_against_longer_real_training():
    """What the 10-step projection says, against 1,500 real Adam steps on a learnable task:
    the norm reached is within 1.6x of the projection, and the suggested decay lowers it."""
    teacher = torch.randn(32, 10, generator=torch.Generator().manual_seed(1))
    loss_fn = lambda out, x: nn.functional.cross_entropy(out, (x @ teacher).argmax(1))  # noqa: E731
    inputs = lambda: torch.randn(16, 32)  # noqa: E731

    def run(optimizer, steps):
        model = _mlp()
        return measure_steps(model, inputs, loss_fn, build_optimizer(optimizer[0], optimizer[1], model),
                             steps=steps, seed=0)

    probe = run(("Adam", {"lr": 3e-3}), 10)
    lam = suggested_weight_decay(probe)
    reached = {}
    for name, spec in {"adam": ("Adam", {"lr": 3e-3}), "adamw": ("AdamW", {"lr": 3e-3, "weight_decay": lam})}.items():
        long = run(spec, 1500)
        reached[name] = sorted(w.norms[-1] / w.norms[0] for w in long.weights)[1]  # the median matrix
    projected = projected_growth(probe, horizon=1500)
    assert 1 / 1.6 < reached["adam"] / projected < 1.6, (reached, projected)
    assert reached["adamw"] < reached["adam"]


# --- finding the optimizer in the source -----------------------------------------------------------

def test_optimizer_calls_read_literal_constructors_only():
    source = textwrap.dedent("""\
        import torch
        from torch import optim
        from torch.optim import AdamW as W
        LR = 3e-3

        def train(model, args):
            a = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.95), amsgrad=True)
            b = optim.SGD(model.parameters(), 0.1, momentum=0.9, nesterov=True)
            c = W(model.parameters(), lr=args.lr)
            d = optim.Adam([{"params": model.parameters()}], lr=1e-3)
            e = W(model.parameters(), **args.opt)
            f = W(model.parameters(), weight_decay=0, eps=1e-8)

        class Lion(torch.optim.Optimizer):
            def __init__(self, params):
                self.inner = torch.optim.SGD(params, lr=0.1)
    """)
    calls = optimizer_calls(source)
    assert [(c.name, c.kwargs) for c in calls] == [
        ("Adam", (("lr", 0.003), ("betas", (0.9, 0.95)), ("amsgrad", True))),
        ("SGD", (("lr", 0.1), ("momentum", 0.9), ("nesterov", True))),
        ("AdamW", (("weight_decay", 0), ("eps", 1e-8))),
    ]
    line = source.splitlines()[calls[0].start.row - 1]
    assert line[calls[0].start.column - 1:calls[0].end.column - 1].startswith("torch.optim.Adam(model")
    assert optimizer_calls("def broken(:\n    optim.Adam(p)\n") == ()
    assert not any(c.warmup for c in calls)
    scheduled = source + "sched = torch.optim.lr_scheduler.OneCycleLR(a, max_lr=0.1, total_steps=10)\n"
    assert all(c.warmup for c in optimizer_calls(scheduled))
    stepped = source + "sched = torch.optim.lr_scheduler.StepLR(a, 10)\n"  # starts at lr: no warmup
    assert not any(c.warmup for c in optimizer_calls(stepped))
    assert optimizer_calls("x = 1\n") == ()


def test_sgd_is_measured_only_with_the_files_loss():
    spec = loader.load(MODEL, loader.LoadOptions(None, None, None, "cpu"))
    (call,) = optimizer_calls("import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n")
    assert train_spec(spec, call, 3, 0) is None  # the default loss's scale would decide SGD's steps
    (adam,) = optimizer_calls(MODEL.read_text())
    assert len(train_spec(spec, adam, 3, 0).losses) == 3


# --- through the CLI ------------------------------------------------------------------------------

def _cli(cwd, *args):
    return subprocess.run([sys.executable, "-m", "gradcheck_tool", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_scan_reports_growth_at_the_optimizer_call(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL.read_text())
    result = _cli(tmp_path, "scan", "model.py", "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    jsonschema.validate(report, load_schema())
    (finding,) = [f for f in report["findings"] if f["code"] == "GH143"]
    assert finding["severity"] == "warning" and finding["evidence"]["projected_growth"] > 8
    line = path.read_text().splitlines()[finding["location"]["row"] - 1]
    assert line[finding["location"]["column"] - 1:].startswith("torch.optim.Adam(model.parameters(), lr=5e-3)")
    steps = report["probes"][0]["steps"]
    assert steps["optimizer"] == "Adam" and len(steps["losses"]) == 10 and len(steps["weights"]) == 5
    assert all(len(w["norms"]) == 11 for w in steps["weights"])

    quiet = _cli(tmp_path, "scan", "model.py", "--train-steps", "0", "--format", "json")
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["probes"][0]["steps"] is None
    (tmp_path / "pyproject.toml").write_text("[tool.gradhealth]\ntrain-steps = 3\n")
    few = json.loads(_cli(tmp_path, "scan", "model.py", "--format", "json").stdout)
    assert len(few["probes"][0]["steps"]["losses"]) == 3


def test_two_optimizers_or_decay_already_set_stay_quiet(tmp_path):
    source = MODEL.read_text()
    (tmp_path / "gan.py").write_text(source.replace(
        "    for _ in range(epochs):", "    other = torch.optim.Adam(model.parameters(), lr=5e-3)\n"
        "    for _ in range(epochs):"))
    (tmp_path / "decayed.py").write_text(source.replace("lr=5e-3)", "lr=5e-3, weight_decay=0.1)"))
    result = _cli(tmp_path, "scan", "gan.py", "decayed.py", "--format", "json")
    assert result.returncode == 0, result.stdout
    steps = {p["filename"]: p["steps"] for p in json.loads(result.stdout)["probes"]}
    assert steps["gan.py"] is None and steps["decayed.py"]["weight_decay"] == 0.1


def test_weight_decay_fix_is_verified_by_reprobing(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL.read_text())
    safe = _cli(tmp_path, "fix", "model.py")
    assert safe.returncode == 1 and path.read_text() == MODEL.read_text()  # behaviour-changing: needs the flag

    result = _cli(tmp_path, "fix", "model.py", "--unsafe-fixes")
    assert result.returncode == 0, result.stdout + result.stderr
    fixed = path.read_text()
    lam = suggested_weight_decay(scan_path(MODEL, ScanOptions(), optimizer=optimizer_calls(
        MODEL.read_text())[0])[1].record.steps)
    assert fixed == MODEL.read_text().replace("torch.optim.Adam(model.parameters(), lr=5e-3)",
                                              f"torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay={lam:g})")
    (check,) = [line for line in result.stderr.splitlines() if "(verified)" in line]
    assert "model.py: GH143 body." in check
    before, after = (float(x) for x in check.split("(x initial) ")[1].split(" (")[0].split(" -> "))
    assert before > 8 and after < 0.6 * before
    assert _cli(tmp_path, "scan", "model.py").returncode == 0
    again = _cli(tmp_path, "fix", "model.py", "--unsafe-fixes")
    assert again.returncode == 0 and path.read_text() == fixed  # idempotent


def test_sarif_carries_the_weight_decay_edit(tmp_path):
    schema = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    (tmp_path / "model.py").write_text(MODEL.read_text())
    result = _cli(tmp_path, "scan", "model.py", "--format", "sarif")
    document = json.loads(result.stdout)
    jsonschema.validators.validator_for(schema)(schema).validate(document)
    (gh143,) = [r for r in document["runs"][0]["results"] if r["ruleId"] == "GH143"]
    (change,) = gh143["fixes"][0]["artifactChanges"]
    assert change["artifactLocation"]["uri"] == "model.py"
    inserted = sorted(r["insertedContent"]["text"] for r in change["replacements"])
    assert inserted[1] == "AdamW" and inserted[0].startswith(", weight_decay=")  # the argument and the class name


def test_python_api_runs_the_optimizer_and_hands_the_model_back():
    import gradcheck_tool

    model = _mlp(64)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    report = gradcheck_tool.scan(model, lambda: torch.randn(16, 64),
                                 optimizer=lambda params: torch.optim.Adam(params, lr=1e-2))
    (finding,) = [f for f in report.findings if f.code == "GH143"]
    assert finding.severity.value == "warning" and finding.evidence["suggested_weight_decay"] > 0
    assert report.probes[0].record.steps.optimizer == "Adam"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    sgd = gradcheck_tool.scan(model, lambda: torch.randn(16, 64), optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    assert sgd.probes[0].record.steps is None  # SGD needs the real loss: its steps scale with it


HOT_SGD = textwrap.dedent("""\
    import torch
    from torch import nn

    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))


    def example_inputs():
        return torch.randn(64, 32)


    def loss_fn(output, inputs):
        return (output.squeeze(1) - inputs.sum(1)).pow(2).mean()


    def train(data):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        for x in data:
            optimizer.zero_grad()
            loss_fn(model(x), x).backward()
            optimizer.step()
""")


def test_divergence_is_reported_at_the_optimizer_call_and_sgd_learning_is_not_growth(tmp_path):
    (tmp_path / "hot.py").write_text(HOT_SGD)
    (tmp_path / "calm.py").write_text(HOT_SGD.replace("lr=0.5", "lr=0.01"))
    (tmp_path / "warm.py").write_text(HOT_SGD.replace(
        "    for x in data:",
        "    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 1000))\n"
        "    for x in data:"))
    report = json.loads(_cli(tmp_path, "scan", "hot.py", "calm.py", "warm.py", "--format", "json").stdout)
    by_file = {}
    for f in report["findings"]:
        by_file.setdefault(f["filename"], []).append(f)
    (gh140,) = [f for f in by_file["hot.py"] if f["code"] == "GH140"]
    assert gh140["severity"] == "error" and gh140["location"]["row"] == 16
    assert "became inf" in gh140["message"] or "became nan" in gh140["message"]
    (warm,) = [f for f in by_file["warm.py"] if f["code"] == "GH140"]  # ran at the peak lr: a warning
    assert warm["severity"] == "warning" and "warmup" in warm["message"]
    # At lr=0.01 the weights grow fast while the model learns the target's scale: that is not drift.
    assert not [f for f in by_file.get("calm.py", []) if f["code"] in ("GH140", "GH143")]
    calm = next(p for p in report["probes"] if p["filename"] == "calm.py")
    assert calm["steps"]["optimizer"] == "SGD" and calm["steps"]["losses"][-1] < calm["steps"]["losses"][0]
