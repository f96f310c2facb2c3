"""The sharpness of the loss at initialisation and the largest learning rate the file's optimizer
is stable at (GH140's advice, GH144).

``lambda_max`` of the Hessian ``H`` of the probe loss on probe batch 0 is found by power iteration
on Hessian-vector products (double backward, Pearlmutter 1994): ``Hv = d(g . v)/dw`` with ``g``
the gradient built with ``create_graph``.  One forward and one double-graph backward, then one
HVP per iteration; the Rayleigh quotient stops moving (relative change < ``TOL``) in 10-20.

The stability bound of each optimizer on a quadratic with top curvature ``lambda``:

- SGD: ``lr < 2 / lambda`` (gradient descent's classic bound; Cohen et al. 2021, "Gradient
  descent on neural networks typically occurs at the edge of stability").
- SGD with heavy-ball momentum ``beta`` (PyTorch's ``buf = beta buf + (1 - dampening) g``):
  ``lr (1 - dampening) < (2 + 2 beta) / lambda``; Nesterov: ``lr < (2 + 2 beta) / ((1 + 2 beta)
  lambda)`` (Cohen et al. 2021, appendix on momentum).  Coupled ``weight_decay`` adds to ``lambda``.
- Adam/AdamW: the update is ``lr m_hat / P`` with ``P = sqrt(v) + eps`` and ``m`` an exponential
  moving average, ``m = beta1 m + (1 - beta1) g``.  Along an eigenvector of the preconditioned
  Hessian ``P^-1 H`` with eigenvalue ``a``, without bias correction this is heavy-ball momentum
  ``beta1`` at rate ``lr (1 - beta1)``, stable iff ``lr (1 - beta1) a < 2 + 2 beta1``: the edge of
  stability of adaptive methods, ``a < (2 + 2 beta1) / ((1 - beta1) lr)``, 38/lr for beta1 = 0.9
  (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability"), where training
  hovers once it is under way.  At initialisation the bias correction rules instead: the first
  step is ``m_hat_1 = g_1``, a plain preconditioned gradient step, which overshoots once
  ``lr a > 2``, and the next ones amplify it (the top component peaks at 3x its start for
  ``lr a = 4``, 20x for 8, 2700x for 16, over ten steps at beta1 = 0.9; the real torch Adam spikes
  by 5e7 at 0.95 x 38/a).  So the bound the probe reports for Adam's first steps is
  ``2 / lambda_max(P^-1 H)``; the 38/lr edge is what warmup lets training grow into.  ``v`` is read
  from the gradients of the first ``ADAM_BATCHES`` probe batches, the second moment Adam's first
  steps would hold.

This is a statement about initialisation.  During training, sharpness rises until it reaches the
bound and then hovers there ("the edge of stability"): a loss that rises and falls while crossing
it mid-run is normal, not divergence.  At initialisation, a rate above the bound makes the first
steps overshoot along the sharpest direction; a network may still recover (the catapult phase,
Lewkowycz et al. 2020), which the rules read from the measured steps.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from gradcheck_tool.errors import first_line
from gradcheck_tool.probe.engine import call_model
from gradcheck_tool.probe.outputs import compute_loss, floating_outputs
from gradcheck_tool.probe.record import Curvature

ITERATIONS = 20
TOL = 1e-3
ADAM_BATCHES = 3
ADAM_LIKE = frozenset({"Adam", "AdamW"})


def stability_constant(optimizer: torch.optim.Optimizer) -> Optional[tuple[float, str, bool]]:
    """(c, formula, preconditioned): the optimizer is stable while ``lr * sharpness < c`` (for SGD
    with dampening, ``c`` is divided by ``1 - dampening``).  None: no bound known for it."""
    group = optimizer.param_groups[0]
    name = type(optimizer).__name__
    if name == "SGD":
        beta = float(group.get("momentum", 0.0) or 0.0)
        if beta == 0:
            return 2.0, "2/λ_max", False
        if group.get("nesterov"):
            return (2 + 2 * beta) / (1 + 2 * beta), f"(2+2β)/((1+2β)λ_max), β={beta:g}", False
        damp = float(group.get("dampening", 0.0) or 0.0)
        if damp >= 1:
            return None
        return (2 + 2 * beta) / (1 - damp), f"(2+2β)/λ_max, β={beta:g}", False
    if name in ADAM_LIKE:  # the first, bias-corrected steps: see the module's docstring
        return 2.0, "2/λ_max(P⁻¹H)", True
    return None


def measure_curvature(model: nn.Module, make_inputs: Callable[[], Any], loss_fn: Optional[Callable],
                      optimizer: torch.optim.Optimizer, *, seed: int,
                      iterations: int = ITERATIONS) -> Optional[Curvature]:
    """λ_max (of ``H``, or of ``P^-1 H`` for Adam) and the bound on lr, at the model's current
    weights.  None when the optimizer has no known bound; a Curvature with ``sharpness=None`` and a
    ``note`` when it could not be measured.  Leaves no gradient behind, and the buffers (BatchNorm's
    running statistics) as they were, so the optimizer steps after it start from the same state."""
    constant = stability_constant(optimizer)
    if constant is None:
        return None
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        return _measure(model, make_inputs, loss_fn, optimizer, constant, seed, iterations)
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


def _measure(model, make_inputs, loss_fn, optimizer, constant, seed: int, iterations: int) -> Curvature:
    c, formula, preconditioned = constant
    params = [p for p in model.parameters() if p.requires_grad]
    group = optimizer.param_groups[0]
    model.train()
    torch.manual_seed(seed)
    inputs = make_inputs()
    output = call_model(model, inputs)
    loss = compute_loss(loss_fn, output, inputs, seed, model)
    outputs = [t for t in floating_outputs(output) if t.requires_grad]
    at_output = torch.autograd.grad(loss, outputs, create_graph=True, retain_graph=True, allow_unused=True)
    if not any(g is not None and g.requires_grad for g in at_output):
        return Curvature(None, None, formula, preconditioned, 0,
                         "the loss is linear in the model's output, so its curvature says nothing about "
                         "training: define loss_fn(output, inputs) to measure the stability bound")
    del at_output
    try:
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    except RuntimeError as err:
        return Curvature(None, None, formula, preconditioned, 0, f"no double backward: {first_line(err)}")
    pairs = [(p, g) for p, g in zip(params, grads) if g is not None]
    cut = Curvature(None, None, formula, preconditioned, 0,
                    "no double backward: an op (a custom autograd Function, a fused kernel) cuts the gradient "
                    "from the weights, so Hessian-vector products come back zero")
    if not any(g.requires_grad for _, g in pairs):
        return cut
    scale = _preconditioner([g.detach() for _, g in pairs], model, make_inputs, loss_fn, [p for p, _ in pairs],
                            float(group.get("eps", 0.0)), seed) if preconditioned else None

    def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
        u = v if scale is None else [x * s for x, s in zip(v, scale)]
        dot = sum((g * x).sum() for (_, g), x in zip(pairs, u))
        out = torch.autograd.grad(dot, [p for p, _ in pairs], retain_graph=True, allow_unused=True)
        out = [torch.zeros_like(p) if h is None else h for (p, _), h in zip(pairs, out)]
        return out if scale is None else [h * s for h, s in zip(out, scale)]

    try:
        top, used = _power(hvp, [p for p, _ in pairs], seed, iterations, shift=0.0)
        if top < 0:  # the largest |eigenvalue| is negative: shift it away to find the largest positive one
            top, more = _power(hvp, [p for p, _ in pairs], seed, iterations, shift=-top)
            used += more
    except RuntimeError as err:
        return Curvature(None, None, formula, preconditioned, 0, f"no double backward: {first_line(err)}")
    finally:
        del grads, pairs, loss, output
    if top == 0:  # a loss that is not linear in the output has curvature: the double graph was cut
        return dataclasses.replace(cut, hvps=used)
    if not preconditioned:
        top += float(group.get("weight_decay", 0.0) or 0.0)  # coupled L2 decay adds to every eigenvalue
    bound = c / top if top > 0 else math.inf
    return Curvature(top, bound, formula, preconditioned, used, "")


def _power(hvp, params: Sequence[torch.Tensor], seed: int, iterations: int, shift: float) -> tuple[float, int]:
    """Largest eigenvalue of ``H + shift I`` by power iteration, minus ``shift``; and the HVPs used."""
    generator = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=generator).to(p.device, p.dtype) for p in params]
    v = _normalised(v)
    value = math.nan
    for step in range(1, iterations + 1):
        hv = [h + shift * x for h, x in zip(hvp(v), v)]
        rayleigh = float(sum((h * x).sum() for h, x in zip(hv, v)))
        norm = math.sqrt(float(sum(h.square().sum() for h in hv)))
        if not math.isfinite(rayleigh) or norm == 0:
            return rayleigh - shift, step
        v = [h / norm for h in hv]
        if abs(rayleigh - value) <= TOL * abs(rayleigh):
            return rayleigh - shift, step
        value = rayleigh
    return value - shift, iterations


def _normalised(v: list[torch.Tensor]) -> list[torch.Tensor]:
    norm = math.sqrt(float(sum(x.square().sum() for x in v)))
    return [x / norm for x in v]


def _preconditioner(first: list[torch.Tensor], model: nn.Module, make_inputs, loss_fn, params, eps: float,
                    seed: int) -> list[torch.Tensor]:
    """``P^-1/2`` with ``P = sqrt(v) + eps``, ``v`` the mean squared gradient over the first
    ``ADAM_BATCHES`` probe batches (what Adam's bias-corrected second moment holds then)."""
    squares = [g.square() for g in first]
    for batch in range(1, ADAM_BATCHES):
        torch.manual_seed(seed + batch)
        inputs = make_inputs()
        loss = compute_loss(loss_fn, call_model(model, inputs), inputs, seed + batch, model)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        squares = [s + (0 if g is None else g.square()) for s, g in zip(squares, grads)]
    return [(s / ADAM_BATCHES).sqrt().add(eps).rsqrt() for s in squares]
