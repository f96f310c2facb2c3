"""What the probe differentiates: the model's floating outputs and the loss over them.

Outputs may be a tensor, a tuple/list, a dict, or a transformers ``ModelOutput``
(a dict subclass; its ``logits`` are used when present, as the training loss would).

The default loss, used when the file defines no ``loss_fn(output, inputs)``, is
scale-free: ``sum_i <y_i, v_i> / sqrt(N)`` with ``v`` drawn from N(0, 1) by a
generator seeded per batch (independent of the global RNG) and N the number of
output elements.  Its gradient at the output is a random direction of norm ~1,
like a typical loss's, so every ratio the rules read is meaningful and no
output scale or target distribution is assumed.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable, Optional

import torch

from gradcheck_tool.errors import GradhealthError

DEFAULT_LOSS = "default: unit-norm random cotangent on the output"


def floating_outputs(output: Any) -> list[torch.Tensor]:
    if isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        output = output["logits"]
    # An explicit stack, not a recursive closure: a closure that refers to itself forms a reference
    # cycle holding `found`, which kept the logits alive until the cyclic GC ran (+1 GiB on GPT-2).
    found: list[torch.Tensor] = []
    stack = [output]
    while stack:
        obj = stack.pop()
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() or obj.is_complex():
                found.append(obj)
        elif isinstance(obj, Mapping):
            stack.extend(reversed(list(obj.values())))
        elif isinstance(obj, (tuple, list)):
            stack.extend(reversed(obj))
    return found


def first_float_tensor(obj: Any) -> Optional[torch.Tensor]:
    """The main tensor of a module's output (LSTM's output, attention's first element)."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.is_floating_point() else None
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        for value in obj:
            t = first_float_tensor(value)
            if t is not None:
                return t
    return None


def default_loss(output: Any, seed: int) -> torch.Tensor:
    tensors = [t for t in floating_outputs(output) if t.requires_grad]
    if not tensors:
        raise GradhealthError(
            "the model's output has no floating tensor that depends on its parameters; "
            "define loss_fn(output, inputs) returning a scalar"
        )
    generator = torch.Generator().manual_seed(seed)
    total = sum(t.numel() for t in tensors)
    loss = sum(
        (t.float() * torch.randn(t.shape, generator=generator).to(t.device)).sum() for t in tensors
    )
    return loss / math.sqrt(total)


def compute_loss(loss_fn: Optional[Callable], output: Any, inputs: Any, seed: int) -> torch.Tensor:
    if loss_fn is None:
        return default_loss(output, seed)
    loss = loss_fn(output, inputs)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.is_floating_point():
        raise GradhealthError("loss_fn(output, inputs) must return a scalar floating tensor")
    if not loss.requires_grad:
        raise GradhealthError("loss_fn's result does not depend on the model's parameters")
    return loss.reshape(())
