"""The file's own optimizer, run for a few steps, makes the loss blow up (GH140)."""
from __future__ import annotations

import math
from statistics import median
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ProbeRecord, StepStats
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.signals import finite

RISE = 10.0  # the loss at the end of the run, as a multiple of its first value
SAFETY = 0.8  # the recommended lr, as a fraction of the bound: inside it, with room for the sharpness to rise


def stability_ratio(stats: Optional[StepStats]) -> Optional[float]:
    """lr / bound, where the bound was measured."""
    curvature = stats.curvature if stats is not None else None
    if curvature is None or curvature.bound is None or not finite(curvature.bound) or curvature.bound <= 0:
        return None
    return stats.lr / curvature.bound


def stability_advice(stats: StepStats) -> Optional[str]:
    """"lr is 1.21x the edge of stability 2/λ_max = 0.0182; ..." with the lr computed from the bound."""
    ratio = stability_ratio(stats)
    if ratio is None:
        return None
    bound = stats.curvature.bound
    return (f"lr is {ratio:.3g}x the edge of stability {stats.curvature.formula} = {bound:.3g} at initialisation: "
            f"try lr={recommended_lr(bound):.2g} ({SAFETY:g}x the bound)")


def recommended_lr(bound: float) -> float:
    return float(f"{SAFETY * bound:.2g}")


class LossDivergence(RuntimeRule):
    """A few steps of the file's own optimizer make the loss or the weights diverge.

    What it does: reads the short optimizer run the probe makes (``--train-steps``, see
    GH143) from a model whose forward and backward were finite at initialisation.  It is an
    error when the loss or a weight matrix's norm becomes NaN/Inf, and a warning when, with
    the file's own ``loss_fn``, the loss at the end of the run (the median of its last three
    steps) is more than 10x its first value.  The default loss is linear in the output, so
    only non-finite values count under it.  The steps run at the optimizer's ``lr``; when the
    file builds a schedule that can start lower (a warmup, ``LambdaLR``, ``LinearLR``,
    ``OneCycleLR``), a non-finite loss is a warning, not an error.

    Why it matters: ten steps is where a learning rate that is too high shows: each step
    overshoots along the sharpest direction (SGD diverges once ``lr > 2 / L`` for curvature
    ``L``), the loss climbs by orders of magnitude and then overflows.  A loss that rises
    10x in ten steps on batches like the ones it trains on does not recover by itself;
    NaN weights never do.

    Example: ``torch.optim.SGD(model.parameters(), lr=10.0)`` on an MSE loss.

    Fix: lower the learning rate: with ``--curvature`` the probe measures the edge of stability
    at initialisation and the advice is 0.8x of it ("lr is 1.21x the edge of stability 2/λ_max
    = 0.0182: try lr=0.015"), without it 10x lower, then tune; clip gradients (``gradhealth`` quotes
    a ``max_norm`` measured by the probe), or warm the rate up over the first steps.
    """

    CODE = "GH140"
    NAME = "loss-divergence"
    AT_OPTIMIZER = True
    SEVERITY = Severity.ERROR
    GOOD = (
        examples.mlp(),  # no optimizer run
        examples.trained("Adam", lr=1e-3, growth=5e-5, loss="loss_fn",
                         losses=(2.3, 2.2, 2.1, 2.1, 2.0, 1.9, 1.9, 1.8, 1.8, 1.7)),
        examples.trained("Adam", lr=1e-3, growth=5e-5, losses=(0.5, -3.0, 12.0, -40.0, 80.0)),  # default loss
    )
    BAD = (
        examples.trained("SGD", lr=10.0, growth=5e-5, loss="loss_fn", losses=(1.0, 8.0, 90.0, 2e3, 4e4, math.inf)),
        examples.trained("SGD", lr=1.0, growth=5e-5, loss="loss_fn",
                         losses=(1.0, 1.5, 3.0, 6.0, 9.0, 14.0, 20.0, 25.0, 31.0, 40.0)),
        examples.trained("Adam", lr=1.0, growth=5e-5, losses=(0.1, 3.0, math.nan)),
    )

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        stats = record.steps
        if stats is None or not stats.losses or any(layer.out_nonfinite or layer.grad_nonfinite
                                                    for layer in record.layers):
            return  # no run, or broken before any step: GH103/GH104 say where
        call = f"{stats.optimizer}(lr={stats.lr:g})"
        # Run at the peak rate: a warmup schedule starts lower, so the verdict is a warning there.
        severity = Severity.WARNING if stats.warmup else Severity.ERROR
        peak = " (at the peak lr: the file's warmup schedule starts lower and may avoid this)" if stats.warmup else ""
        ratio = stability_ratio(stats)
        bound = stability_advice(stats) if ratio is not None and ratio > 1 else None
        lower = f"{bound}" if bound else f"Lower the learning rate (try lr={stats.lr / 10:g})"
        advice = (lower + ", clip gradients"
                  + (f" at max_norm={record.recommended_max_norm:g}" if record.recommended_max_norm else "")
                  + ", or warm the rate up over the first steps.")
        for step, loss in enumerate(stats.losses):
            broken = [w.name for w in stats.weights if len(w.norms) > step + 1 and not finite(w.norms[step + 1])]
            if not finite(loss) or broken:
                what = f"the loss became {loss}" if not finite(loss) else f"{broken[0]} became non-finite"
                yield self.finding(f"{call}: {what} at optimizer step {step + 1} of {len(stats.losses)}{peak}",
                                   evidence={"optimizer": stats.optimizer, "lr": stats.lr, "step": step + 1,
                                             "losses": list(stats.losses), "weights": broken,
                                             "warmup": stats.warmup},
                                   fix=advice, severity=severity)
                return
        if record.loss != "loss_fn" or len(stats.losses) < 4:
            return
        first, last = stats.losses[0], median(stats.losses[-3:])
        if first > 0 and last > RISE * first:
            yield self.finding(
                f"{call}: the loss rose from {first:.3g} to {last:.3g} ({last / first:.3g}x) over "
                f"{len(stats.losses)} optimizer steps{peak}", severity=Severity.WARNING,
                evidence={"optimizer": stats.optimizer, "lr": stats.lr, "first": first, "last": last,
                          "losses": list(stats.losses)},
                fix=advice)
