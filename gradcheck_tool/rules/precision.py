"""Whether activations and gradients fit fp16, read from the fp32 probe (GH150, GH151)."""
from __future__ import annotations

import math
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import LayerStats, Precision, ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule

FP16_MAX = 65504.0
FP16_SUBNORMAL = -24  # log2 of fp16's smallest subnormal: below it a value flushes to zero
FP16_NORMAL = -14  # log2 of its smallest normal: below it a value keeps fewer than 10 mantissa bits
DEFAULT_SCALE = 2.0**16  # torch's GradScaler init_scale
FLUSHED = 0.01  # share of a module's nonzero gradient entries lost to zero that counts
# Outputs autocast keeps in fp32 (its fp32 op list) or that come from fp32 weights by lookup.
FP32_OUTPUTS = frozenset({"LayerNorm", "GroupNorm", "Softmax", "LogSoftmax", "Embedding", "EmbeddingBag"})


def _precision(record: ProbeRecord, backward: bool = False) -> Precision:
    """How the file trains; for the gradients (``backward``), a file that runs fp16 only for
    inference (no backward pass in it) counts as fp32."""
    precision = record.precision or Precision(None, False)
    if backward and precision.dtype == "fp16" and not precision.trains:
        return Precision(None, False)
    return precision


def _half(record: ProbeRecord) -> list[LayerStats]:
    """The modules whose outputs (and output gradients) are fp16 under fp16 autocast."""
    return sorted((layer for layer in record.layers if layer.type not in FP32_OUTPUTS), key=lambda l: l.order)


def _severity(precision: Precision) -> Severity:
    return Severity.ERROR if precision.dtype == "fp16" else Severity.INFO


class Fp16OverflowRisk(RuntimeRule):
    """Activations (or, without loss scaling, gradients) larger than fp16 can hold.

    What it does: the fp32 probe records each module's largest |output| and largest |gradient at
    its output|.  It names the first module, in forward order, whose output exceeds fp16's maximum
    (65504) — under fp16 autocast it becomes inf and everything after it NaN — and, when the file
    does not scale the loss, the first whose gradient does.  Modules whose output autocast keeps
    in fp32 (LayerNorm, GroupNorm, softmax, embeddings) are left out.  The file's own precision is
    read from its source (``torch.autocast(..., dtype=torch.float16)``, ``.half()``, ``GradScaler``,
    Lightning/Hugging Face/accelerate fp16 switches): an error where it trains in fp16; for a file
    in fp32 it is information, advice for when it moves to fp16; silent in bf16, whose range is
    fp32's (max 3.4e38).  Gradient overflow under a GradScaler is not reported: the scaler skips
    that step and halves the scale, the search it is built for.

    Why it matters: the values are from initialisation and grow in training, so a module already
    over 65504 at init overflows from the first steps.  T5's feed-forward outputs are the known
    case (the Hugging Face port clamps them in fp16).

    Example: a Linear(512, 512) whose weights have std 30, fed unit inputs, outputs ~700 per unit
    and a few thousand at most; stack two and the next exceeds 65504.

    Fix: train in bf16 (``torch.autocast(device_type, dtype=torch.bfloat16)``, no scaler needed);
    or keep the named module in fp32 (``torch.autocast(device_type, enabled=False)`` around it);
    or clamp its output to the fp16 range, or rescale it (a normalisation before it, a smaller init).
    """

    CODE = "GH150"
    NAME = "fp16-overflow-risk"
    SEVERITY = Severity.ERROR
    GOOD = (
        examples.half(out_max=40.0, grad_max=1e-3, dtype="fp16", scaler=True),
        examples.half(out_max=2e5, grad_max=1e-3, dtype="bf16"),  # bf16 has fp32's range
        examples.half(out_max=40.0, grad_max=10.0, dtype="fp16", scaler=True),  # the scaler backs off
    )
    BAD = (
        examples.half(out_max=2e5, grad_max=1e-3, dtype="fp16", scaler=True),
        examples.half(out_max=40.0, grad_max=1e5, dtype="fp16"),
        examples.half(out_max=2e5, grad_max=1e-3),  # fp32 file: advice
    )

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        precision = _precision(record)
        if precision.dtype == "bf16":
            return
        layers = _half(record)
        over = [l for l in layers if l.out_max is not None and l.out_max > FP16_MAX]
        advice = ("train in bf16 (torch.autocast(device_type, dtype=torch.bfloat16): fp32's range, no scaler "
                  "needed), keep {name} in fp32 (torch.autocast(device_type, enabled=False) around it), or clamp "
                  "or rescale its output (a normalisation before it, a smaller init)")
        when = "" if precision.dtype == "fp16" else " if you train it in fp16"
        if over:
            first = over[0]
            more = f"; {len(over) - 1} later modules too" if len(over) > 1 else ""
            yield self.finding(
                f"{first.name} ({first.type}) outputs values up to {first.out_max:.3g}, over fp16's maximum 65504: "
                f"the first module in forward order that would overflow to inf{when}{more}",
                module=first.name, severity=_severity(precision),
                evidence={"out_max": first.out_max, "fp16_max": FP16_MAX, "dtype": precision.dtype,
                          "modules": [l.name for l in over]},
                fix=advice.format(name=first.name).capitalize() + ".")
            return
        precision = _precision(record, backward=True)
        if precision.scaler or precision.dtype == "bf16":
            return
        when = "" if precision.dtype == "fp16" else " if you train it in fp16"
        grads = sorted((l for l in layers if l.grad_max is not None and l.grad_max > FP16_MAX),
                       key=lambda l: l.backward_order if l.backward_order is not None else math.inf)
        if grads:
            first = grads[0]
            yield self.finding(
                f"the gradient at {first.name}'s output reaches {first.grad_max:.3g}, over fp16's maximum 65504: it "
                f"overflows to inf in the backward pass{when} without loss scaling",
                module=first.name, severity=_severity(precision),
                evidence={"grad_max": first.grad_max, "fp16_max": FP16_MAX, "dtype": precision.dtype,
                          "modules": [l.name for l in grads]},
                fix="Use torch.amp.GradScaler (it lowers the scale until gradients fit), or " + advice.format(
                    name=first.name) + ".")


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

    What it does: the fp32 probe records, per module, how the nonzero entries of the gradient at
    its output spread over powers of two.  Given the loss scale the file starts with (a
    ``GradScaler``'s ``init_scale``, 2^16 by default; 1 without a scaler), it takes the share of
    entries that would fall under fp16's smallest subnormal, 2^-24 (lost to zero), and under its
    smallest normal, 2^-14 (fewer than 10 mantissa bits kept), and fires when more than 1% of a
    module's entries flush to zero.  An error when the file trains in fp16 without loss scaling; a
    warning with a GradScaler whose start scale is still too low; information for a file in fp32,
    only when even the default GradScaler would not save them.  Silent in bf16 (fp32's exponent
    range: its smallest normal is 2^-126).

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
        examples.half(exponents=((-30, 90), (-20, 10))),  # fp32 file: the default scaler would save them
        examples.half(exponents=((-30, 90), (-20, 10)), dtype="fp16", trains=False),  # fp16 inference only
    )
    BAD = (
        examples.half(exponents=((-30, 90), (-20, 10)), dtype="fp16"),
        examples.half(exponents=((-30, 90), (-20, 10)), dtype="fp16", scaler=True, init_scale=1.0),
        examples.half(exponents=((-50, 90), (-20, 10))),  # fp32 file, beyond even 2^16
    )

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        precision = _precision(record, backward=True)
        if precision.dtype == "bf16":
            return
        scale = precision.init_scale if precision.scaler else (1.0 if precision.dtype == "fp16" else DEFAULT_SCALE)
        shares = [(l, flushed_share(l, scale)) for l in _half(record)]
        lost = sorted(((l, s) for l, s in shares if s is not None and s > FLUSHED), key=lambda p: -p[1])
        if not lost:
            return
        layer, share = lost[0]
        subnormal = flushed_share(layer, scale, FP16_NORMAL)
        needed = _scale_needed(layer)
        if precision.dtype != "fp16":
            severity, how = Severity.INFO, "even under a default GradScaler (scale 2^16), if you train it in fp16"
        elif precision.scaler:
            severity, how = Severity.WARNING, f"at the GradScaler's starting scale {scale:g}"
        else:
            severity, how = Severity.ERROR, "in fp16 without loss scaling"
        yield self.finding(
            f"{share:.1%} of the nonzero gradient entries at {layer.name}'s output would flush to zero {how} "
            f"(under 2^-24; {subnormal:.1%} under 2^-14, losing precision); {len(lost)} modules over {FLUSHED:.0%}",
            module=layer.name, severity=severity,
            evidence={"flushed": share, "subnormal": subnormal, "scale": scale, "dtype": precision.dtype,
                      "scaler": precision.scaler, "scale_needed": needed,
                      "modules": {l.name: s for l, s in lost}},
            fix=(f"Scale the loss: torch.amp.GradScaler(init_scale={needed:g}) keeps all but {FLUSHED:.0%} of them"
                 if needed is not None else "Scale the loss with torch.amp.GradScaler()")
                + ", or train in bf16 (fp32's exponent range).")


def _scale_needed(layer: LayerStats) -> Optional[float]:
    """The smallest power-of-two scale, from the default 2^16 up, under which at most FLUSHED of the
    layer's entries flush (the scaler lowers it again wherever that overflows)."""
    return next((2.0**power for power in range(16, 64) if (flushed_share(layer, 2.0**power) or 0) <= FLUSHED), None)
