"""The forward signal across depth: GH105, GH106."""
from __future__ import annotations

import dataclasses
import math
from statistics import median
from typing import Iterator

from gradcheck_tool.findings import Applicability, Finding, Fix, Severity
from gradcheck_tool.probe.record import ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.depth import _DepthRule, _nonfinite, _per_layer
from gradcheck_tool.rules.signals import ERROR_DECADES, WARN_DECADES, finite, fmt, forward_trend

SMALL_GAMMA = 0.1  # RMS of a normalisation layer's γ far below its default of 1


WINDOW = 8  # layers: the running median ignores a single gate or layer-scale product


def trough(record: ProbeRecord):
    """(layers, running medians of their activation RMS, index of the lowest) when that median
    falls two orders of magnitude below its value over the first layers, else None."""
    layers = [layer for layer in record.layers if finite(layer.out_rms) and layer.out_rms > 0]
    if len(layers) < 2 * WINDOW:
        return None
    medians = [median(layer.out_rms for layer in layers[i:i + WINDOW]) for i in range(len(layers) - WINDOW + 1)]
    low = min(range(len(medians)), key=medians.__getitem__)
    return (layers, medians, low) if math.log10(medians[0] / medians[low]) >= WARN_DECADES else None


_GAMMA_FIX = ("Initialise the normalisation layers' γ to 1 (nn.init.ones_(m.weight)) and β to 0, so each "
              "restores the signal's scale instead of shrinking it.")


def _gamma_cause(gammas: dict[str, float]) -> str:
    return (f"; {len(gammas)} normalisation layers on the way start with γ of RMS {fmt(median(gammas.values()))}, "
            "so each multiplies the signal by about that")


def _small_gammas(record: ProbeRecord, names: set[str]) -> dict[str, float]:
    """Normalisation layers among ``names`` whose γ starts with an RMS below SMALL_GAMMA."""
    params = {p.name: p for p in record.parameters}
    found = {}
    for layer in record.layers:
        gamma = params.get(f"{layer.name}.weight")
        if layer.normalisation and layer.name in names and gamma is not None and gamma.shape:
            rms = gamma.norm / math.sqrt(math.prod(gamma.shape))
            if 0 < rms < SMALL_GAMMA:
                found[layer.name] = rms
    return found


class ExplodingActivations(_DepthRule):
    """The forward signal grows across depth.

    What it does: fits the per-layer growth of each layer's output RMS, in forward order,
    in log space; fires when activations grow two or more orders of magnitude across the
    chain (error from four).

    Why it matters: a layer whose weights have var(W) * fan_in above what its activation
    needs (2 for ReLU, 1 for tanh) multiplies the signal by a constant factor, and depth
    compounds it (He et al. 2015).  Softmax and sigmoid outputs saturate, losses overflow,
    and fp16 training overflows first.

    Example: a ReLU MLP with weights from N(0, 1): 5.7x per 64-wide layer.

    Fix: initialise for the activation; normalisation layers reset the scale.
    """

    CODE = "GH105"
    NAME = "exploding-activations"
    SEVERITY = Severity.ERROR
    GOOD = (examples.mlp(), examples.mlp(depth=2, forward_gain=3.0))
    BAD = (examples.mlp(forward_gain=5.7, backward_gain=5.7), examples.mlp(depth=10, forward_gain=1.8))

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        trend = forward_trend(record, 1)
        if _nonfinite(record) or trend is None or trend.total < WARN_DECADES or trough(record) is not None:
            return  # a rise out of a collapse is the collapse's story (GH106)
        start, end = trend.fitted
        yield self._drift(
            record, trend,
            f"activations grow {_per_layer(record, trend, 1)}: RMS ~{fmt(start)} at "
            f"{trend.first} to ~{fmt(end)} at {trend.last}",
            1,
        )


class CollapsingActivations(_DepthRule):
    """The forward signal decays toward zero across depth.

    What it does: the same fit as GH105; fires when the activation RMS falls by two or
    more orders of magnitude across the chain (error from four).

    Why it matters: once the signal is small, biases and noise dominate it and the
    input's information is lost; the backward pass of the same layers usually shrinks
    too.  A ReLU network with Glorot init loses a factor sqrt(2) per layer, since ReLU
    halves the second moment that Glorot preserves (He et al. 2015): 20 layers lose
    three orders of magnitude while the weight gradients still look evenly spread.

    A collapse need not be a steady trend: when normalisation layers start with a tiny γ
    (transformers' MobileViT draws BatchNorm γ from N(0, 0.02)), each one multiplies the signal
    by ~|γ|, and once the signal is below sqrt(eps) BatchNorm no longer renormalises it; later
    LayerNorms restore the scale, so the profile falls then recovers.  The rule therefore also
    reads the running median of the activation RMS over 8 consecutive layers (single layers
    such as a gate or a layer-scale product do not move it), and fires when it falls two
    orders of magnitude below its value over the first layers.

    Example: 20 Linear+ReLU layers with nn.init.xavier_normal_.

    Fix: He/Kaiming init for ReLU-family activations, or normalisation layers; normalisation
    layers' γ initialised to 1 (``nn.init.ones_(bn.weight)``).
    """

    CODE = "GH106"
    NAME = "collapsing-activations"
    SEVERITY = Severity.ERROR
    GOOD = (examples.mlp(), examples.mlp(depth=3, forward_gain=0.4), examples.dip(depth=3))
    BAD = (examples.mlp(depth=20, forward_gain=0.707, backward_gain=0.707, init="xavier"), examples.dip())

    def _trough(self, record: ProbeRecord) -> Iterator[Finding]:
        found = trough(record)
        if found is None:
            return
        layers, medians, low = found
        decades = math.log10(medians[0] / medians[low])
        where = layers[low + WINDOW // 2]
        gammas = _small_gammas(record, {layer.name for layer in layers[:low + WINDOW]})
        cause = _gamma_cause(gammas) if gammas else ""
        yield self.finding(
            f"activations collapse: RMS ~{fmt(medians[0])} over the first layers down to ~{fmt(medians[low])} "
            f"around {where.name} ({fmt(10 ** -decades)}x){cause}",
            module=next(iter(gammas), None) or layers[0].name,
            evidence={"first_value": medians[0], "last_value": medians[low], "total_decades": -round(decades, 3),
                      "first_layer": layers[0].name, "last_layer": where.name, "small_gamma_layers": list(gammas)},
            fix=(_GAMMA_FIX if gammas else
                 "Find the layers where the RMS falls (init scale, a missing normalisation) and initialise them "
                 "for their activation."),
            severity=Severity.ERROR if decades >= ERROR_DECADES else Severity.WARNING)

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        if _nonfinite(record):
            return
        trend = forward_trend(record, -1)
        if trend is None or -trend.total < WARN_DECADES:
            yield from self._trough(record)
            return
        start, end = trend.fitted
        finding = self._drift(
            record, trend,
            f"activations shrink {_per_layer(record, trend, 1)}: RMS ~{fmt(start)} at "
            f"{trend.first} to ~{fmt(end)} at {trend.last}",
            -1,
        )
        gammas = _small_gammas(record, set(trend.layers))
        if gammas:  # the cause is the normalisation layers' γ, not the init of the layers between them
            finding = dataclasses.replace(
                finding, message=finding.message + _gamma_cause(gammas),
                evidence=dict(finding.evidence, small_gamma_layers=list(gammas)),
                fix=Fix(Applicability.DISPLAY_ONLY, _GAMMA_FIX))
        yield finding
