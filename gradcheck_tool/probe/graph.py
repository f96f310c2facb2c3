"""What the forward's autograd graph says about the model's structure.

``residual_norm_ends`` finds the normalisation layers whose output is summed with another
tensor: the last BatchNorm of each residual branch (``out = bn3(conv3(h)) + identity``).  Whether
those start at γ = 1 or γ = 0 decides how fast the residual stream grows with depth at init
(Goyal et al. 2017, torchvision's ``zero_init_residual``), which the depth rules explain.
It reads the graph by node type, so ``x + y``, ``x += y`` and ``torch.add`` all count, and an
``nn.Identity`` between the norm and the sum is invisible to it, as it is to autograd.
"""
from __future__ import annotations

from typing import Iterable

import torch

_SUM = ("AddBackward0", "AddBackward1")
_NORM = ("BatchNorm", "LayerNorm", "GroupNorm")  # NativeBatchNormBackward0, CudnnBatchNormBackward0, ...
_MAX_NODES = 200_000  # a bound on the walk, far above any model the probe fits in memory


def _weight_of(node) -> int | None:
    """The id of the affine weight an autograd normalisation node accumulates into."""
    for fn, _ in node.next_functions:
        if fn is not None and type(fn).__name__ == "AccumulateGrad":
            return id(fn.variable)
    return None


def residual_norm_ends(outputs: Iterable[torch.Tensor]) -> dict[int, int]:
    """Normalisation weights whose layer's output feeds a sum directly: weight id -> the sum's
    index (a projection shortcut's norm and the branch's last norm share one sum)."""
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    seen: set = set()
    ends: dict[int, int] = {}
    sums = 0
    while stack and len(seen) < _MAX_NODES:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        is_sum = type(node).__name__ in _SUM
        for fn, _ in node.next_functions:
            if fn is None:
                continue
            if is_sum and any(token in type(fn).__name__ for token in _NORM):
                weight = _weight_of(fn)
                if weight is not None:
                    ends.setdefault(weight, sums)
            stack.append(fn)
        sums += is_sum
    return ends
