"""Forward and tensor hooks that turn every leaf module's traffic into statistics.

Per call the hooks queue a few reductions on the device (an L2 norm, and for
ReLU/sigmoid/tanh a per-unit vector) and keep no reference to the activation,
so nothing stays alive after its statistics are taken.  ``end_pass`` moves the
whole queue to the host in one transfer: one synchronisation per probe pass.
"""
from __future__ import annotations

import contextlib
import math
import weakref
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn

from gradcheck_tool.probe import kinds
from gradcheck_tool.probe.attention import AttentionProbe
from gradcheck_tool.probe.functional import FunctionalActivations, ParamUse
from gradcheck_tool.probe.outputs import first_float_tensor
from gradcheck_tool.probe.sharded import to_local

# The flat tails: where the derivative is below 10% of its maximum.
_TANH_TAIL = math.sqrt(0.9)  # 1 - y^2 < 0.1
_SIGMOID_TAIL = (1 - math.sqrt(0.9)) / 2  # y (1 - y) < 0.025
SATURATED_SAMPLE_SHARE = 0.5  # a unit counts as saturated when in the tails on most of its samples


def l2(t: torch.Tensor) -> torch.Tensor:
    """L2 norm accumulated in float32 (fp16/bf16 upcast inside the kernel).

    float64 would survive sums of squares above 3.4e38, but converting costs ~100x the norm
    itself on CPU; a value that large is past any trainable range, and is reported as Inf.
    """
    return torch.linalg.vector_norm(t, dtype=torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None)


EXPONENTS = (-150, 64)  # floor(log2 |g|) from fp32's smallest subnormal (2^-149) to 2^63, one bin each


def _magnitudes(t: torch.Tensor) -> list[torch.Tensor]:
    """[L2 norm, min, max]: two reductions, queued as they come (fp16/bf16 L2 accumulated in fp32).

    max |t| is read on the host as max(|min|, |max|), exactly the inf-norm: ``aminmax`` is one
    pass, where ``vector_norm(t, inf)`` took ~100x the L2 norm's time on CPU (4 ms vs 32 us at
    262k entries), the largest part of the probe's cost there."""
    low, high = torch.aminmax(t)
    return [l2(t), low, high]


def _largest(low: float, high: float) -> float:
    """max |t| from its min and max; NaN if either is (as the inf-norm gives NaN)."""
    return max(abs(low), abs(high)) if low == low and high == high else math.nan


EXPONENT_SAMPLE = 1 << 12  # entries per call the exponent histogram reads; a larger gradient is strided


def _exponents(g: torch.Tensor) -> tuple[torch.Tensor, int]:
    """How many entries have each floor(log2 |g|) (zeros left out: log2(0) = -inf is out of range).

    Above ``EXPONENT_SAMPLE`` entries the histogram is taken on an evenly strided sample and scaled
    back by the stride: the shares GH151 reads are estimated from >= 4096 entries per call (a 1%
    share to within ~0.2%, before summing over calls and batches), and the hook stays a small part
    of the backward it watches; a log2 over every entry cost more than the backward on a
    transformer (probe_overhead: 3.7x the bare passes, 1.2x with the sample).  Returns the float32
    counts of the sample and the stride, which the host multiplies in float32 (``end_pass``)."""
    low, high = EXPONENTS
    flat = g.reshape(-1)
    stride = max(1, flat.numel() // EXPONENT_SAMPLE)
    sample = flat[::stride] if stride > 1 else flat
    return torch.histc(sample.float().abs().log2_(), bins=high - low, min=low, max=high), stride


@dataclass
class LayerAccumulator:
    name: str
    module: nn.Module
    order: Optional[int] = None
    calls: int = 0
    out_shape: tuple[int, ...] = ()
    out_sq: float = 0.0
    out_numel: int = 0
    has_float_out: bool = False
    grad_sq: float = 0.0
    grad_seen: bool = False
    backward_order: Optional[int] = None
    channel_first: bool = False
    unit_alive: Optional[np.ndarray] = None
    unit_tail: Optional[np.ndarray] = None
    unit_samples: int = 0  # independent samples behind each unit's verdict (batch rows, summed over calls)
    unit_positions: int = 0  # values behind each unit's saturation share (batch x positions)
    out_max: float = 0.0  # max |output| and max |d loss / d output| over every call (GH150)
    grad_max: float = 0.0
    grad_exponents: Optional[np.ndarray] = None  # nonzero gradient entries per floor(log2 |g|) (GH151)
    units: Optional[int] = None
    # What the module is, read once rather than on every call.
    leaf: bool = False
    owns_params: bool = False
    dead_capable: bool = False
    saturating: Optional[str] = None
    weighted: bool = False  # a weight layer (a matrix or kernel: Linear, Conv, RNN, GPT-2's Conv1D)
    family: Optional[str] = None  # its activation family, for activation modules
    norm: Optional[str] = None  # its normalisation kind, for normalisation layers
    # What ran after a weight layer's first call, before the next weight layer: the activation
    # applied to it, and whether a normalisation came first (then its scale is normalised away).
    next_activation: Optional[str] = None
    normalised: bool = False

    def exponent_counts(self) -> tuple[tuple[int, int], ...]:
        """(floor(log2 |g|), count) for every exponent the layer's output gradients reached."""
        if self.grad_exponents is None:
            return ()
        return tuple((EXPONENTS[0] + int(i), int(self.grad_exponents[i])) for i in np.flatnonzero(self.grad_exponents))

    @classmethod
    def of(cls, name: str, module: nn.Module) -> "LayerAccumulator":
        return cls(name, module, leaf=next(module.children(), None) is None,
                   owns_params=next(module.parameters(recurse=False), None) is not None,
                   dead_capable=kinds.is_dead_capable(module), saturating=kinds.saturating_kind(module),
                   weighted=kinds.primary_weight(module) is not None, family=kinds.activation_family(module),
                   norm=kinds.normalisation(module))


@dataclass
class _Queue:
    """Device tensors waiting for the pass's single host transfer, and where each goes.

    Each is queued as it is (a view, no kernel): one ``torch.cat`` at the end of the pass promotes
    them to one dtype (float64 when any is, else float32: every float32 value exact either way)."""

    tensors: list = field(default_factory=list)
    targets: list = field(default_factory=list)  # (accumulator or key, kind, entries, extra)

    def put(self, tensors: list[torch.Tensor], target, kind: str, extra=None) -> None:
        flat = [t.reshape(-1) for t in tensors]
        self.tensors.extend(flat)
        self.targets.append((target, kind, sum(t.numel() for t in flat), extra))


class Collector:
    def __init__(self, named_modules: list[tuple[str, nn.Module]]):
        self.layers = [LayerAccumulator.of(name, module) for name, module in named_modules]
        self._queue = _Queue()
        self._forward_count = 0
        self._backward_count = 0
        self._last_param_module: Optional[nn.Module] = None
        self._pending: Optional[LayerAccumulator] = None  # the weight layer whose follow-up is being read
        self.output_sq = 0.0
        self._functional: dict[str, LayerAccumulator] = {}
        self._produced: dict[int, tuple[weakref.ref, str]] = {}  # id(output) -> (the tensor, module name)
        self._last_name = ""
        self._leaf_depth = 0
        self._passes = 0
        self._tracking = False  # functional_mode is on: keep the bookkeeping it reads
        self.uses: Optional[ParamUse] = None  # what the first pass's ops did with the parameters
        self.attention = AttentionProbe(named_modules)  # the first pass's attention entropy

    def attach(self) -> list:
        handles = []
        for acc in self.layers:
            handles.append(acc.module.register_forward_hook(self._forward_hook(acc)))
            if acc.leaf:
                handles.append(acc.module.register_forward_pre_hook(self._enter_leaf))
        return handles

    def start_pass(self) -> None:
        self._backward_count = 0
        self._last_param_module = None
        self._pending = None
        self._produced.clear()
        self._last_name = ""
        self._leaf_depth = 0
        self._passes += 1

    def functional_mode(self) -> contextlib.AbstractContextManager:
        """Around a forward pass: functional activations become layers (probe/functional.py).  The
        mode costs a Python call per op, so after a first pass that met none it is left off."""
        first = self._passes <= 1
        self._tracking = first or bool(self._functional)
        if not self._tracking:
            return contextlib.nullcontext()
        if first:
            self.uses = ParamUse()
        return FunctionalActivations(self._functional_call, self._producer, lambda: self._last_name,
                                     lambda: self._leaf_depth > 0, self.uses if first else None,
                                     self.attention if first else None)

    def _enter_leaf(self, module: nn.Module, inputs) -> None:
        if self._tracking:
            self._leaf_depth += 1

    def _producer(self, tensor: torch.Tensor) -> Optional[str]:
        entry = self._produced.get(id(tensor))
        return entry[1] if entry is not None and entry[0]() is tensor else None

    def node_owners(self) -> dict[int, str]:
        """id(autograd node) -> the module whose still-alive output it made (first pass only)."""
        owners = {}
        for ref, name in self._produced.values():
            tensor = ref()
            if tensor is not None and tensor.grad_fn is not None:
                owners[id(tensor.grad_fn)] = name
        return owners

    def _functional_call(self, name: str, stand_in: type, output: torch.Tensor) -> None:
        acc = self._functional.get(name)
        if acc is None:
            acc = self._functional[name] = LayerAccumulator.of(name, stand_in())
            self.layers.append(acc)
        self._record(acc, output)

    def _forward_hook(self, acc: LayerAccumulator):
        def hook(module: nn.Module, inputs, output) -> None:
            if self._tracking:
                if acc.leaf:
                    self._leaf_depth = max(self._leaf_depth - 1, 0)
                self._last_name = acc.name
            self._record(acc, output)

        return hook

    def _record(self, acc: LayerAccumulator, output) -> None:
        if not self._tracking:
            return self._take(acc, output)
        # The probe's own reductions (a detach, a norm) are not the model's ops: keep them out
        # of the functional mode's bookkeeping (and its cost).
        with torch._C.DisableTorchFunction():
            self._take(acc, output)

    def _follow(self, acc: LayerAccumulator) -> None:
        """Read the call sequence (not first-call order, which a module called in a loop, such
        as one shared nn.ReLU, would scramble): what follows each weight layer's first call."""
        pending = self._pending
        if pending is not None and pending is not acc:
            if acc.norm is not None and pending.next_activation is None:
                pending.normalised = True
            elif acc.family is not None:
                pending.next_activation, self._pending = acc.family, None
            elif acc.weighted:
                self._pending = None
        if acc.weighted and acc.calls == 1:
            self._pending = acc

    def _take(self, acc: LayerAccumulator, output) -> None:
        acc.calls += 1
        self._follow(acc)
        tensor = first_float_tensor(output)
        if acc.owns_params:
            self._last_param_module = acc.module
        if tensor is not None and self._tracking:
            self._produced[id(tensor)] = (weakref.ref(tensor), acc.name)
        if acc.order is None:
            acc.order = self._forward_count
            self._forward_count += 1
            acc.out_shape = tuple(tensor.shape) if tensor is not None else ()
            # An activation's units follow the layout of the layer that fed it.
            source = self._last_param_module
            acc.channel_first = source is not None and kinds.is_channel_first(source)
        if tensor is None:
            return
        acc.has_float_out = True
        t = tensor.detach()
        acc.out_numel += t.numel()
        self._queue.put(_magnitudes(t), acc, "out")
        self._unit_stats(acc, t)
        if tensor.requires_grad:
            tensor.register_hook(self._grad_hook(acc))

    def _unit_stats(self, acc: LayerAccumulator, t: torch.Tensor) -> None:
        dead_capable, saturating = acc.dead_capable, acc.saturating
        if not (dead_capable or saturating) or t.dim() == 0:
            return
        unit_dim = 1 if (acc.channel_first and t.dim() >= 2) else t.dim() - 1
        reduce_dims = [d for d in range(t.dim()) if d != unit_dim]
        acc.units = t.shape[unit_dim]
        # Positions of one image or one sequence are not independent samples: rows of the batch are.
        acc.unit_samples += t.shape[0] if t.dim() >= 2 else 1
        acc.unit_positions += t.numel() // max(acc.units, 1)
        if dead_capable:
            self._queue.put([(t > 0).any(dim=reduce_dims) if reduce_dims else t > 0], acc, "alive")
        else:
            tail = t.abs() > _TANH_TAIL if saturating == "tanh" else (t < _SIGMOID_TAIL) | (t > 1 - _SIGMOID_TAIL)
            # Counts in float64: a float32 cat would round them above 2**24.
            self._queue.put([(tail.sum(dim=reduce_dims) if reduce_dims else tail).double()], acc, "tail")

    def _grad_hook(self, acc: LayerAccumulator):
        def hook(grad: torch.Tensor) -> None:
            if acc.backward_order is None:
                acc.backward_order = self._backward_count
                self._backward_count += 1
            g = grad.detach()
            counts, stride = _exponents(g)
            self._queue.put([*_magnitudes(g), counts], acc, "grad", stride)

        return hook

    def output_layer(self) -> Optional[str]:
        """The weight layer whose output gradient arrived first: the model's output layer."""
        heads = [a for a in self.layers if a.weighted and a.backward_order is not None]
        return min(heads, key=lambda a: a.backward_order).name if heads else None

    def watch_output(self, tensors: list[torch.Tensor]) -> None:
        """Record ||d loss / d output||, the reference every backward ratio is taken against."""
        for t in tensors:
            if t.requires_grad:
                t.register_hook(lambda g: self._queue.put([l2(g.detach())], "", "output"))

    def queue_param_grads(self, named_params: list[tuple[str, nn.Parameter]]) -> None:
        """Every parameter gradient's L2 norm, a few fused ``_foreach_norm`` kernels for all of
        them (one per dtype group on a GPU; on CPU the same per-tensor norms as ``l2``)."""
        groups: dict[bool, tuple[list, list]] = {}
        for name, p in named_params:
            g = p.grad
            if g is None:
                continue
            if g.is_sparse:
                g = g.coalesce().values()
            g = to_local(g).detach()  # a shard's norm: made whole by the engine
            names, grads = groups.setdefault(g.dtype in (torch.float16, torch.bfloat16), ([], []))
            names.append(name)
            grads.append(g)
        for half, (names, grads) in groups.items():
            norms = torch._foreach_norm(grads, 2, dtype=torch.float32 if half else None)
            for name, norm in zip(names, norms):
                self._queue.put([norm], name, "param")

    def end_pass(self) -> dict[str, float]:
        """Transfer the queue to the host once and fold it into the accumulators.

        Returns this pass's gradient norm per parameter name.
        """
        q = self._queue
        self._queue = _Queue()
        param_norms: dict[str, float] = {}
        self.output_sq = 0.0
        if not q.tensors:
            return param_norms
        flat = torch.cat(q.tensors).cpu().numpy()
        offset = 0
        for (target, kind, n, extra) in q.targets:
            values = flat[offset: offset + n]
            offset += n
            if kind == "param":
                param_norms[target] = float(values[0])
                continue
            if kind == "output":
                self.output_sq += float(values[0]) ** 2
                continue
            acc: LayerAccumulator = target
            if kind == "out":
                acc.out_sq += float(values[0]) ** 2
                acc.out_max = max(acc.out_max, _largest(float(values[1]), float(values[2])))
            elif kind == "grad":
                acc.grad_sq += float(values[0]) ** 2
                acc.grad_seen = True
                acc.grad_max = max(acc.grad_max, _largest(float(values[1]), float(values[2])))
                # The float32 product the device used to take, summed over calls in float64.
                counts = (values[3:].astype(np.float32) * np.float32(extra)).astype(np.float64)
                acc.grad_exponents = counts if acc.grad_exponents is None else acc.grad_exponents + counts
            elif kind == "alive":
                alive = values > 0
                acc.unit_alive = alive if acc.unit_alive is None or acc.unit_alive.shape != alive.shape else (acc.unit_alive | alive)
            elif kind == "tail":
                acc.unit_tail = values if acc.unit_tail is None or acc.unit_tail.shape != values.shape else acc.unit_tail + values
        return param_norms
