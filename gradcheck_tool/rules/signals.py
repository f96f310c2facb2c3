"""Scale-free summaries of a probe record that several rules share.

Trends are fitted over the model's structure, not over its execution order as one chain:
each *stack* (the layers under one numbered container, ``encoder.layers.*``,
``decoder.layers.*``, ``features.*``) is fitted on its own, so an encoder and a decoder are
two stacks and the step between them at cross-attention is no trend.  Within a stack the
fit is in log10 space against execution order, with the Theil-Sen estimator (the median of
pairwise slopes): it ignores single steps (a global average pool, one oddly scaled
projection) and the periodic pattern of repeated blocks (attention's small query/key
gradients), and measures what "grows across depth" means: a consistent per-layer factor.
``total`` is that factor compounded over the chain, in decades (orders of magnitude).  A
profile is a trend only when one half of the stack carries a good part of it and the
other does not go against it (a plateau, a step, a plateau is not one; nor is a fall and a
recovery), and the values it reports are the fitted line's, so the direction a rule states
always matches its numbers.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import median
from typing import Optional, Sequence

from gradcheck_tool.probe.record import LayerStats, ProbeRecord

# Two orders of magnitude across the chain: beyond what Adam's per-parameter scaling or a
# learning-rate sweep absorbs, and ten times more than a healthy network's drift at init
# (measured: BERT, GPT-2, LSTM LM and BatchNorm CNNs drift < 1 decade).
WARN_DECADES = 2.0
ERROR_DECADES = 4.0
MIN_CHAIN = 4
# A trend: one half of the stack carries at least CARRY_SHARE of it (a steady trend: ~1/2 each; a
# collapse onto a floor: most in one half; a single step between two plateaus: neither) and
# neither half goes against it by more than HALF_SHARE.
CARRY_SHARE = 0.4
HALF_SHARE = 0.2

# var(W) * fan_in that keeps the signal's scale through a layer followed by this activation
# (He et al. 2015 for the ReLU family, LeCun et al. 1998 / Glorot & Bengio 2010 otherwise).
EXPECTED_GAIN2 = {"relu": 2.0, "leaky_relu": 2.0, "gelu": 2.0, "silu": 2.0, "elu": 2.0,
                  "tanh": 1.0, "selu": 1.0, "softplus": 1.0}

INIT_CALL = {
    "relu": 'nn.init.kaiming_normal_({w}, nonlinearity="relu")',
    "tanh": 'nn.init.xavier_uniform_({w}, gain=nn.init.calculate_gain("tanh"))',
    "selu": 'nn.init.kaiming_normal_({w}, nonlinearity="linear")',
}


def init_call(activation: Optional[str], weight: str = "layer.weight") -> str:
    family = "relu" if EXPECTED_GAIN2.get(activation or "", 0) == 2.0 else activation
    return INIT_CALL.get(family or "", "nn.init.xavier_uniform_({w})").format(w=weight)


def theil_sen(values: Sequence[float]) -> float:
    slopes = [
        (values[j] - values[i]) / (j - i) for i in range(len(values)) for j in range(i + 1, len(values))
    ]
    return median(slopes) if slopes else 0.0


@dataclass(frozen=True)
class Trend:
    slope: float  # decades per layer, in forward order
    total: float  # slope compounded over the chain, decades
    layers: tuple[str, ...]
    values: tuple[float, ...]
    intercept: float = 0.0  # log10 of the fitted value at the first layer

    def per_layer(self, weight_layers: int) -> float:
        """Decades per weight layer: the chain also holds activations, norms and dropout."""
        return self.slope * len(self.layers) / max(weight_layers, 1)

    @property
    def first(self) -> str:
        return self.layers[0]

    @property
    def last(self) -> str:
        return self.layers[-1]

    @property
    def fitted(self) -> tuple[float, float]:
        """The fitted line's values at the first and last layer: they differ by ``total`` decades."""
        return 10**self.intercept, 10 ** (self.intercept + self.total)


_STAGE = re.compile(r"([A-Za-z]+)(\d+)")


def numbered_stages(names: Sequence[str]) -> set[str]:
    """Paths of containers numbered by name rather than by index: siblings ``<word><n>`` under one
    parent, at least three, each holding modules (torchvision's ResNet ``layer1`` ... ``layer4``,
    ShuffleNet's ``stage2`` ..., RegNet's ``trunk_output.block1`` ..., DenseNet's
    ``features.denseblock1`` ...).  Leaves named ``fc1``, ``fc2`` or ``conv1`` are no stage (a
    hand-written MLP stays one stack), nor is a pair (Inception's ``AuxLogits.conv0``, ``conv1``)."""
    containers = {".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 1)}
    seen: dict[tuple[str, str], set[str]] = {}
    for path in containers:
        parent, _, part = path.rpartition(".")
        match = _STAGE.fullmatch(part)
        if match:
            seen.setdefault((parent, match[1]), set()).add(path)
    return {path for paths in seen.values() if len(paths) >= 3 for path in paths}


def stack_key(name: str, stages: frozenset[str] = frozenset()) -> Optional[str]:
    """The numbered container a layer sits in (``model.encoder.layers`` for
    ``model.encoder.layers.3.fc1``; ``layer*`` for ``layer3.5.conv2`` when ``layer3`` is among
    ``stages``, see ``numbered_stages``), None for layers outside any."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i])
        if ".".join(parts[:i + 1]) in stages:
            return ".".join(parts[:i] + [_STAGE.fullmatch(part)[1] + "*"])
    return None


def stacks(record: ProbeRecord) -> list[list[LayerStats]]:
    """The record's layers grouped by stack, in execution order.  Layers outside every
    numbered container (embeddings, a stem, a head) join no stack, unless the model has no
    numbered container at all: then it is one stack.  Numbered stages of one network
    (``layer1`` ... ``layer4``) are one stack: the blocks of a ResNet are one chain, whichever
    stage they sit in."""
    stages = frozenset(numbered_stages([layer.name for layer in record.layers]))
    groups: dict[Optional[str], list[LayerStats]] = {}
    for layer in record.layers:
        groups.setdefault(stack_key(layer.name, stages), []).append(layer)
    if set(groups) == {None}:
        return [groups[None]]
    return [layers for key, layers in groups.items() if key is not None]


def _trend(pairs: list[tuple[LayerStats, float]]) -> Optional[Trend]:
    pairs = [(layer, v) for layer, v in pairs if v is not None and v > 0 and math.isfinite(v)]
    if len(pairs) < MIN_CHAIN:
        return None
    if len(pairs) > 400:  # Theil-Sen is quadratic; a strided subsample keeps the trend
        step = math.ceil(len(pairs) / 400)
        pairs = pairs[::step]
    logs = [math.log10(v) for _, v in pairs]
    slope = theil_sen(logs)
    half = len(logs) // 2
    total = slope * (len(logs) - 1)
    parts = [theil_sen(part) * (len(part) - 1) * (1 if total >= 0 else -1) for part in (logs[:half + 1], logs[half:])]
    if max(parts) < CARRY_SHARE * abs(total) or min(parts) < -HALF_SHARE * abs(total):
        slope = total = 0.0  # no half carries it (a step between plateaus), or one goes against it (a bump)
    intercept = median(v - slope * i for i, v in enumerate(logs))
    return Trend(slope=slope, total=total, layers=tuple(layer.name for layer, _ in pairs),
                 values=tuple(v for _, v in pairs), intercept=intercept)


def _steepest(trends: Sequence[Optional[Trend]], sign: int) -> Optional[Trend]:
    """The stack whose trend goes furthest in direction ``sign`` (+1: grows along the forward,
    -1: shrinks, 0: either)."""
    found = [t for t in trends if t is not None]
    return max(found, key=lambda t: sign * t.total if sign else abs(t.total), default=None)


def forward_trend(record: ProbeRecord, sign: int = 0) -> Optional[Trend]:
    """Activation RMS along depth, the stack steepest in direction ``sign``: positive total =
    activations grow toward the output."""
    return _steepest([_trend([(layer, layer.out_rms) for layer in stack]) for stack in stacks(record)], sign)


def backward_trend(record: ProbeRecord, sign: int = 0) -> Optional[Trend]:
    """Output-gradient norm along depth, the stack steepest in direction ``sign``: negative
    total = gradients grow toward the input."""
    return _steepest([_trend([(layer, layer.grad_norm) for layer in stack]) for stack in stacks(record)], sign)


def product(layer: LayerStats) -> Optional[float]:
    """||dL/dz|| x ||z|| of a layer's output z: unmoved when z is rescaled and its gradient with it."""
    if not (finite(layer.grad_norm) and finite(layer.out_rms)):
        return None
    return layer.grad_norm * layer.out_rms * math.sqrt(math.prod(layer.out_shape or (1,)))


def product_trend(record: ProbeRecord, names: Sequence[str]) -> Optional[Trend]:
    """||activation|| x ||gradient|| along the layers ``names``.  In a positively homogeneous
    network (ReLU, no normalisation) ``<dL/dz, z>`` is the same at every layer, so a uniform
    rescaling of the weights moves activations and gradients by opposite factors and leaves this
    flat: only a drift of the product is a real loss of signal."""
    wanted = set(names)
    return _trend([(layer, product(layer)) for layer in record.layers if layer.name in wanted])


def drift_direction(record: ProbeRecord) -> int:
    """+1 when the signal grows across depth, -1 when it shrinks, 0 when it holds."""
    for sign in (1, -1):
        fwd = forward_trend(record, sign)
        if fwd is not None and sign * fwd.total >= WARN_DECADES:
            return sign
    for sign in (1, -1):  # backward total < 0: gradients grow toward the input
        bwd = backward_trend(record, -sign)
        if bwd is not None and -sign * bwd.total >= WARN_DECADES:
            return sign
    return 0


INIT_TOLERANCE = math.log(1.5)
# A mismatch is worth reporting when, compounded over the weight layers between two
# normalisation points, it moves the signal by an order of magnitude or more.
SEGMENT_DECADES = 1.0


def init_mismatches(record: ProbeRecord, direction: int) -> dict[tuple[str, str], list[LayerStats]]:
    """Weight layers whose var(W)*fan_in is off by > 1.5x for their activation, in the drift's
    direction, where it compounds.

    Grouped by (layer type, activation).  Skipped: sigmoid (absent from EXPECTED_GAIN2: no init
    fixes a slope of 1/4); embeddings (their input is one-hot, fan-in means nothing); layers whose
    output is normalised (a BatchNorm/LayerNorm after them divides their scale away: any init scale
    is valid there, He fan-out included; van Laarhoven 2017); and layers that only feed a sigmoid
    gate (squeeze-excitation: the gate bounds what they can do to the signal).  A normalisation
    layer resets the signal's scale, so mismatches compound only between two of them: a segment
    whose mismatches multiply the signal by less than 10x (a post-LN feed-forward layer at std
    0.02 between two LayerNorms) is not reported.
    """
    groups: dict[tuple[str, str], list[LayerStats]] = {}
    weights = [layer for layer in record.layers if layer.weight_init is not None]
    gate_feeders = {a.name for a, b in zip(weights, weights[1:]) if b.next_activation == "sigmoid"}
    segment: list[tuple[LayerStats, float]] = []

    def close() -> None:
        decades = abs(sum(off for _, off in segment)) / 2 / math.log(10)  # of the signal: sqrt(gain2)
        if decades >= SEGMENT_DECADES:
            for layer, _ in segment:
                groups.setdefault((layer.type, layer.next_activation), []).append(layer)
        segment.clear()

    for layer in record.layers:
        if layer.normalisation is not None:
            close()
            continue
        init, act = layer.weight_init, layer.next_activation
        if (init is None or act not in EXPECTED_GAIN2 or layer.type == "Embedding" or init.gain2 <= 0
                or layer.normalised or layer.name in gate_feeders):
            continue
        off = math.log(init.gain2 / EXPECTED_GAIN2[act])
        if abs(off) > INIT_TOLERANCE and (off > 0) == (direction > 0):
            segment.append((layer, off))
    close()
    return groups


def weight_layers(record: ProbeRecord, names: Sequence[str]) -> list[LayerStats]:
    wanted = set(names)
    return [layer for layer in record.layers if layer.name in wanted and layer.weight_init is not None]


def last_weight_layer(record: ProbeRecord) -> Optional[LayerStats]:
    """The model's last weight layer in forward order (its head, as far as the probe can tell)."""
    return max((layer for layer in record.layers if layer.weight_init is not None),
               key=lambda layer: layer.order, default=None)


def finite(value: Optional[float]) -> bool:
    """A real number: not None (a non-finite value after a JSON round trip), NaN or Inf."""
    return value is not None and math.isfinite(value)


def fmt(x: float) -> str:
    return f"{x:.3g}"


def clip_advice(record: ProbeRecord) -> str:
    if record.recommended_max_norm is None:
        return ""
    return (f" As a guard, clip: torch.nn.utils.clip_grad_norm_(model.parameters(), "
            f"max_norm={record.recommended_max_norm:g}) between backward() and step().")
