"""Gradient through time for RNN/LSTM/GRU layers.

For each recurrent layer the probe re-runs it on the input it saw in the first
batch and differentiates only the *last* time step's output w.r.t. the input at
every step: ||d(v . y_T) / d x_t||.  A loss on every step would hide vanishing
(each x_t gets gradient from its own y_t); the last step alone shows how far a
signal can travel back, the quantity Pascanu et al. (2013) analyse.
The call uses ``torch.autograd.grad`` on a detached copy of the input, so it
leaves no ``.grad`` behind and does not disturb the measured parameter gradients.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from gradcheck_tool.probe.record import RecurrentStats

_SQUARINGS = 6  # k = 2**6 = 64


def _gelfand_radius(matrix: torch.Tensor) -> float:
    """Spectral radius by Gelfand's formula, rho(A) = lim ||A^k||^(1/k), with k = 64.

    Six squarings cost a few matrix products where an eigendecomposition of a 256x256
    block costs ~0.2 s; the Frobenius norm overestimates by at most n^(1/128) (4% at n = 256).
    Each square is renormalised, its scale kept in log space, so nothing overflows.
    """
    m = matrix.float()
    log_scale = 0.0
    for _ in range(_SQUARINGS):
        m = m @ m
        norm = float(torch.linalg.matrix_norm(m))
        if norm == 0.0 or not math.isfinite(norm):
            return 0.0 if norm == 0.0 else math.inf
        m = m / norm
        log_scale = 2 * log_scale + math.log(norm)
    return math.exp(log_scale / 2**_SQUARINGS)


def spectral_radius(module: nn.RNNBase) -> Optional[float]:
    """Largest spectral radius over the square gate blocks of every recurrent weight."""
    radius = 0.0
    for name, weight in module.named_parameters():
        if name.startswith("weight_hh"):
            hidden = weight.shape[1]
            for block in weight.detach().split(hidden, dim=0):
                if block.shape[0] == block.shape[1]:
                    radius = max(radius, _gelfand_radius(block))
    return radius


def through_time(name: str, module: nn.RNNBase, x: torch.Tensor, seed: int) -> Optional[RecurrentStats]:
    if x.dim() != 3 or not x.is_floating_point():
        return None  # packed or unbatched sequences: nothing to measure per step
    time_dim = 1 if module.batch_first else 0
    steps = x.shape[time_dim]
    if steps < 2:
        return None
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = module(x)[0]
        last = out.select(time_dim, steps - 1)
        v = torch.randn(last.shape, generator=torch.Generator().manual_seed(seed)).to(last.device, last.dtype)
        (grad,) = torch.autograd.grad((last * v).sum(), x)
    other = [d for d in range(3) if d != time_dim]
    norms = torch.linalg.vector_norm(grad.double(), dim=other).cpu().tolist()
    return RecurrentStats(
        name=name,
        type=type(module).__name__,
        steps=steps,
        step_grad_norms=tuple(reversed(norms)),
        spectral_radius=spectral_radius(module),
    )
