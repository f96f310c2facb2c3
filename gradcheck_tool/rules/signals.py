"""Scale-free summaries of a probe record that several rules share.

Trends are fitted in log10 space against position in forward execution order with
the Theil-Sen estimator (the median of pairwise slopes).  It ignores single steps
(a global average pool, one oddly scaled projection) and the periodic pattern of
repeated blocks (attention's small query/key gradients), and measures what
"grows across depth" means: a consistent per-layer factor.  ``total`` is that
factor compounded over the chain, in decades (orders of magnitude).
"""
from __future__ import annotations

import math
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

    def per_layer(self, weight_layers: int) -> float:
        """Decades per weight layer: the chain also holds activations, norms and dropout."""
        return self.slope * len(self.layers) / max(weight_layers, 1)

    @property
    def first(self) -> str:
        return self.layers[0]

    @property
    def last(self) -> str:
        return self.layers[-1]


def _trend(pairs: list[tuple[LayerStats, float]]) -> Optional[Trend]:
    pairs = [(layer, v) for layer, v in pairs if v is not None and v > 0 and math.isfinite(v)]
    if len(pairs) < MIN_CHAIN:
        return None
    if len(pairs) > 400:  # Theil-Sen is quadratic; a strided subsample keeps the trend
        step = math.ceil(len(pairs) / 400)
        pairs = pairs[::step]
    logs = [math.log10(v) for _, v in pairs]
    slope = theil_sen(logs)
    return Trend(slope=slope, total=slope * (len(pairs) - 1),
                 layers=tuple(layer.name for layer, _ in pairs), values=tuple(v for _, v in pairs))


def forward_trend(record: ProbeRecord) -> Optional[Trend]:
    """Activation RMS along depth: positive total = activations grow toward the output."""
    return _trend([(layer, layer.out_rms) for layer in record.layers])


def backward_trend(record: ProbeRecord) -> Optional[Trend]:
    """Output-gradient norm along depth: negative total = gradients grow toward the input."""
    return _trend([(layer, layer.grad_norm) for layer in record.layers])


def drift_direction(record: ProbeRecord) -> int:
    """+1 when the signal grows across depth, -1 when it shrinks, 0 when it holds."""
    fwd, bwd = forward_trend(record), backward_trend(record)
    if fwd is not None and abs(fwd.total) >= WARN_DECADES:
        return 1 if fwd.total > 0 else -1
    if bwd is not None and abs(bwd.total) >= WARN_DECADES:
        return 1 if bwd.total < 0 else -1  # backward total < 0: gradients grow toward the input
    return 0


INIT_TOLERANCE = math.log(1.5)


def init_mismatches(record: ProbeRecord, direction: int) -> dict[tuple[str, str], list[LayerStats]]:
    """Weight layers whose var(W)*fan_in is off by > 1.5x for their activation, in the drift's direction.

    Grouped by (layer type, activation).  Sigmoid is absent from EXPECTED_GAIN2 (no init fixes
    a slope of 1/4) and embeddings are skipped (their input is one-hot, fan-in means nothing).
    """
    groups: dict[tuple[str, str], list[LayerStats]] = {}
    for layer in record.layers:
        init, act = layer.weight_init, layer.next_activation
        if init is None or act not in EXPECTED_GAIN2 or layer.type == "Embedding" or init.gain2 <= 0:
            continue
        off = math.log(init.gain2 / EXPECTED_GAIN2[act])
        if abs(off) > INIT_TOLERANCE and (off > 0) == (direction > 0):
            groups.setdefault((layer.type, act), []).append(layer)
    return groups


def weight_layers(record: ProbeRecord, names: Sequence[str]) -> list[LayerStats]:
    wanted = set(names)
    return [layer for layer in record.layers if layer.name in wanted and layer.weight_init is not None]


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
