"""The monitor's device side: every gradient read once by a fused kernel, nothing read by the host.

``track(model)`` lists the trainable parameters once.  Per monitored step, ``grad_squares``
returns one float32 device tensor of per-parameter squared gradient norms (``torch._foreach_norm``
over all gradients at once) and ``reduce`` sums the squares of sharded parameters across their
mesh.  The host turns the few hundred numbers into per-layer and global norms later
(``GradMonitor`` reads them a step late), so a step never waits for the device.

Distributed training, the rule the numbers obey:
- DDP (and any plain tensor): after backward the gradient is the same on every rank.  It is
  counted once, never summed across ranks.
- FSDP2 / ``fully_shard`` and other DTensor parameters: each rank holds a shard, so the squares
  of the local shards are summed (``all_reduce``) over every mesh dimension the tensor is
  sharded on, and not over the dimensions it is replicated on (HSDP).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

try:  # torch >= 2.4; earlier versions had it under torch.distributed._tensor
    from torch.distributed.tensor import DTensor
except ImportError:  # pragma: no cover - distributed not built, or an old torch
    DTensor = None


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers,
    so parameter names read as the user wrote them."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _shard_dims(param: torch.Tensor) -> tuple[int, ...]:
    if DTensor is None or not isinstance(param, DTensor):
        return ()
    return tuple(dim for dim, placement in enumerate(param.placements) if placement.is_shard())


def local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if DTensor is not None and isinstance(tensor, DTensor) else tensor


@dataclass(frozen=True)
class Shards:
    """Parameters ``start:stop`` (in tracking order) are sharded over these process groups."""

    start: int
    stop: int
    groups: tuple


@dataclass(frozen=True)
class Tracked:
    """The trainable parameters, ordered so that each shard group is one contiguous slice
    (a slice of a 1-D tensor can be all-reduced in place)."""

    names: tuple[str, ...]
    params: tuple[torch.Tensor, ...]
    declared: tuple[int, ...]  # each parameter's position in the model's declaration order
    shards: tuple[Shards, ...]

    def __len__(self) -> int:
        return len(self.params)


def track(model: nn.Module) -> Tracked:
    named = [(name, p) for name, p in unwrap(model).named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters to monitor")
    keyed = []
    for position, (name, param) in enumerate(named):
        dims = _shard_dims(param)
        key = (1, id(param.device_mesh), dims) if dims else (0,)
        keyed.append((key, position, name, param))
    keyed.sort(key=lambda row: row[:2])  # plain parameters first, then one run per (mesh, sharded dims)
    shards: list[Shards] = []
    for index, (key, _, _, param) in enumerate(keyed):
        if key == (0,):
            continue
        if shards and keyed[index - 1][0] == key:
            shards[-1] = Shards(shards[-1].start, index + 1, shards[-1].groups)
        else:
            shards.append(Shards(index, index + 1, tuple(param.device_mesh.get_group(d) for d in key[2])))
    return Tracked(names=tuple(row[2] for row in keyed), params=tuple(row[3] for row in keyed),
                   declared=tuple(row[1] for row in keyed), shards=tuple(shards))


def _squares(tensors: list[torch.Tensor], count: int, present: list[int], device: torch.device,
             cache: dict) -> torch.Tensor:
    """A (count,) float32 tensor: the squared L2 norm of ``tensors[i]`` at ``present[i]``, 0 elsewhere."""
    dense = [t for t in tensors if not t.is_sparse]
    if len(dense) == len(tensors):
        norms = torch._foreach_norm(dense, 2, dtype=torch.float32) if dense else []
    else:  # sparse gradients (nn.Embedding(sparse=True)): the norm of their stored values
        norms = [torch.linalg.vector_norm(t.coalesce().values(), dtype=torch.float32) if t.is_sparse
                 else torch.linalg.vector_norm(t, dtype=torch.float32) for t in tensors]
    if not norms:
        return torch.zeros(count, dtype=torch.float32, device=device)
    stacked = torch.stack([n.to(device, non_blocking=True) for n in norms]).square()
    if len(present) == count:
        return stacked
    index = cache.get(tuple(present))
    if index is None:  # a pattern of missing gradients repeats step after step: build its index once
        index = cache[tuple(present)] = torch.tensor(present, device=device)
    return torch.zeros(count, dtype=torch.float32, device=device).index_copy_(0, index, stacked)


def device_of(tracked: Tracked) -> torch.device:
    return local(tracked.params[0]).device


def grad_squares(tracked: Tracked, cache: dict) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Per-parameter squared gradient norms of this rank's tensors, and which parameters have
    no gradient (``.grad is None``; known on the host without reading the device)."""
    grads, present = [], []
    for i, param in enumerate(tracked.params):
        if param.grad is not None:
            grads.append(local(param.grad))
            present.append(i)
    missing = tuple(sorted(set(range(len(tracked))) - set(present)))
    return _squares(grads, len(tracked), present, device_of(tracked), cache), missing


class UpdateMeter:
    """||delta w|| and ||w|| per parameter across one optimizer step: a copy of the weights
    before the step (memory: one more copy of the parameters) and fused norms after it."""

    def __init__(self, tracked: Tracked):
        self.tracked = tracked
        self.before: Optional[list[torch.Tensor]] = None

    def snapshot(self) -> None:
        weights = [local(p).detach() for p in self.tracked.params]
        if self.before is None or any(b.shape != w.shape for b, w in zip(self.before, weights)):
            self.before = [torch.empty_like(w) for w in weights]
        torch._foreach_copy_(self.before, weights)

    def squares(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(||delta w||^2, ||w||^2) per parameter, w the weights before the step."""
        weights = [local(p).detach() for p in self.tracked.params]
        device, everyone = device_of(self.tracked), list(range(len(weights)))
        before = _squares(self.before, len(weights), everyone, device, {})
        torch._foreach_sub_(self.before, weights)  # in place: the copy becomes -delta
        return _squares(self.before, len(weights), everyone, device, {}), before


def reduce(tracked: Tracked, columns: torch.Tensor) -> list:
    """Sum the rows of sharded parameters across their mesh, in place; ``columns`` is
    (parameters, k).  Returns the pending collective handles: waited on at once on a GPU (a
    stream dependency, not a host wait), left running on CPU (gloo) until the host reads."""
    works = []
    for shard in tracked.shards:
        rows = columns[shard.start:shard.stop]
        for i, group in enumerate(shard.groups):
            work = torch.distributed.all_reduce(rows, group=group, async_op=True)
            if columns.is_cuda or i + 1 < len(shard.groups):  # the next reduction reads this one's sum
                work.wait()
            else:
                works.append(work)
    return works
