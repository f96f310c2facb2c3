"""The sharded probe (``scan --distributed`` under torchrun): the model sharded with FSDP2
(``fully_shard``), the same probe on every rank, global numbers in the record.

How the numbers stay those of the unsharded model:

* Every rank builds the model from the same seed and draws the same probe batches (the probe
  seeds each batch), so each rank's activations are the unsharded model's activations on that
  batch, and FSDP2's reduce-scatter (an average over ranks of identical gradients) leaves each
  rank the shard of the unsharded gradient.  Activation statistics need no reduction at all.
* A parameter's gradient and weight norms are sums of squares over its shards: one
  ``all_reduce`` per probe pass for the gradients, one for the weights (``Sharding.norms``).
* The init of a weight is judged on the whole weight (``full``: an all-gather of one weight at a
  time, after the probe).
* The forward runs on the unsharded parameters FSDP2 gathers into each module; what the first
  pass learned about them (which parameters the ops used, which norm weights a residual sum
  adds) is mapped back to the sharded parameters (``aliases``).

Memory per rank: the probe batch's activations in full, plus 1/N of the parameters and
gradients, plus the gathered parameters and gradients of the unit being run; the root unit (which
holds tied weights, such as a language model's embedding and head) stays gathered for the whole
pass (benchmarks/probe_memory.py measures it).  The model is built whole on each rank's host first, then sharded; the shards move
to the device (``--device cuda`` is ``cuda:LOCAL_RANK``, nccl; ``cpu`` is gloo).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

try:  # torch >= 2.4
    from torch.distributed.tensor import DTensor
except ImportError:  # pragma: no cover - distributed not built, or an old torch
    DTensor = None

from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.launch import client_store, launch_problem


def to_local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor; any other tensor as it is."""
    return tensor.to_local() if DTensor is not None and isinstance(tensor, DTensor) else tensor


class Local:
    """The unsharded probe: every tensor whole, nothing to reduce or translate."""

    def norms(self, tensors: list[Optional[torch.Tensor]]) -> list[float]:
        from gradcheck_tool.probe.collector import l2

        return [float(l2(t.detach())) if t is not None else 0.0 for t in tensors]

    def full(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def global_grad_norms(self, norms: dict[str, float], names: list[str]) -> dict[str, float]:
        return norms

    def aliases(self) -> dict[int, int]:
        return {}

    def describe(self, device: str) -> str:
        return device


class Sharded(Local):
    """The model's parameters sharded over ``mesh`` by FSDP2; ``shard`` sets it up."""

    def __init__(self, mesh, device: torch.device):
        self.mesh, self.device = mesh, device
        self.group = mesh.get_group()
        self._alias: dict[int, int] = {}  # id(unsharded parameter) -> id(sharded parameter)

    def shard(self, model: nn.Module) -> nn.Module:
        """``fully_shard`` each module that owns parameters no other module shares (innermost first),
        then the root, which takes the shared ones (tied embeddings).  The modules keep their class
        names (FSDP2 makes ``FSDPLinear`` of ``Linear``), so layers read as the user wrote them."""
        from torch.distributed.fsdp import fully_shard

        owners: dict[int, int] = {}
        for module in model.modules():
            for p in module.parameters(recurse=False):
                owners[id(p)] = owners.get(id(p), 0) + 1
        units = [m for m in model.modules() if m is not model
                 and any(True for _ in m.parameters(recurse=False))
                 and all(owners[id(p)] == 1 for p in m.parameters(recurse=False))]
        for module in reversed(units):  # children before parents: a unit takes what no inner unit holds
            self._wrap(module, fully_shard)
        self._wrap(model, fully_shard)
        for module in model.modules():
            if any(True for _ in module.parameters(recurse=False)):
                module.register_forward_pre_hook(self._note_aliases(module))
        return model

    def _wrap(self, module: nn.Module, fully_shard: Callable) -> None:
        name, qualname = type(module).__name__, type(module).__qualname__
        fully_shard(module, mesh=self.mesh)
        cls = type(module)
        cls.__name__, cls.__qualname__ = name, qualname  # FSDP2's class for this module type

    def _note_aliases(self, module: nn.Module):
        sharded = {name: id(p) for name, p in module.named_parameters(recurse=False)}

        def hook(mod, args) -> None:  # after FSDP2's own pre-hook (prepended): the gathered parameters
            for name, p in mod.named_parameters(recurse=False):
                if name in sharded:
                    self._alias.setdefault(id(p), sharded[name])

        return hook

    def aliases(self) -> dict[int, int]:
        return self._alias

    def describe(self, device: str) -> str:
        return f"{device}, sharded over {self.mesh.size()} ranks (FSDP2)"

    def inputs(self, make: Callable[[], Any]) -> Callable[[], Any]:
        from gradcheck_tool.inputs import to_device

        return make if self.device.type == "cpu" else (lambda: to_device(make(), self.device))

    def _sum_squares(self, values: list[float]) -> list[float]:
        squares = torch.tensor([v * v for v in values], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(squares, group=self.group)
        return [float(v) for v in squares.sqrt().cpu()]

    def norms(self, tensors: list[Optional[torch.Tensor]]) -> list[float]:
        """The whole tensors' L2 norms: this rank's shards' norms, squared, summed over the ranks."""
        return self._sum_squares(super().norms([to_local(t) if t is not None else None for t in tensors]))

    def global_grad_norms(self, norms: dict[str, float], names: list[str]) -> dict[str, float]:
        """One pass's per-parameter gradient norms (this rank's shards) made whole."""
        present = [n for n in names if n in norms]
        return dict(zip(present, self._sum_squares([norms[n] for n in present])))

    def full(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.full_tensor() if DTensor is not None and isinstance(tensor, DTensor) else tensor


@contextlib.contextmanager
def process_group(device: str) -> Iterator[Sharded]:
    """Join the torchrun job for the length of one probe: gloo on CPU, nccl on ``cuda:LOCAL_RANK``."""
    import torch.distributed as dist

    problem = launch_problem()
    if problem is not None:
        raise GradhealthError(problem)
    if not dist.is_available():
        raise GradhealthError("--distributed: this PyTorch build has no torch.distributed")
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard  # noqa: F401 - FSDP2, torch >= 2.6
    except ImportError as err:
        raise GradhealthError(f"--distributed needs FSDP2 (torch >= 2.6): {err}") from err
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise GradhealthError("--device cuda: no CUDA device is available here; use --device cpu or auto")
        where = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(where)
        backend = "nccl"
    else:
        where, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend, store=client_store(), rank=int(os.environ["RANK"]),
                            world_size=int(os.environ["WORLD_SIZE"]))
    try:
        yield Sharded(init_device_mesh(where.type, (dist.get_world_size(),)), where)
    finally:
        dist.destroy_process_group()
