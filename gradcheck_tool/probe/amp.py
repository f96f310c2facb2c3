"""A real mixed-precision run of the file's optimizer steps (``--amp fp16|bf16``; GH150, GH151).

Step ``t`` is the autocast recipe on probe batch ``t`` (``torch.manual_seed(seed + t)``): forward
and loss under ``torch.autocast(device_type, dtype)``; with a GradScaler ``scaler.scale(loss)
.backward()``, ``scaler.step(optimizer)``, ``scaler.update()``, the scaler built with the file's own
``init_scale`` and ``growth_interval`` (static/analysis/amp_usage.py).  fp16 runs with a GradScaler unless the
file trains in fp16 without one; bf16 runs without (fp32's exponent range).  A step is skipped when
the scaler lowers the scale at its update (it found inf/NaN gradients), or, with no scaler, when a
gradient is not finite.  The model trains: the caller keeps its parameters (``parameters_kept``).

Every skip is one of (``classify``):

- ``search``: the loss is finite and no step has fit at this scale or above: the scaler looking
  for the largest scale the gradients fit, from its start down (2^16 by default), or up again after
  a growth.  What GradScaler is built for.
- ``spike``: a step overflows at a scale earlier steps fit at (the gradients grew), or its loss is
  not finite (the forward overflowed, which no loss scale reaches); the steps after it fit again.
- a ``collapse`` is a run that ends in ``PERSIST`` skips in a row: the scale is still falling when
  the run stops, a real overflow.  The run takes ``steps`` steps that fit, plus room for the search
  to fall from the start to ``FLOOR`` (2^-8: gradients of 2^24 in fp16); it stops early after
  ``PERSIST`` non-finite losses in a row.

On a skip that is not search, one diagnosis pass (forward hooks on the modules the probe watches:
leaves, and containers that own weights such as MultiheadAttention; tensor hooks on their
outputs; ``torch.autograd.grad`` at the step's scale) names the first module, in forward order,
whose output is inf/NaN, else the first, in backward order, whose output gradient is, else the
module of the first parameter whose gradient is (a weight gradient sums over the batch).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from torch import nn

from gradcheck_tool.probe.engine import Progress, call_model, watched_modules
from gradcheck_tool.probe.outputs import compute_loss, floating_outputs
from gradcheck_tool.probe.record import PERSIST, AmpStats, trailing_skips

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
FLOOR = 2.0**-8  # the lowest scale a search is given room to reach


def device_type_of(model: nn.Module) -> str:
    """Where the model's weights live, as autocast names it: "cuda", "cpu" (a model without any: "cpu")."""
    return next((p.device.type for p in model.parameters()), "cpu")


def measure_amp(model: nn.Module, make_inputs: Callable[[], Any], loss_fn: Optional[Callable],
                optimizer: Optional[torch.optim.Optimizer], *, dtype: str, steps: int, seed: int,
                device_type: Optional[str] = None, scaler: bool = True, init_scale: float = 2.0**16,
                growth_interval: int = 2000, progress: Optional[Progress] = None) -> AmpStats:
    """``optimizer`` None: the file has none; the weights stay at init (SGD with lr 0 steps them)."""
    device_type = device_type or device_type_of(model)  # autocast's device: where the weights are
    params = [p for p in model.parameters() if p.requires_grad]
    name = type(optimizer).__name__ if optimizer is not None else ""
    optimizer = optimizer if optimizer is not None else torch.optim.SGD(params, lr=0.0)
    scaler = scaler and dtype == "fp16"
    grad_scaler = torch.amp.GradScaler(device_type, init_scale=init_scale, growth_interval=growth_interval) \
        if scaler else None
    room = max(0, int(math.log2(init_scale / FLOOR)) + 1) if scaler else 0
    scales: list[float] = []
    losses: list[Optional[float]] = []
    skipped: list[int] = []
    first: Optional[tuple[str, str]] = None
    model.train()
    for t in range(steps + room):
        torch.manual_seed(seed + t)
        inputs = make_inputs()
        scale = grad_scaler.get_scale() if grad_scaler else 1.0
        with torch.autocast(device_type, dtype=DTYPES[dtype]):
            loss = compute_loss(loss_fn, call_model(model, inputs), inputs, seed + t, model)
        optimizer.zero_grad(set_to_none=True)
        if grad_scaler is not None:
            grad_scaler.scale(loss).backward()
            grad_scaler.step(optimizer)
            grad_scaler.update()
            skip = grad_scaler.get_scale() < scale
        else:
            loss.backward()
            grads = [p.grad for p in params if p.grad is not None]
            skip = bool(grads) and not bool(torch.stack(torch._foreach_norm(grads)).isfinite().all())
            if not skip:
                optimizer.step()
        value = loss.detach().float().item()
        scales.append(scale)
        losses.append(value if math.isfinite(value) else None)
        del loss
        if skip:
            skipped.append(t)
            if first is None and classify(scales, losses, skipped, scaler)[0][-1] != "search":
                first = first_nonfinite(model, inputs, loss_fn, seed + t, dtype, device_type, scale)
        if progress is not None:
            progress(min(t + 1 - len(skipped), steps), steps, "amp step")
        if t + 1 - len(skipped) >= steps or losses[-PERSIST:] == [None] * PERSIST:
            break
    optimizer.zero_grad(set_to_none=True)
    kinds, verdict = classify(scales, losses, skipped, scaler)
    if verdict == "collapse" and first is None:
        first = first_nonfinite(model, inputs, loss_fn, seed + t, dtype, device_type, scales[-1])
    return AmpStats(dtype=dtype, device=device_type, optimizer=name, scaler=scaler, init_scale=init_scale if scaler
                    else 1.0, growth_interval=growth_interval, scales=tuple(scales), losses=tuple(losses),
                    skipped=tuple(skipped), kinds=tuple(kinds),
                    final_scale=grad_scaler.get_scale() if grad_scaler else 1.0, verdict=verdict,
                    first_nonfinite=first[0] if first else None, nonfinite_in=first[1] if first else None)


def classify(scales: list[float], losses: list[Optional[float]], skipped: list[int],
             scaler: bool = True) -> tuple[list[str], str]:
    """The kind of each skipped step and the run's verdict (the module docstring), from the scale
    each step ran at, its loss (None: not finite) and which steps were skipped; without a
    ``scaler`` there is no search."""
    skips = set(skipped)
    kinds = []
    fit = 0.0  # the largest scale a step has fit at so far
    for t, scale in enumerate(scales):
        if t not in skips:
            fit = max(fit, scale)
        elif losses[t] is None:
            kinds.append("forward")
        else:
            kinds.append("search" if scaler and scale > fit else "spike")
    if trailing_skips(len(scales), skips) >= PERSIST:
        return kinds, "collapse"
    if any(kind != "search" for kind in kinds):
        return kinds, "spike"
    return kinds, "search" if kinds else "clean"


def first_nonfinite(model: nn.Module, inputs: Any, loss_fn: Optional[Callable], seed: int, dtype: str,
                    device_type: str, scale: float) -> Optional[tuple[str, str]]:
    """(module, "forward"): the first watched module in forward order with an inf/NaN output; else
    (module, "backward"): the first, in backward order, whose output gradient at ``scale`` is, or
    the module of the first parameter whose gradient is; None when none (the loss itself)."""
    forward: list[str] = []
    backward: list[str] = []
    handles = []

    def watch(name: str):
        def hook(module, args, output):
            tensors = floating_outputs(output)
            if not forward and any(not bool(x.detach().isfinite().all()) for x in tensors):
                forward.append(name)
            for x in tensors:
                if x.requires_grad:
                    x.register_hook(lambda g: backward.append(name) if not backward and not bool(
                        g.isfinite().all()) else None)
        return hook

    # The modules the probe watches: leaves, and containers that own weights (MultiheadAttention,
    # whose projections never call a submodule's forward): where an overflow first shows.
    for name, module in watched_modules(model):
        if module is not model:
            handles.append(module.register_forward_hook(watch(name)))
    try:
        torch.manual_seed(seed)
        with torch.autocast(device_type, dtype=DTYPES[dtype]):
            loss = compute_loss(loss_fn, call_model(model, inputs), inputs, seed, model)
        if forward:
            return forward[0], "forward"
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        grads = []
        if loss.requires_grad and math.isfinite(loss.detach().float().item()):
            grads = torch.autograd.grad(loss * scale, [p for _, p in named], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    if backward:
        return backward[0], "backward"
    # no module's output gradient: a weight's own (x^T g sums over the batch and can overflow alone)
    return next(((n.rpartition(".")[0] or n, "backward") for (n, _), g in zip(named, grads)
                 if g is not None and not bool(g.isfinite().all())), None)
