"""Units that do not learn: dead ReLUs (GH110) and saturated sigmoid/tanh (GH111)."""
from __future__ import annotations

from typing import Iterator

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import LayerStats, ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule

# "Most" units.  A unit's verdict needs enough independent samples to be more than chance.
# Samples are rows of the batch: the positions of one image or one sequence share their input,
# so a unit silent at every position of two images has been tested twice, not 2 x 3000 times.
# A live unit that fires on as few as a quarter of the inputs stays silent on all of 16
# independent ones with probability 0.75^16 = 1%, so half the units of a layer never do.
MOST = 0.5
MIN_SAMPLES_PER_UNIT = 16


def _in_gate(record: ProbeRecord, layer: LayerStats) -> bool:
    """The next weight layer after ``layer`` feeds a sigmoid: a squeeze-excitation gate's hidden
    units.  Their input is one pooled descriptor per image whose post-ReLU features share a
    positive mean, so at init a unit's sign is mostly that of its weights' sum, the same for
    every image: half of them are silent by construction, and the gate works regardless."""
    after = next((l for l in record.layers if l.order > layer.order and l.weight_init is not None), None)
    return after is not None and after.next_activation == "sigmoid"


def _feeding_layer(record: ProbeRecord, layer: LayerStats) -> str:
    before = [l for l in record.layers if l.order < layer.order and l.weight_init is not None]
    return before[-1].name if before else layer.name


def _worst(record: ProbeRecord, module, attr: str):
    """The largest ``attr`` among the activations ``module`` feeds (where findings point)."""
    values = [getattr(layer, attr) for layer in record.layers if getattr(layer, attr) is not None
              and module in (layer.name, _feeding_layer(record, layer))]
    return max(values, default=None)


class DeadUnits(RuntimeRule):
    """Most ReLU units of a layer never activate on any probe sample.

    What it does: for every nn.ReLU/ReLU6 module, tracks per unit (a feature, or a channel
    for convolutions) whether it was ever positive on any sample and position of any probe
    batch.  Fires when at least half of the units never were, with at least 16 independent
    samples (batch rows over all probe batches; the positions of one image or sequence are
    one sample) behind each unit's verdict: a live unit that fires on a quarter of its inputs
    is silent on all 16 with probability 1%.  A layer seen on fewer (a squeeze layer probed
    at batch 2) is not evidence either way.  The hidden units of a squeeze-excitation gate
    (the next weight layer feeds a sigmoid) are not judged: their input is one pooled,
    positive-mean descriptor per image, so half of them are silent on every image at init
    by construction (RegNetY), and the gate does its job regardless.

    Why it matters: a ReLU unit that is never positive has zero gradient for every input, so
    nothing can revive it: its weights and bias stop learning for good.  Usual causes are a
    large negative bias, an input distribution shifted far from zero, or a learning rate
    that knocked the units out.

    Example: ``nn.Linear(64, 64)`` with ``nn.init.constant_(bias, -5.0)`` before ReLU.

    Fix: zero (or slightly positive) bias init, normalised inputs or a normalisation layer
    before the activation, LeakyReLU/GELU, and a lower learning rate.
    """

    CODE = "GH110"
    NAME = "dead-units"
    SEVERITY = Severity.WARNING
    METRIC = "dead fraction"
    measure = classmethod(lambda cls, record, module: _worst(record, module, "dead_fraction"))
    GOOD = (examples.mlp(), examples.mlp(dead=0.3), examples.mlp(dead=0.9, samples=6),  # 2 images x 3 batches
            examples.gate())
    BAD = (examples.mlp(dead=0.9),)

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for layer in record.layers:
            if layer.dead_fraction is None or (layer.samples_per_unit or 0) < MIN_SAMPLES_PER_UNIT \
                    or _in_gate(record, layer):
                continue
            if layer.dead_fraction >= MOST:
                feeder = _feeding_layer(record, layer)
                yield self.finding(
                    f"{layer.dead_fraction:.0%} of {layer.name}'s {layer.units} units never activate "
                    f"on any of {layer.samples_per_unit:.0f} independent probe samples",
                    module=feeder,
                    evidence={"layer": layer.name, "dead_fraction": layer.dead_fraction, "units": layer.units,
                              "samples_per_unit": layer.samples_per_unit, "feeding_layer": feeder},
                    fix=(f"Initialise {feeder}'s bias to zero (nn.init.zeros_), normalise its input or put "
                         f"a normalisation layer before {layer.name}; or use nn.LeakyReLU(0.01)/nn.GELU()."),
                )


class SaturatedActivations(RuntimeRule):
    """Most sigmoid/tanh units of a layer sit in the flat tails.

    What it does: for every nn.Sigmoid/nn.Tanh module, counts per unit how often its output
    lies where the derivative is below 10% of its maximum (|tanh| > 0.949; sigmoid below
    0.026 or above 0.974).  A unit is saturated when that holds on most of its samples;
    fires when at least half the units are.  (A tanh layer at Glorot init sits in the tails
    on ~7% of samples; behind N(0, 1) weights with fan-in 64, on ~80%.)

    Why it matters: in the tails the derivative is nearly zero, so almost no gradient
    passes: the layer and everything before it stop learning (Glorot & Bengio 2010 traced
    slow training of deep sigmoid nets to exactly this).

    Example: ``nn.Linear(64, 64)`` initialised N(0, 1) feeding ``nn.Tanh()``: pre-activations
    have standard deviation 8.

    Fix: Glorot/Xavier init for the layer before (``nn.init.xavier_uniform_(w, gain=
    nn.init.calculate_gain("tanh"))``), normalised inputs, or a LayerNorm before the activation.
    """

    CODE = "GH111"
    NAME = "saturated-activations"
    SEVERITY = Severity.WARNING
    METRIC = "saturated fraction"
    measure = classmethod(lambda cls, record, module: _worst(record, module, "saturated_fraction"))
    GOOD = (examples.mlp(activation="Tanh"), examples.mlp(activation="Sigmoid", saturated=0.2))
    BAD = (examples.mlp(activation="Tanh", saturated=0.8),)

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for layer in record.layers:
            if layer.saturated_fraction is None or layer.saturated_fraction < MOST:
                continue
            feeder = _feeding_layer(record, layer)
            call = 'nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain("tanh"))' if layer.activation == "tanh" \
                else "nn.init.xavier_uniform_(w)"
            yield self.finding(
                f"{layer.saturated_fraction:.0%} of {layer.name}'s {layer.units} {layer.type} units are "
                "saturated (derivative < 10% of its maximum on most samples)",
                module=feeder,
                evidence={"layer": layer.name, "saturated_fraction": layer.saturated_fraction,
                          "units": layer.units, "feeding_layer": feeder},
                fix=(f"Scale down {feeder}'s initialisation ({call}), normalise its input, or add "
                     f"nn.LayerNorm before {layer.name}."),
            )
