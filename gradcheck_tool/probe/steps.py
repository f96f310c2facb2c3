"""A few steps of the file's own optimizer: whether the loss diverges (GH140), how fast the
weights' norms grow (GH143), how large each step is against its weight (GH141/GH142), and, when
asked, the stability bound at initialisation (probe/curvature.py, GH144).

Step ``t`` is a plain training step on probe batch ``t``: ``torch.manual_seed(seed + t)``;
``inputs = make_inputs()``; the loss (``loss_fn`` or the default, seeded ``seed + t``);
``zero_grad``; ``backward``; ``step``.  The L2 norm of every trainable weight with two or
more dimensions is read before the first step and after each one, with one host sync per
step, and so is each step's update ``||w_t+1 - w_t||`` and its part orthogonal to ``w_t`` (a copy
of the matrices is held for it).  This trains the model: the CLI's child process discards the model afterwards, and
the Python API wraps the run in ``parameters_kept``.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.probe.collector import l2
from gradcheck_tool.probe.curvature import measure_curvature
from gradcheck_tool.probe.engine import Progress, call_model
from gradcheck_tool.probe.outputs import compute_loss
from gradcheck_tool.probe.record import StepStats, WeightGrowth
from gradcheck_tool.probe.state import preserved

# Optimizers whose step does not scale with the loss: the default loss (whose scale is an
# arbitrary unit-norm cotangent) measures them as faithfully as the file's own loss would.
SCALE_FREE = frozenset({"Adam", "AdamW", "NAdam", "RAdam", "Adamax", "RMSprop", "Adagrad", "Adadelta"})
# LBFGS needs a closure, SparseAdam sparse gradients: not a plain step.
UNSUPPORTED = frozenset({"LBFGS", "SparseAdam"})
# How the step is executed, not what it computes: dropped, so a config written for CUDA
# (capturable=True, fused=True) still runs where the probe does.
EXECUTION = frozenset({"fused", "foreach", "capturable", "differentiable"})


def build_optimizer(name: str, kwargs: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)) or name in UNSUPPORTED:
        raise GradhealthError(f"torch.optim.{name} cannot be run by the optimizer probe")
    kwargs = {key: value for key, value in kwargs.items() if key not in EXECUTION}
    try:
        return cls([p for p in model.parameters() if p.requires_grad], **kwargs)
    except (TypeError, ValueError) as err:
        raise GradhealthError(f"torch.optim.{name}(**{kwargs}) could not be rebuilt: {err}") from err


@contextlib.contextmanager
def parameters_kept(model: nn.Module) -> Iterator[None]:
    """Everything ``preserved`` restores, and the parameters' values too (a copy of them is held)."""
    saved = [(p, p.detach().clone()) for p in model.parameters()]
    with preserved(model):
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in saved:
                    p.copy_(value)


def measure_steps(model: nn.Module, make_inputs: Callable[[], Any], loss_fn: Optional[Callable],
                  optimizer: torch.optim.Optimizer, *, steps: int, seed: int,
                  progress: Optional[Progress] = None, curvature: bool = False) -> Optional[StepStats]:
    """None when the steps would not mean anything: SGD's scale with the loss, and the default
    loss's scale is arbitrary, so SGD (and any optimizer not in SCALE_FREE) needs ``loss_fn``.
    ``curvature``: measure the stability bound first, at the initial weights."""
    if loss_fn is None and type(optimizer).__name__ not in SCALE_FREE:
        return None
    sharpness = measure_curvature(model, make_inputs, loss_fn, optimizer, seed=seed) if curvature else None
    names = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    weights = [p for _, p in names]
    model.train()
    with torch.no_grad():
        previous = [w.detach().clone() for w in weights]
        history = [torch.stack([l2(w) for w in previous]).tolist()] if weights else [[]]
    updates: list[list[float]] = []
    tangential: list[list[float]] = []
    losses: list[float] = []
    for step in range(steps):
        torch.manual_seed(seed + step)
        inputs = make_inputs()
        loss = compute_loss(loss_fn, call_model(model, inputs), inputs, seed + step, model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            moved = [_update(w.detach(), before) for w, before in zip(weights, previous)]
            values = torch.stack([loss.detach().float().reshape(()), *(l2(w.detach()) for w in weights),
                                  *(x for pair in moved for x in pair)]).tolist()
        del loss, inputs
        n = len(weights)
        losses.append(values[0])
        history.append(values[1:n + 1])
        updates.append(values[n + 1::2])
        tangential.append(values[n + 2::2])
        if progress is not None:
            progress(step + 1, steps, "optimizer step")
        if not all(math.isfinite(v) for v in values):
            break  # diverged: later steps add nothing but time
    optimizer.zero_grad(set_to_none=True)
    group = optimizer.param_groups[0]
    name = type(optimizer).__name__
    return StepStats(
        optimizer=name,
        lr=float(group.get("lr", 0.0)),
        weight_decay=float(group.get("weight_decay", 0.0) or 0.0),
        decoupled=name == "AdamW" or bool(group.get("decoupled_weight_decay", False)),
        losses=tuple(losses),
        weights=tuple(WeightGrowth(n, n.rpartition(".")[0], tuple(h[i] for h in history),
                                   tuple(u[i] for u in updates), tuple(t[i] for t in tangential))
                      for i, (n, _) in enumerate(names)),
        curvature=sharpness,
    )


def _update(weight: torch.Tensor, before: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """||w - before|| and its part orthogonal to ``before``; ``before`` becomes ``w``.  In place, with
    no temporary the size of the weight: ``d = before - w``, and ``<w - before, before> = -<d, w> - |d|^2``."""
    norm_before = l2(before).clamp_min(1e-30)
    before.sub_(weight)
    step = l2(before)
    radial = -(torch.dot(before.reshape(-1), weight.reshape(-1)) + step.square()) / norm_before
    before.copy_(weight)
    return step, (step.square() - radial.square()).clamp_min(0).sqrt()
