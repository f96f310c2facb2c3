"""Whether gradients flush to zero in fp16, read from the fp32 probe and the --amp run (GH151)."""
from __future__ import annotations

import math
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import LayerStats, ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.precision import (
    DEFAULT_SCALE, FLUSHED, FP16_MAX, FP16_NORMAL, FP16_SUBNORMAL, half_modules, training_precision,
)


def flushed_share(layer: LayerStats, scale: float, limit: int = FP16_SUBNORMAL) -> Optional[float]:
    """The share of the layer's nonzero output-gradient entries whose |g| * scale is under 2^limit
    (whole exponent bins only: [2^e, 2^(e+1)) counts when 2^(e+1) <= 2^limit / scale)."""
    total = sum(count for _, count in layer.grad_exponents)
    if not total:
        return None
    edge = limit - math.log2(scale)
    return sum(count for e, count in layer.grad_exponents if e + 1 <= edge) / total


class Fp16UnderflowRisk(RuntimeRule):
    """Gradients too small for fp16: under fp16 they flush to zero.

    What it does: where the file trains in fp16, or ``--amp fp16`` asks, it takes how the fp32
    probe's nonzero entries of the gradient at each module's output spread over powers of two and,
    at the file's loss scale (a ``GradScaler``'s ``init_scale``, 2^16 by default; 1 without a
    scaler; with ``--amp``, the scale the real GradScaler run settled at), the share that would fall
    under fp16's smallest subnormal, 2^-24 (lost to zero), and under its smallest normal, 2^-14
    (fewer than 10 mantissa bits kept).  It fires when more than 1% of a module's entries flush to
    zero.  An error without loss scaling.  With a GradScaler: a warning when no scale can keep them
    (the largest gradient overflows fp16 at the scale the small ones need: the gradients span more
    than fp16's 40 binades) or when the file lowered ``init_scale`` under what they need; otherwise
    information, since the scaler doubles its scale after every ``growth_interval`` steps without
    overflow and grows into the scale they need (the message says after how many steps).  Silent
    for an fp32 file (its recipe loses nothing: ``--amp fp16`` asks the question) and in bf16
    (fp32's exponent range: its smallest normal is 2^-126).

    Why it matters: Micikevicius et al. 2018 ("Mixed precision training") found most of a
    detector's activation gradients under 2^-24 and lost in fp16; loss scaling shifts them into
    range.  A gradient lost to zero is a biased update, not noise.

    Example: a language model whose per-token loss is averaged over a batch of thousands: its
    output gradients are ~1/(batch x vocabulary) per entry, about 2^-26.

    Fix: use ``torch.amp.GradScaler()`` (or raise its ``init_scale`` to the value the message
    computes), or train in bf16.
    """

    CODE = "GH151"
    NAME = "fp16-underflow-risk"
    SEVERITY = Severity.ERROR
    GOOD = (
        examples.half(exponents=((-30, 90), (-20, 10)), dtype="fp16", scaler=True),
        examples.half(exponents=((-30, 90), (-20, 10)), dtype="bf16"),
        examples.half(exponents=((-50, 90), (-20, 10))),  # an fp32 recipe: nothing flushes
        examples.half(exponents=((-30, 90), (-20, 10)), dtype="fp16", trains=False),  # fp16 inference only
        examples.half(exponents=((-30, 90), (-20, 10)), dtype="fp16", scaler=True, asked=True, amp="search"),
    )
    BAD = (
        examples.half(exponents=((-30, 90), (-20, 10)), dtype="fp16"),
        examples.half(exponents=((-30, 90), (-20, 10)), dtype="fp16", scaler=True, init_scale=1.0),
        examples.half(exponents=((-50, 90), (-20, 10)), grad_max=1.0, dtype="fp16", scaler=True),  # no scale fits
        examples.half(exponents=((-45, 90), (-20, 10)), dtype="fp16", scaler=True),  # the scaler grows into it: info
        examples.half(exponents=((-38, 90), (-20, 10)), dtype="fp16", scaler=True, asked=True, amp="search"),
    )

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        precision, amp = training_precision(record, backward=True), record.amp
        if precision.dtype != "fp16" or (amp is not None and (amp.dtype != "fp16" or amp.verdict == "collapse")):
            return
        scaled = amp.scaler if amp is not None else precision.scaler
        scale = amp.final_scale if amp is not None else (precision.init_scale if scaled else 1.0)
        shares = [(l, flushed_share(l, scale)) for l in half_modules(record)]
        lost = sorted(((l, s) for l, s in shares if s is not None and s > FLUSHED), key=lambda p: -p[1])
        if not lost:
            return
        layer, share = lost[0]
        subnormal = flushed_share(layer, scale, FP16_NORMAL)
        needed = _scale_needed(layer, scale)
        ceiling = _ceiling(record)
        if amp is not None and amp.skipped:  # measured: the largest scale the run's gradients fit at
            ceiling = min(ceiling, amp.final_scale)
        measured = " (measured by the real GradScaler run)" if amp is not None and scaled else ""
        if not scaled:
            severity, how = Severity.ERROR, "in fp16 without loss scaling"
        elif needed is None or needed > ceiling:
            severity = Severity.WARNING
            how = (f"at the loss scale {_pow2(scale)}{measured}, and no scale keeps them: at the scale they need "
                   f"({_pow2(needed) if needed else 'over 2^63'}), larger gradients overflow fp16 (they fit up to "
                   f"{_pow2(ceiling)})")
        elif precision.init_scale < min(needed, DEFAULT_SCALE):
            severity, how = Severity.WARNING, f"at the GradScaler's starting scale {_pow2(scale)}, lowered under torch's default"
        else:
            steps = round(math.log2(needed / scale)) * precision.growth_interval
            severity = Severity.INFO
            how = (f"at the GradScaler's scale {_pow2(scale)}{measured}, until it grows to {_pow2(needed)} after {steps} steps "
                   f"without overflow (growth_interval {precision.growth_interval})")
        yield self.finding(
            f"{share:.1%} of the nonzero gradient entries at {layer.name}'s output would flush to zero {how} "
            f"(under 2^-24; {subnormal:.1%} under 2^-14, losing precision); {len(lost)} modules over {FLUSHED:.0%}",
            module=layer.name, severity=severity,
            evidence={"flushed": share, "subnormal": subnormal, "scale": scale, "dtype": precision.dtype,
                      "scaler": scaled, "scale_needed": needed, "scale_ceiling": ceiling if math.isfinite(ceiling) else None,
                      "modules": {l.name: s for l, s in lost}},
            fix=(f"Scale the loss: torch.amp.GradScaler(init_scale={needed:g}) keeps all but {FLUSHED:.0%} of them"
                 if needed is not None and needed <= ceiling else "Scale the loss with torch.amp.GradScaler()")
                + ", or train in bf16 (fp32's exponent range).")


def _pow2(scale: float) -> str:
    """A loss scale as GradScaler's powers of two read: 2^16, 2^-3 (any other value as it is)."""
    power = math.log2(scale) if 0 < scale < math.inf else None
    return f"2^{int(power)}" if power is not None and power == int(power) else f"{scale:g}"


def _scale_needed(layer: LayerStats, scale: float) -> Optional[float]:
    """The smallest power-of-two scale, from ``scale`` up, under which at most FLUSHED of the
    layer's entries flush."""
    return next((2.0**power for power in range(math.floor(math.log2(scale)), 64)
                 if (flushed_share(layer, 2.0**power) or 0) <= FLUSHED), None)


def _ceiling(record: ProbeRecord) -> float:
    """The largest power-of-two scale at which no fp16 module's output gradient overflows."""
    largest = max((l.grad_max for l in half_modules(record) if l.grad_max), default=0.0)
    return 2.0 ** math.floor(math.log2(FP16_MAX / largest)) if largest > 0 else math.inf
