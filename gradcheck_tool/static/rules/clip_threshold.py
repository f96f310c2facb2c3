"""GH212: a literal clip threshold far below the gradient norm the probe measured.

The static pass finds the literal thresholds (:func:`literal_clip_thresholds`); the rule
speaks only once a probe has measured the gradient norm (``api.calibrate_clipping``)."""
from __future__ import annotations

from typing import Iterator, NamedTuple

from gradcheck_tool.findings import Position, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.analysis.names import argument, number

_NORM_CLIPS = frozenset({"clip_grad_norm_", "clip_grad_norm", "clip_gradients"})


class ClipThreshold(NamedTuple):
    value: float
    text: str  # the call, as written
    start: Position
    end: Position


def literal_clip_thresholds(ctx: SourceContext) -> Iterator[ClipThreshold]:
    """``clip_grad_norm_(params, 0.01)``, ``max_norm=CLIP`` (a name bound once to a literal),
    ``accelerator.clip_grad_norm_(...)``, ``fabric.clip_gradients(..., max_norm=...)``."""
    for site in ctx.facts.calls:
        if site.method not in _NORM_CLIPS:
            continue
        # fabric.clip_gradients(module, optimizer, max_norm=...) takes it third.
        arg = argument(site.node, 2 if site.method == "clip_gradients" else 1, "max_norm")
        value = number(arg.value, ctx.facts.constants) if arg is not None else None
        start, end = ctx.span(site.node)
        if value is not None and value > 0 and start is not None and end is not None:
            yield ClipThreshold(value, ctx.code(site.node), start, end)


class ClipThresholdTooLow:
    """What it does:
    With a probe (``gradhealth scan`` without ``--static-only``), compares each literal
    ``max_norm`` of ``clip_grad_norm_`` (or ``accelerator.clip_grad_norm_``,
    ``fabric.clip_gradients``) with the global gradient norms the probe measured on the
    file's model, and reports a threshold more than 10x below the smallest of them.

    Why it matters:
    Clipping is meant to cut the rare spike. A threshold an order of magnitude below the
    typical norm rescales every step instead: plain SGD then moves at 1/10 (or less) of
    its learning rate, and any optimizer sees every batch's gradient squashed to the same
    length, so the big, informative ones count no more than the rest. Training crawls or
    stalls with no error. (Measured at initialisation, where norms are often largest:
    treat the ratio as an order of magnitude, and re-check after warm-up.)

    Example:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.001)   # probe: norms ~5

    Fix:
    Clip near the measured scale: the probe's ``recommended_max_norm`` (twice the median
    norm) keeps ordinary steps and cuts spikes; 1.0 is the common default.
    """

    CODE = "GH212"
    NAME = "clip-threshold-too-low"
    SEVERITY = Severity.WARNING
    RATIO = 10.0  # an order of magnitude: every step is shrunk at least 10x, not just the spikes
