"""Symmetric initialisation: units of a layer that start identical and learn identically (GH121)."""
from __future__ import annotations

from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ProbeRecord, SymmetryStats
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule


def _stuck_share(stats: SymmetryStats) -> float:
    return 1.0 - stats.learning_units / stats.units


def _measure(record: ProbeRecord, module: Optional[str]) -> Optional[float]:
    stats = next((s for s in record.symmetry if s.name == module), None)
    return _stuck_share(stats) if stats is not None else (0.0 if record.layer(module or "") else None)


class SymmetricInit(RuntimeRule):
    """A layer's units start identical and get identical gradients, so they learn as one.

    What it does: after the probe's first backward, compares the rows of every weight layer
    (Linear outputs, conv filters, RNN gate units; not embeddings) and their gradients.  A
    unit is stuck to another when both its weights and its (nonzero) gradient equal the
    other's.  Fires when at least half of a layer's units are stuck (error when the whole
    layer has collapsed into one unit); the share of identical weight rows is reported beside it.

    Why it matters: units with identical incoming weights compute the same output; when their
    outgoing weights are identical too, backpropagation gives them the same gradient, every
    optimizer step (SGD, momentum, Adam act per coordinate) moves them the same way, and they
    stay copies forever: a layer of 512 units trains like a layer of one (Goodfellow, Bengio
    and Courville, Deep Learning, section 8.4, "breaking the symmetry").  This is what
    ``nn.init.constant_`` / ``zeros_`` / ``fill_`` on the weights of consecutive layers does.
    Identical weights alone are not reported: a zero last layer of a residual branch
    (``zero_init_residual``, Goyal et al. 2017), a zero output head, or LoRA's ``B = 0`` (Hu et
    al. 2021) sit after random layers, so each of their rows gets a different gradient and the
    first step breaks the tie; that measured difference is why they stay quiet.  Biases and
    normalisation gains are vectors, not units, and are not read; nor is the output layer,
    whose units the targets tell apart (classes absent from a probe batch share a gradient).

    Example: ``model.apply(init)`` with ``nn.init.constant_(m.weight, 0.5)`` for every
    ``nn.Linear``: each hidden layer's units are copies of each other.

    Fix: leave the default initialisation (Kaiming-uniform) or use
    ``nn.init.kaiming_normal_(w, nonlinearity="relu")`` / ``xavier_uniform_`` on hidden weights;
    keep constant or zero init for biases, norm gains and the last layer of a residual branch
    or output head only.
    """

    CODE = "GH121"
    NAME = "symmetric-init"
    SEVERITY = Severity.WARNING
    METRIC = "share of a layer's units stuck to another unit"
    measure = classmethod(lambda cls, record, module: _measure(record, module))
    GOOD = (examples.mlp(), examples.symmetric(learning=64), examples.symmetric(learning=40, distinct=40))
    BAD = (examples.symmetric(learning=1), examples.symmetric(learning=8, distinct=8))

    MIN_SHARE = 0.5  # at least half the layer's width lost

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for stats in record.symmetry:
            if _stuck_share(stats) < self.MIN_SHARE:
                continue
            what = "constant" if stats.constant else f"{stats.distinct_weights} distinct weight rows"
            yield self.finding(
                f"{stats.name}'s {stats.units} units start identical ({what}) and get identical gradients: "
                f"they will train as {stats.learning_units} unit{'s' if stats.learning_units != 1 else ''}",
                module=stats.name,
                evidence={"layer": stats.name, "type": stats.type, "units": stats.units,
                          "distinct_weight_rows": stats.distinct_weights, "learning_units": stats.learning_units,
                          "stuck_share": round(_stuck_share(stats), 4)},
                fix=(f"Do not initialise {stats.name}.weight with a constant (nn.init.constant_/zeros_/fill_) or "
                     f"copied rows: keep the default init or use nn.init.kaiming_uniform_({stats.name}.weight, "
                     "nonlinearity='relu'); constant/zero init is for biases, norm gains and the last layer of a "
                     "residual branch or output head."),
                severity=Severity.ERROR if stats.learning_units == 1 else Severity.WARNING,
            )
