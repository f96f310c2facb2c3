"""The probe's device side: the default loss draws its labels, targets or cotangent on the output's
device (never on the host, then copied); the hooks only queue device tensors, and the host reads
them once per pass; the batched reductions give the numbers the plain reductions give.
The CUDA variants run where a GPU is."""
import math

import pytest
import torch
from torch import nn

from gradcheck_tool.probe import collector as collector_module
from gradcheck_tool.probe.collector import Collector, _largest, _magnitudes, l2
from gradcheck_tool.probe.engine import call_model, watched_modules
from gradcheck_tool.probe.outputs import DEFAULT_LOSS, MSE_LOSS, default_loss, describe_default_loss, target_seed

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


class Scalar(nn.Module):
    """Returns a 0-dim output: the one case the unit cotangent is the default for."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 1)

    def forward(self, x):
        return self.fc(x).sum(), self.fc(x).sum() * 2


def _outputs(device: str):
    torch.manual_seed(0)
    x = torch.randn(5, 6, device=device)
    return {
        "cross-entropy": nn.Linear(6, 7).to(device)(x),
        MSE_LOSS: torch.tanh(nn.Linear(6, 3).to(device)(x)),
        DEFAULT_LOSS: Scalar().to(device)(x),
    }


@pytest.mark.parametrize("device", DEVICES)
def test_the_default_loss_draws_on_the_outputs_device(device, monkeypatch):
    outputs, drawn = _outputs(device), []
    for name in ("randn", "randint"):
        real = getattr(torch, name)

        def spy(*args, _real=real, **kwargs):
            out = _real(*args, **kwargs)
            # Asked for on a device (not the host default, then copied), by a generator that lives there.
            drawn.append((torch.device(kwargs.get("device", "cpu")), kwargs["generator"].device, "device" in kwargs))
            return out

        monkeypatch.setattr(torch, name, spy)
    for kind, output in outputs.items():
        drawn.clear()
        assert kind in describe_default_loss(output)
        loss = default_loss(output, seed=3)
        assert loss.device.type == device and drawn, kind
        assert all(where.type == device and gen.type == device and asked for where, gen, asked in drawn), (kind, drawn)


def test_the_unit_cotangent_keeps_its_numbers_on_cpu():
    """Drawn from a generator on the output's device, seeded as before: on CPU the very same draw."""
    output = _outputs("cpu")[DEFAULT_LOSS]
    generator = torch.Generator().manual_seed(target_seed(4))
    expected = sum((t * torch.randn(t.shape, generator=generator)).sum() for t in output) / math.sqrt(2)
    assert default_loss(output, seed=4).item() == expected.item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_magnitudes_give_the_l2_and_inf_norms(dtype):
    torch.manual_seed(0)
    for t in (torch.randn(300) * 7, -torch.rand(50) - 3, torch.tensor([2.0, -float("inf")]), torch.tensor([1.0, float("nan")])):
        t = t.to(dtype)
        norm, low, high = (float(v) for v in _magnitudes(t))
        wide = torch.float32 if dtype in (torch.float16, torch.bfloat16) else None
        assert norm == float(torch.linalg.vector_norm(t, dtype=wide)) or (math.isnan(norm) and t.isnan().any())
        inf_norm = float(torch.linalg.vector_norm(t, math.inf, dtype=wide))
        assert _largest(low, high) == inf_norm or (math.isnan(inf_norm) and math.isnan(_largest(low, high)))


@pytest.mark.parametrize("device", DEVICES)
def test_hooks_never_read_the_device_and_the_pass_is_read_once(device, monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4)).to(device)
    x = torch.randn(32, 8, device=device)
    collector = Collector(watched_modules(model))
    handles = collector.attach()
    reads = []
    for method in ("item", "tolist", "cpu", "numpy", "__float__"):
        real = getattr(torch.Tensor, method)

        def counted(self, *args, _real=real, _name=method, **kwargs):
            reads.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, counted)
    trainable = list(model.named_parameters())
    collector.start_pass()
    output = call_model(model, x)
    collector.watch_output([output])
    output.square().mean().backward()
    collector.queue_param_grads(trainable)
    assert reads == []  # forward, backward and every hook: nothing read on the host
    norms = collector.end_pass()
    assert reads == ["cpu", "numpy"]  # one transfer for the whole pass (and a view of it)
    monkeypatch.undo()
    for handle in handles:
        handle.remove()
    for name, p in trainable:
        assert norms[name] == float(l2(p.grad))
    assert collector_module.EXPONENT_SAMPLE >= 4096


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_on_cuda_no_hook_synchronises():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).cuda()
    collector = Collector(watched_modules(model))
    handles = collector.attach()
    collector.start_pass()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        output = call_model(model, torch.randn(32, 8, device="cuda"))
        collector.watch_output([output])
        default_loss(output, seed=0).backward()
        collector.queue_param_grads(list(model.named_parameters()))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert collector.end_pass()
    for handle in handles:
        handle.remove()
