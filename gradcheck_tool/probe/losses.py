"""What ``loss_fn`` does with the model's output: the loss functions it calls and their inputs
(GH107 probabilities into a loss that expects logits, GH108 a regression target that broadcasts).

``LossWatch`` is a ``TorchFunctionMode`` active around the first probe batch's ``loss_fn`` call
only (the forward and backward never run under it), so it costs a Python call per op of the loss
function, once per scan.  ``nn.CrossEntropyLoss`` and the other loss modules call the functional
form, so one table covers modules and functions.  For each call it notes:

* a classification loss (``cross_entropy``, ``nll_loss``, ``binary_cross_entropy_with_logits``)
  whose input is probabilities: the output of a softmax or sigmoid, seen in its autograd node
  through reshapes, dtype casts and indexing, or (cross_entropy / nll_loss) values that are
  non-negative and sum to 1 over the class axis (``exp(log_softmax)``, ``x / x.sum(1)``).  Then it
  measures the damage (``shrink``): the gradient at the logits z under the call as written, over
  the gradient under the loss the function expects (z itself for the logit losses,
  ``log_softmax(z)`` for nll_loss), both by autograd on z reconstructed from the probabilities
  (``log p`` for a softmax, shift-invariant; ``log p - log(1 - p)`` for a sigmoid), on at most
  ``SAMPLE`` entries of the batch (a ratio of per-row gradients: the row count cancels);
* a regression loss (``mse_loss``, ``l1_loss``, ``smooth_l1_loss``, ``huber_loss``) whose input
  and target broadcast to a shape larger than both ((N, 1) against (N,) gives (N, N)).

Observation never changes the loss: each check runs on detached copies, and any error in it is
swallowed (the call is then not recorded), so the user's loss is computed exactly as without it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from gradcheck_tool.probe.record import LossCall

LOGIT_LOSSES = {F.cross_entropy: "cross_entropy", F.nll_loss: "nll_loss",
                F.binary_cross_entropy_with_logits: "binary_cross_entropy_with_logits"}
REGRESSION_LOSSES = {F.mse_loss: "mse_loss", F.l1_loss: "l1_loss", F.smooth_l1_loss: "smooth_l1_loss",
                     F.huber_loss: "huber_loss"}
_SQUASHES = {"SoftmaxBackward0": "softmax", "SigmoidBackward0": "sigmoid"}
# Autograd nodes that move, cast or select values without changing what they are (probabilities stay
# probabilities): walked through from the loss input back to the squash that made it.
_PASS_THROUGH = frozenset({
    "ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "TBackward0", "TransposeBackward0",
    "PermuteBackward0", "SqueezeBackward0", "SqueezeBackward1", "UnsqueezeBackward0", "CloneBackward0",
    "ToCopyBackward0", "SelectBackward0", "SliceBackward0", "IndexBackward0", "ExpandBackward0",
    "ContiguousBackward0", "AliasBackward0", "SqueezeBackward2", "SqueezeBackward3",
})
SAMPLE = 1 << 18  # entries of the loss input the shrink is measured on
_TINY = 1e-12


def _squash_node(t: torch.Tensor):
    """(the softmax/sigmoid autograd node that made ``t``, its kind), or (None, None)."""
    node = t.grad_fn
    for _ in range(32):
        if node is None:
            return None, None
        kind = type(node).__name__
        if kind in _SQUASHES:
            return node, _SQUASHES[kind]
        if kind not in _PASS_THROUGH or not node.next_functions:
            return None, None
        node = node.next_functions[0][0]
    return None, None


def _is_distribution(x: torch.Tensor, dim: int) -> bool:
    """Non-negative values summing to 1 over ``dim``: probabilities, not logits or log-probabilities.
    Read on the first rows (at most ``SAMPLE`` entries): logits show a negative entry at once."""
    if x.dim() < 2 or x.shape[dim] < 2 or dim in (0, -x.dim()):
        return False
    x = _rows(x.detach(), max(1, SAMPLE // max(1, x[0].numel()))).float()
    return bool(x.min() >= 0) and bool(((x.sum(dim) - 1).abs() < 1e-3).all())


def _rows(t: torch.Tensor, n: int) -> torch.Tensor:
    return t[:n] if t.dim() and t.shape[0] >= n else t


def shrink(func: Callable, kind: str, squash: str, dim: int, probs: torch.Tensor, target: Any,
           kwargs: dict) -> float:
    """||d loss / d z|| as written over ||d loss / d z|| of the loss the function expects (module docstring)."""
    p = probs.detach().float()
    per_row = max(1, p[0].numel()) if p.dim() else 1
    n = max(1, SAMPLE // per_row)
    if isinstance(target, torch.Tensor) and p.dim() and target.dim() and target.shape[0] == p.shape[0]:
        target = _rows(target.detach(), n)
    p = _rows(p, n).clamp(_TINY, 1.0)
    if squash == "softmax":
        z0, squashed, log_squashed = p.log(), (lambda z: z.softmax(dim)), (lambda z: z.log_softmax(dim))
    else:
        z0 = p.log() - (1 - p).clamp_min(_TINY).log()
        squashed, log_squashed = torch.sigmoid, F.logsigmoid

    def grad(make_input: Callable) -> torch.Tensor:
        z = z0.clone().requires_grad_(True)
        with torch.enable_grad():
            out = func(make_input(z), target, **kwargs)
            (g,) = torch.autograd.grad(out.sum(), z)
        return torch.linalg.vector_norm(g)

    expected = log_squashed if kind == "nll_loss" else (lambda z: z)
    written, intended = grad(squashed), grad(expected)
    return float(written / intended) if intended > 0 else math.nan


class LossWatch(TorchFunctionMode):
    """Records a ``LossCall`` for each suspicious loss call; ``owner(node)`` names the module whose
    output an autograd node made (or None)."""

    def __init__(self, owner: Callable[[Any], Optional[str]]):
        super().__init__()
        self._owner = owner
        self._made_here: list = []  # squash nodes loss_fn itself made (kept alive to compare by identity)
        self.calls: list[LossCall] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if isinstance(result, torch.Tensor) and type(result.grad_fn).__name__ in _SQUASHES:
            self._made_here.append(result.grad_fn)
        if (func in LOGIT_LOSSES or func in REGRESSION_LOSSES) and len(args) >= 2:
            try:
                call = self._observe(func, args[0], args[1], kwargs)
            except Exception:  # observation must never break the user's loss
                call = None
            if call is not None:
                self.calls.append(call)
        return result

    def _observe(self, func, x, target, kwargs) -> Optional[LossCall]:
        if not (isinstance(x, torch.Tensor) and isinstance(target, torch.Tensor) and x.is_floating_point()):
            return None
        if func in REGRESSION_LOSSES:
            if x.shape == target.shape:
                return None
            joint = torch.broadcast_shapes(x.shape, target.shape)
            if math.prod(joint) <= max(x.numel(), target.numel()):
                return None
            return LossCall(REGRESSION_LOSSES[func], tuple(x.shape), tuple(target.shape), broadcast=tuple(joint))
        kind = LOGIT_LOSSES[func]
        node, squash = _squash_node(x)
        class_dim = 1 if x.dim() >= 2 else 0
        dim = class_dim
        if node is not None:
            saved = getattr(node, "_saved_dim", None)  # an int64 read back as unsigned: -1 is 2**64 - 1
            saved = saved - 2**64 if isinstance(saved, int) and saved >= 2**63 else saved
            if squash == "softmax" and isinstance(saved, int) and node._saved_result.dim() == x.dim() > 0:
                dim = saved
        elif kind != "binary_cross_entropy_with_logits" and _is_distribution(x, class_dim):
            squash = "softmax"
        if squash is None:
            return None
        owner = None
        if node is not None:
            owner = self._owner(node) or self._owner(node.next_functions[0][0])
        try:
            factor = shrink(func, kind, squash, dim, x, target, kwargs)
        except Exception:  # a loss argument the re-run cannot take: the call is still reported
            factor = math.nan
        return LossCall(kind, tuple(x.shape), tuple(target.shape), squashed_by=squash, producer=owner,
                        in_model=not any(node is made for made in self._made_here) if node is not None else None,
                        shrink=factor if math.isfinite(factor) else None)
