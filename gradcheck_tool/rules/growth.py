"""The file's own optimizer, run for a few steps: weight norms that grow with no decay (GH143).

The growth model, from the measured norms and nothing else: an optimizer step adds a
roughly constant amount to ``||W||^2`` (Adam's steps have a fixed size per element, however
small the gradient gets; they are mostly orthogonal to W, so the norm performs a random
walk), while decay of ``d`` per step removes ``2 d ||W||^2``.  Writing ``x = ||W||^2 / ||W_0||^2`` and ``r`` for the growth
measured with no decay, ``dx/dt = 2 r - 2 d x``: without decay ``x`` grows without bound as
``1 + 2 r t``; with decay it settles at ``r / d``.
"""
from __future__ import annotations

import math
from statistics import median
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ProbeRecord, StepStats, WeightGrowth
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.signals import finite

HORIZON = 10_000  # steps: a short training run (a small GPT trains for ~600k, ImageNet ResNet-50 ~450k)
# Projected norm, as a multiple of the initial one.  At 2x a normalised layer's effective
# learning rate has fallen 4x, about what a schedule does on purpose: worth knowing.  At 8x it
# has fallen 64x, a stall, and far past the projection's own error (within 1.4x, measured).
INFO_GROWTH = 2.0
WARN_GROWTH = 8.0
TARGET = 2.0  # the suggested decay holds the norm near this multiple of its initial value
# AdamW's conventional weight decay (0.01-0.1, up to 0.3 for ViTs): the suggestion stays in it.
_RANGE = (0.01, 0.3)
# Optimizers whose steps keep their size as the gradient shrinks, the premise of the model.
# SGD's steps shrink with the gradient, so its weights stop growing once the loss is fit (the
# growth of its first steps is learning, not drift); Adagrad's shrink as its sum grows.
NORMALISED = frozenset({"Adam", "AdamW", "NAdam", "RAdam", "Adamax", "RMSprop", "Adadelta"})


def growth_per_step(weight: WeightGrowth) -> Optional[float]:
    """``r`` in the module docstring: half the relative growth of ``||W||^2`` per step."""
    norms = weight.norms
    if len(norms) < 2 or not all(finite(n) for n in norms) or not norms[0] > 0:
        return None
    return ((norms[-1] / norms[0]) ** 2 - 1) / (2 * (len(norms) - 1))


def decay_per_step(stats: StepStats) -> Optional[float]:
    """The fraction of each weight that decay removes per step; None when not stateable
    (L2 folded into an adaptive optimizer's normalised step)."""
    if stats.weight_decay == 0:
        return 0.0
    return stats.lr * stats.weight_decay if stats.decoupled else None


def measured_growth(stats: StepStats) -> Optional[float]:
    """The median matrix's measured net growth per step (embeddings or one odd layer do not decide)."""
    rates = [r for r in (growth_per_step(w) for w in stats.weights) if r is not None]
    return median(rates) if rates else None


def projected_growth(stats: StepStats, horizon: int = HORIZON) -> Optional[float]:
    """The median weight matrix's norm after ``horizon`` steps, as a multiple of its initial norm."""
    net, decay = measured_growth(stats), decay_per_step(stats)
    if net is None or decay is None:
        return None
    rate = net + decay  # the growth without decay: the measured net change plus what decay removed
    if decay == 0:
        x = 1 + 2 * rate * horizon
    else:
        x = rate / decay + (1 - rate / decay) * math.exp(-2 * decay * horizon)
    return math.sqrt(max(x, 0.0))


def suggested_weight_decay(stats: StepStats) -> Optional[float]:
    """AdamW's decay that settles the median matrix near ``TARGET`` times its initial norm
    (``d = r / TARGET^2`` per step), one significant digit, within the conventional range;
    for Adam and AdamW only (Adam becomes AdamW)."""
    rate = measured_growth(stats)
    if rate is None or rate <= 0 or stats.optimizer not in ("Adam", "AdamW") or stats.lr <= 0:
        return None
    low, high = _RANGE
    return float(f"{min(max(rate / TARGET**2 / stats.lr, low), high):.1g}")


class WeightNormGrowth(RuntimeRule):
    """The file's optimizer, which has no weight decay, makes the weights' norms grow steadily.

    What it does: when the file builds one ``torch.optim`` optimizer whose arguments are
    literals (``Adam(model.parameters(), lr=3e-3)``), the probe rebuilds it on the model and
    runs ``--train-steps`` (default 10) plain training steps on the probe batches, reading
    every weight matrix's norm after each.  For optimizers whose steps keep their size
    (Adam, AdamW, NAdam, RAdam, Adamax, RMSprop, Adadelta) with no weight decay configured,
    it projects the median matrix's measured growth over 10,000 steps (see the model in
    ``rules/growth.py``) and reports it when the norm would pass 2x its initial value
    (information) or 8x (a warning: the effective learning rate of a normalised layer,
    ``lr / ||W||^2``, down 64x).  Not SGD: its steps shrink with the gradient, so the growth
    of its first steps is learning that stops once the loss is fit.

    Why it matters: nothing bounds a weight's norm but decay.  Under Adam each step moves
    every weight by about ``lr``, so ``||W||`` keeps growing (about as the square root of
    the step count): transformer parameter norms grow this way until attention saturates
    (Merrill et al., 2021), logits grow overconfident, and for layers followed by
    normalisation the effective learning rate (``lr / ||W||^2``) decays as the norm grows,
    so training stalls (van Laarhoven, 2017; Zhang et al., 2019).  On a 256-wide MLP the probe
    measures 0.05% growth per step at lr=1e-3 (projected: 3.5x after 10k steps) and 0.45% at
    lr=3e-3 (9.5x).
    The projection assumes steady growth, so it is an order-of-magnitude estimate: against
    5,000 real Adam steps on a small task it was within 1.4x of the norm reached
    (``benchmarks/weight_growth.py``).

    Example: ``torch.optim.Adam(model.parameters(), lr=3e-3)`` with no ``weight_decay``.

    Fix: decoupled weight decay (``AdamW``, Loshchilov & Hutter, 2019), with the value that
    holds the median matrix near 2x its initial norm: ``gradhealth fix --unsafe-fixes`` writes it into the optimizer call and probes
    again to show the projected growth before and after.  Decay in the usual ranges cannot
    offset growth from a learning rate that is far too high: lower the rate then.
    """

    CODE = "GH143"
    NAME = "weight-norm-growth"
    AT_OPTIMIZER = True
    SEVERITY = Severity.WARNING
    METRIC = f"projected weight norm after {HORIZON:,} steps (x initial)"

    @classmethod
    def measure(cls, record: ProbeRecord, module: Optional[str]) -> Optional[float]:
        return projected_growth(record.steps) if record.steps is not None else None
    GOOD = (
        examples.mlp(),  # no optimizer in the file
        examples.trained("Adam", lr=3e-4, growth=5e-5),
        examples.trained("AdamW", lr=3e-3, growth=4.5e-3, weight_decay=0.05),
        examples.trained("SGD", lr=0.1, growth=1.7e-2),  # SGD's early growth is learning
    )
    BAD = (
        examples.trained("Adam", lr=3e-3, growth=4.5e-3),
        examples.trained("Adam", lr=1e-3, growth=5.5e-4),
        examples.trained("RMSprop", lr=1e-3, growth=1e-3),
    )

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        stats = record.steps
        if stats is None or stats.optimizer not in NORMALISED or decay_per_step(stats) != 0:
            return
        projected = projected_growth(stats)
        if projected is None or projected < INFO_GROWTH:
            return
        rates = {w.name: r for w in stats.weights if (r := growth_per_step(w)) is not None}
        fastest = max(rates, key=rates.get)
        net = measured_growth(stats)
        suggested = suggested_weight_decay(stats)
        steps = len(stats.losses)
        call = f"{stats.optimizer}(lr={stats.lr:g})"
        message = (f"{call} has no weight decay: over {steps} probe steps the weight matrices' norms grew "
                   f"{100 * net:.2g}% per step (median of {len(rates)}; fastest {fastest}, "
                   f"{100 * rates[fastest]:.2g}%); at that rate they reach {projected:.2g}x their initial norm "
                   f"within {HORIZON:,} steps")
        if suggested is None:
            advice = ("Add weight decay (decoupled, as AdamW's) so the norms stay bounded, or lower the learning "
                      "rate.")
        elif stats.optimizer == "Adam":
            advice = f"Use AdamW with weight_decay={suggested:g} (decoupled decay) so the norms stay bounded."
        else:
            advice = f"Set weight_decay={suggested:g} so the norms stay bounded."
        evidence = {"optimizer": stats.optimizer, "lr": stats.lr, "steps": steps,
                    "growth_per_step": net, "fastest": fastest,
                    "fastest_growth_per_step": rates[fastest], "projected_growth": projected,
                    "horizon": HORIZON, "suggested_weight_decay": suggested}
        yield self.finding(message, module=fastest.rpartition(".")[0] or None, evidence=evidence, fix=advice,
                           severity=Severity.WARNING if projected >= WARN_GROWTH else Severity.INFO)
