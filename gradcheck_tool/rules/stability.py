"""The learning rate against the edge of stability measured at initialisation (GH144), and the
advice GH140 gives from the same bound."""
from __future__ import annotations

import math
from statistics import median
from typing import Iterator

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.divergence import SAFETY, LossDivergence, recommended_lr, stability_ratio
from gradcheck_tool.rules.signals import finite

class LrAboveEdgeOfStability(RuntimeRule):
    """The learning rate is above the largest one the optimizer is stable at, on the loss's
    curvature at initialisation.

    What it does: with ``--curvature``, the probe measures the sharpness ``λ_max`` of the loss at
    the initial weights (power iteration on Hessian-vector products, probe/curvature.py) and the
    bound it puts on the file's optimizer: ``2/λ_max`` for SGD, ``(2+2β)/λ_max`` with momentum β
    (Cohen et al. 2021, "Gradient descent on neural networks typically occurs at the edge of
    stability"), and ``2/λ_max(P⁻¹H)`` for Adam/AdamW, whose first, bias-corrected steps are plain
    preconditioned gradient steps (the steady-state edge ``(2+2β1)/((1-β1) lr)``, 38/lr for
    β1 = 0.9, Cohen et al. 2022, "Adaptive gradient methods at the edge of stability", is where
    training hovers later; probe/curvature.py derives both).  It fires when the
    file's lr is above that bound and the optimizer steps did not already diverge (GH140 then
    reports it, with the same bound).  It is a warning unless the loss still fell over the
    measured steps: a network can cross the bound at initialisation and recover as its
    curvature drops (the catapult phase, Lewkowycz et al. 2020), and then it is information.
    For Adam it is always information: its bound is a linearisation at a frozen preconditioner,
    exact where ``eps`` dominates ``sqrt(v)`` but conservative otherwise (the second moment grows
    where a step overshoots; measured on least squares, no rise up to 8x the bound).

    Why it matters: on a quadratic the bound is exact: above it, every step overshoots along the
    sharpest direction and the error there grows geometrically.  During training the sharpness
    rises until it meets the bound and then hovers at it (the edge of stability); a loss that
    rises and falls while it does is normal, not divergence.  This rule only reads the start,
    where an lr above the bound makes the first steps unstable.

    Example: least squares with top curvature L = 110 (bound 2/L = 0.0182) trained by
    ``SGD(lr=0.022)``: lr is 1.21x the edge of stability.

    Fix: use the lr the message computes (0.8x the bound), or warm the lr up from below the bound.
    """

    CODE = "GH144"
    NAME = "lr-above-edge-of-stability"
    AT_OPTIMIZER = True
    SEVERITY = Severity.WARNING
    GOOD = (
        examples.trained("SGD", lr=0.015, loss="loss_fn", sharpness=110.0),
        examples.trained("SGD", lr=0.1, loss="loss_fn"),  # curvature not measured
        examples.trained("SGD", lr=0.03, loss="loss_fn", sharpness=110.0,  # diverged: GH140's
                         losses=(1.0, 8.0, 90.0, 2e3, math.inf)),
    )
    BAD = (
        examples.trained("SGD", lr=0.022, loss="loss_fn", sharpness=110.0, losses=(1.0, 1.1, 1.3, 1.6, 2.0)),
        examples.trained("Adam", lr=3e-3, loss="loss_fn", sharpness=2e3),
    )

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        stats = record.steps
        ratio = stability_ratio(stats)
        if ratio is None or ratio <= 1 or any(LossDivergence().check(record)):
            return
        curvature = stats.curvature
        losses = [v for v in stats.losses if finite(v)]
        fell = len(losses) >= 4 and median(losses[-3:]) < losses[0]
        tail = (f"; the loss still fell over {len(losses)} steps ({losses[0]:.3g} to {median(losses[-3:]):.3g}), "
                "so the network may recover from the first overshoots" if fell else "")
        yield self.finding(
            f"{stats.optimizer}(lr={stats.lr:g}): lr is {ratio:.3g}x the edge of stability {curvature.formula} = "
            f"{curvature.bound:.3g} (λ_max = {curvature.sharpness:.3g} at initialisation){tail}",
            severity=Severity.INFO if fell or curvature.preconditioned else Severity.WARNING,
            evidence={"optimizer": stats.optimizer, "lr": stats.lr, "bound": curvature.bound,
                      "sharpness": curvature.sharpness, "formula": curvature.formula, "ratio": ratio,
                      "recommended_lr": recommended_lr(curvature.bound), "hvps": curvature.hvps,
                      "losses": list(stats.losses)},
            fix=f"Use lr={recommended_lr(curvature.bound):.2g} ({SAFETY:g}x the bound), or warm the rate up "
                "from below the bound over the first steps.")
