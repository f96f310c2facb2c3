"""GradMonitor against plain autograd: per-layer and global norms, clipping labels, update
ratios, spikes, NaN/Inf, the JSON-lines log, reading one step late, torch.compile."""
import io
import json
import math

import jsonschema
import pytest
import torch
from torch import nn

from gradcheck_tool import registry
from gradcheck_tool.monitor import GradMonitor
from gradcheck_tool.monitor.judge import SEVERITIES
from gradcheck_tool.report.json import load_schema, render


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, 3))


def batch(step: int, n: int = 16) -> torch.Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(step))


def layer_norms(model: nn.Module) -> dict:
    out = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            layer = name.rsplit(".", 1)[0]
            out[layer] = out.get(layer, 0.0) + p.grad.double().pow(2).sum().item()
    return {k: math.sqrt(v) for k, v in out.items()}


def test_norms_match_plain_autograd_and_every_skips_steps():
    model = mlp()
    model[2].bias.requires_grad_(True)
    expected = []
    with GradMonitor(model, every=2) as monitor:
        for step in range(5):
            model.zero_grad(set_to_none=True)
            model(batch(step)).pow(2).mean().backward()
            if step == 2:
                model[4].bias.grad = None  # a parameter without a gradient this step
            if step % 2 == 0:
                expected.append((step, layer_norms(model)))
            monitor.step()
    history = monitor.history
    assert [r.step for r in history] == [0, 2, 4]
    for record, (step, layers) in zip(history, expected):
        assert record.step == step
        assert set(record.layers) == {"0", "2", "4"}
        for name, norm in layers.items():
            assert record.layers[name] == pytest.approx(norm, rel=1e-5)
        assert record.grad_norm == pytest.approx(math.sqrt(sum(v * v for v in layers.values())), rel=1e-5)
    assert history[1].missing == ("4.bias",) and history[0].missing == ()
    assert history[1].findings == () and not history[0].clipped


def test_reads_a_step_late_without_item():
    """The host never reads inside the step it measured: step t is read at step t+1 (or flush)."""
    model = mlp()
    reads = []
    original = torch.Tensor.tolist

    def counted(self):
        reads.append(1)
        return original(self)

    monitor = GradMonitor(model)
    torch.Tensor.tolist = counted
    try:
        for step in range(3):
            model(batch(step)).sum().backward()
            monitor.step()
            assert len(monitor.history) == step == len(reads)
    finally:
        torch.Tensor.tolist = original
    monitor.close()
    assert len(monitor.history) == 3


def test_clipped_labels_pre_and_post_clip_norms():
    model = mlp()
    returned = []
    with GradMonitor(model) as monitor:
        for step, max_norm in enumerate((1e-3, 1e6)):
            model.zero_grad()
            model(batch(step)).pow(2).mean().backward()
            pre = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            assert monitor.clipped(pre) is pre
            returned.append(pre.item())
            monitor.step()
    tight, loose = monitor.history
    assert tight.clipped and tight.pre_clip_norm == pytest.approx(returned[0], rel=1e-6)
    assert tight.grad_norm == pytest.approx(1e-3, rel=1e-4)  # what the optimizer sees: the clipped norm
    assert tight.pre_clip_norm > 1e-2
    assert not loose.clipped and loose.grad_norm == pytest.approx(loose.pre_clip_norm, rel=1e-5)


def test_update_ratios_match_the_weights_change():
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    expected = []
    with GradMonitor(model, optimizer=optimizer, updates_every=1) as monitor:
        for step in range(3):
            model(batch(step)).pow(2).mean().backward()
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            grads = layer_norms(model)
            optimizer.step()
            ratios = {}
            for layer in ("0", "2", "4"):
                delta = sum((p.detach() - before[n]).double().pow(2).sum().item()
                            for n, p in model.named_parameters() if n.startswith(layer + "."))
                weight = sum(before[n].double().pow(2).sum().item() for n in before if n.startswith(layer + "."))
                ratios[layer] = math.sqrt(delta / weight)
            expected.append((grads, ratios, optimizer.param_groups[0]["lr"]))
            optimizer.zero_grad()
    for record, (grads, ratios, lr) in zip(monitor.history, expected):
        assert record.lr == lr
        for layer in ratios:
            assert record.layers[layer] == pytest.approx(grads[layer], rel=1e-5)
            assert record.update_ratios[layer] == pytest.approx(ratios[layer], rel=1e-4)
    assert not optimizer._optimizer_step_pre_hooks  # hooks removed on close


def test_update_ratios_every_tenth_measured_step_by_default():
    monitor = train(25)
    assert [r.step for r in monitor.history if r.update_ratios] == [0, 10, 20]
    assert all(r.layers for r in monitor.history)  # the gradients are measured on every step


def train(steps: int, scale=lambda step: 1.0, lr: float = 0.05, log=None, seed: int = 0) -> GradMonitor:
    model = mlp(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    target = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
    with GradMonitor(model, optimizer=optimizer, log=log) as monitor:
        for step in range(steps):
            loss = (model(batch(step)) - target).pow(2).mean() * scale(step)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return monitor


def test_a_real_training_run_raises_nothing():
    """200 Adam steps that fit a regression target: the gradient norm falls 10x and wobbles,
    the learning goes through its ordinary phases; none of it is a finding."""
    monitor = train(200, lr=1e-2)
    norms = [r.grad_norm for r in monitor.history]
    assert min(norms[-20:]) < max(norms[:20]) / 2  # it did learn
    assert monitor.findings == ()


def test_a_spike_is_one_gh101_at_its_step():
    monitor = train(60, scale=lambda step: 30.0 if step in (40, 41) else 1.0, lr=1e-3)
    findings = monitor.findings
    assert [(f.code, f.evidence["step"]) for f in findings] == [("GH101", 40)]  # one per spike, not per step
    assert findings[0].evidence["ratio"] > 10 and findings[0].fix is not None


def test_non_finite_gradient_names_the_first_module_in_backward_order():
    model = mlp()
    with GradMonitor(model) as monitor:
        for step in range(4):
            model.zero_grad()
            model(batch(step)).pow(2).mean().backward()
            if step in (1, 2):  # NaN born in layer 2's gradient, passed on to layer 0
                model[2].weight.grad[0, 0] = math.nan
                model[0].weight.grad[0, 0] = math.inf
            monitor.step()
        model.zero_grad()
        (model(batch(9)).sum() * math.nan).backward()
        monitor.step()
    first, everything = monitor.findings  # steps 1 and 2 are one episode
    assert first.code == "GH103" and first.module == "2" and first.evidence["step"] == 1
    assert first.evidence["parameters"] == ["0.weight", "2.weight"]
    assert everything.module is None and "every gradient" in everything.message
    assert math.isnan(monitor.history[1].grad_norm) or math.isinf(monitor.history[1].grad_norm)


def test_jsonl_log_and_report_use_the_scan_vocabulary(tmp_path):
    path = tmp_path / "grads.jsonl"
    monitor = train(45, scale=lambda step: 50.0 if step == 30 else 1.0, lr=1e-3, log=path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(45))
    assert {l["name"] for l in lines[0]["layers"]} == {"0", "2", "4"}
    assert lines[0]["layers"][0]["update_ratio"] > 0
    spikes = [f for line in lines for f in line["findings"]]
    assert [f["code"] for f in spikes] == ["GH101"] and spikes[0]["evidence"]["step"] == 30
    document = json.loads(render(monitor.report()))
    jsonschema.validate(document, load_schema())
    assert document["findings"] == spikes


def test_codes_are_the_scans():
    """Every code the monitor reports is a scan rule's, under that rule's name."""
    assert set(SEVERITIES) == {"GH101", "GH103", "GH141", "GH142"} and set(SEVERITIES) <= set(registry.ALL_RULES)


def test_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        GradMonitor(mlp(), every=0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        GradMonitor(mlp().requires_grad_(False))


def test_log_to_a_stream_is_not_closed():
    stream = io.StringIO()
    train(2, log=stream)
    assert len(stream.getvalue().splitlines()) == 2 and not stream.closed


@pytest.mark.slow  # compiling takes ~4 s
def test_compiled_model_has_no_graph_breaks():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = mlp()
    compiled = torch.compile(model, backend="aot_eager")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    expected = []
    with GradMonitor(compiled, optimizer=optimizer) as monitor:
        for step in range(3):
            compiled(batch(step)).pow(2).mean().backward()
            expected.append(layer_norms(model))
            optimizer.step()
            optimizer.zero_grad()
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1
    assert set(monitor.history[0].layers) == {"0", "2", "4"}  # the user's names, not _orig_mod.*
    for record, layers in zip(monitor.history, expected):
        for name, norm in layers.items():
            assert record.layers[name] == pytest.approx(norm, rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_step_does_not_synchronise():
    model = mlp().cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = GradMonitor(model, optimizer=optimizer)
    x = batch(0).cuda()
    model(x).sum().backward()
    optimizer.step()  # warm up allocators and the pinned-memory pool
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            model(x).sum().backward()
            monitor.clipped(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True))
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(monitor.flush()) == 4


def judged(ratio, lrs) -> list:
    """Synthetic steps through the Judge alone: one layer's update ratio and the lr per step."""
    from gradcheck_tool.monitor.judge import Judge, StepRecord

    judge, found = Judge(), []
    for step, lr in enumerate(lrs):
        record = StepRecord(step=step, grad_norm=1.0, update_ratios={"fc": ratio(step)}, lr=lr)
        found.extend(judge(record, None, 2))
    return found


def test_update_ratio_rules_good_and_bad():
    # BAD: a layer rewriting a fifth of itself per step, past the warmup and a full window: GH141 once.
    [large] = judged(lambda s: 0.2, [1e-2] * 100)
    assert (large.code, large.module, large.evidence["step"]) == ("GH141", "fc", 39)  # 20 warmup + 20 window
    # GOOD: a zero-initialised layer growing from nothing (ratio ~1/t) is not judged in the warmup.
    assert judged(lambda s: 1.0 / (s + 1), [1e-2] * 100) == []
    # BAD: a layer that barely moves at a constant (peak) learning rate: GH142, as info.
    [small] = judged(lambda s: 1e-7, [1e-3] * 60)
    assert small.code == "GH142" and small.severity.value == "info"
    # GOOD: the same tiny ratios while the schedule decays (the end of a cosine run) or warms up.
    assert judged(lambda s: 1e-7, [1e-3 * (1 - s / 100) for s in range(60)]) == []
    assert judged(lambda s: 1e-7, [1e-3 * (s + 1) / 60 for s in range(60)]) == []
    # GOOD: the ~1e-3 rule of thumb.
    assert judged(lambda s: 1e-3, [1e-3] * 100) == []
