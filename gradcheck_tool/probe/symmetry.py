"""Units that stay identical: the symmetry a constant or copied initialisation leaves (GH121).

Two units of a layer (rows of a Linear weight, filters of a conv, gate rows of an RNN) are
stuck together when their weights are identical AND the probe's first backward gave them
identical, nonzero gradients: then every optimizer step (SGD, momentum, Adam: all act per
coordinate) moves them identically and they stay one unit forever (Goodfellow et al., Deep
Learning, 8.4).  Identical weights alone are not enough: a zero-initialised last layer of a
residual branch, a zero output head or LoRA's B = 0 have identical (zero) rows, but the
random layers around them give each row a different gradient, and the first step breaks the
tie.  Zero gradients are left to the rules about gradients that do not arrive (GH110, GH112).

The output layer is left out: its units are told apart by the loss's targets, not by weights
after them, and the rows of classes absent from a probe batch get identical gradients by chance
(a zero-initialised 1000-class head would look stuck).  It is the weight layer whose output
gradient arrives first in the backward pass.

Cost: one matrix-vector product with a random vector and a sort of its ``units`` entries per
weight layer, once per probe.  Only rows whose projections coincide are compared entry by entry.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from gradcheck_tool.probe import kinds
from gradcheck_tool.probe.record import SymmetryStats

WEIGHT_TOL = 1e-6  # rows equal to within this share of max |W| are identical
GRAD_TOL = 1e-4  # gradient rows equal to within this share of the pair's max |grad| (rounding of identical sums)


Full = Callable[[torch.Tensor], torch.Tensor]  # a sharded tensor gathered whole (``Sharding.full``)


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _weight_and_grad(module: nn.Module, full: Full) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return None  # rows are tokens, not units: each row's gradient comes from its own tokens
    param = module.weight_ih_l0 if isinstance(module, nn.RNNBase) else getattr(module, "weight", None)
    weight = kinds.primary_weight(module)
    if weight is None or not isinstance(param, torch.Tensor) or not param.is_leaf or param.grad is None \
            or param.grad.is_sparse:  # a non-leaf weight (a parametrization) has no .grad of its own
        return None
    weight, grad = full(weight.detach()), full(param.grad.detach())
    grad = grad.t() if weight.shape != grad.shape else grad  # GPT-2's Conv1D
    return weight.reshape(weight.shape[0], -1), grad.reshape(weight.shape[0], -1)


def symmetric_layers(watched: list[tuple[str, nn.Module]], output_layer: Optional[str],
                     full: Full = _whole) -> list[SymmetryStats]:
    """``unit_symmetry`` of every watched layer but ``output_layer``, keeping those with identical units."""
    found = (unit_symmetry(name, module, full) for name, module in watched if name != output_layer)
    return [stats for stats in found if stats is not None]


def unit_symmetry(name: str, module: nn.Module, full: Full = _whole) -> Optional[SymmetryStats]:
    """The units of ``module`` that are stuck together, or None when there are none."""
    pair = _weight_and_grad(module, full)
    if pair is None:
        return None
    rows, grads = pair
    units = rows.shape[0]
    if units < 2 or not rows.is_floating_point():
        return None
    with torch.no_grad():
        # Two random projections: identical rows coincide in both (to rounding); distinct rows
        # almost never do, so only the few coinciding neighbours are compared entry by entry.
        v = torch.randn(rows.shape[1], 2, generator=torch.Generator().manual_seed(0)).to(rows.device, rows.dtype)
        projection = rows @ v
        # Sorted by weights, ties by gradient: rows identical in both end up side by side.
        by_grad = torch.argsort(grads @ v[:, 0].to(grads.dtype), stable=True)
        order = by_grad[torch.argsort(projection[by_grad, 0], stable=True)]
        step = (projection[order[1:]] - projection[order[:-1]]).abs()
        scale = float(rows.abs().max())
        # |w . v| rounding stays far below k * max|W| * 1e-5 for |v| < 5.
        close = (step <= 1e-5 * rows.shape[1] * scale).all(dim=1)
        if not bool(close.any()):
            return None
        a, b = order[:-1][close], order[1:][close]
        same_weight = (rows[a] - rows[b]).abs().amax(dim=1) <= WEIGHT_TOL * scale
        g_scale = torch.maximum(grads[a].abs().amax(dim=1), grads[b].abs().amax(dim=1))  # each pair's own scale
        moving = g_scale > 0
        same_grad = (grads[a] - grads[b]).abs().amax(dim=1) <= GRAD_TOL * g_scale
        identical = int(same_weight.sum())
        stuck = int((same_weight & same_grad & moving).sum())
    if identical == 0:
        return None
    # Each identical adjacent pair merges two units into one (a run of k merges k + 1 units).
    return SymmetryStats(name=name, type=type(module).__name__, units=units,
                         distinct_weights=units - identical, learning_units=units - stuck,
                         constant=identical == units - 1)
