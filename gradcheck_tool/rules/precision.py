"""Whether activations and gradients fit fp16, read from the fp32 probe (GH150, GH151)."""
from __future__ import annotations

import math
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import AmpStats, LayerStats, Precision, ProbeRecord
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
    """How the file trains (or --amp asks); for the gradients (``backward``), a file that runs fp16
    only for inference (no backward pass in it) counts as fp32."""
    precision = record.precision or Precision(None, False)
    if backward and precision.dtype == "fp16" and not precision.trains:
        return Precision(None, False)
    return precision


def _half(record: ProbeRecord) -> list[LayerStats]:
    """The modules whose outputs (and output gradients) are fp16 under fp16 autocast."""
    return sorted((layer for layer in record.layers if layer.type not in FP32_OUTPUTS), key=lambda l: l.order)


def _measured(amp: AmpStats) -> dict:
    return {"dtype": amp.dtype, "scaler": amp.scaler, "scales": list(amp.scales), "skipped": list(amp.skipped),
            "kinds": list(amp.kinds), "final_scale": amp.final_scale, "verdict": amp.verdict,
            "optimizer": amp.optimizer or None, "first_nonfinite": amp.first_nonfinite}


class Fp16OverflowRisk(RuntimeRule):
    """Activations (or, without loss scaling, gradients) larger than fp16 can hold.

    What it does: where the file trains in fp16, or ``--amp fp16`` asks, the fp32 probe's largest
    |output| of each module is compared with fp16's maximum (65504): it names the first module, in
    forward order, over it — under fp16 autocast its output becomes inf and everything after it NaN
    — and, when the loss is not scaled, the first whose |gradient at its output| is over.  Modules
    whose output autocast keeps in fp32 (LayerNorm, GroupNorm, softmax, embeddings) are left out.
    How the file trains is read from its source (``torch.autocast(..., dtype=torch.float16)``,
    ``.half()``, ``GradScaler``, Lightning/Hugging Face/accelerate fp16 switches).  Silent for an
    fp32 file (its recipe has nothing to overflow: ``--amp fp16`` asks the question) and in bf16,
    whose range is fp32's (max 3.4e38).  Gradient overflow under a GradScaler is not predicted: the
    scaler skips that step and halves the scale, the search it is built for.

    With ``--amp fp16|bf16`` the verdict is measured instead: the file's optimizer steps run under a
    real autocast and GradScaler (probe/amp.py), which records the skipped steps and the scale.  A
    collapse (the run ends in skips, the scale still falling: the forward overflows, which no loss
    scale reaches, or the gradients need a scale under 2^-8) is an error naming the first module
    whose output, or output gradient, went inf/NaN.  A spike (one step overflows at a scale earlier
    steps fit at) is information: the scaler skipped one step, as it is built to.  The scale search
    (the scale falling from its start until the gradients fit) is silent.

    Why it matters: the values are from initialisation and grow in training, so a module already
    over 65504 at init overflows from the first steps.  T5's feed-forward outputs are the known
    case (the Hugging Face port clamps them in fp16).  GradScaler hides an overflow by skipping the
    step: a scale that keeps falling trains nothing.

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
        examples.half(out_max=2e5, grad_max=1e5),  # an fp32 recipe: nothing to overflow
        examples.half(out_max=40.0, dtype="fp16", scaler=True, asked=True, amp="search"),  # what the scaler does
    )
    BAD = (
        examples.half(out_max=2e5, grad_max=1e-3, dtype="fp16", scaler=True),
        examples.half(out_max=40.0, grad_max=1e5, dtype="fp16"),
        examples.half(out_max=2e5, dtype="fp16", scaler=True, asked=True),  # --amp fp16 on an fp32 file
        examples.half(out_max=2e5, dtype="fp16", scaler=True, asked=True, amp="collapse"),  # measured
        examples.half(out_max=40.0, dtype="fp16", scaler=True, asked=True, amp="spike"),  # measured: info
    )

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        if record.amp is not None:
            yield from self._measured(record, record.amp)
            return
        precision = _precision(record)
        if precision.dtype != "fp16":
            return
        layers = _half(record)
        over = [l for l in layers if l.out_max is not None and l.out_max > FP16_MAX]
        advice = ("train in bf16 (torch.autocast(device_type, dtype=torch.bfloat16): fp32's range, no scaler "
                  "needed), keep {name} in fp32 (torch.autocast(device_type, enabled=False) around it), or clamp "
                  "or rescale its output (a normalisation before it, a smaller init)")
        if over:
            first = over[0]
            more = f"; {len(over) - 1} later modules too" if len(over) > 1 else ""
            yield self.finding(
                f"{first.name} ({first.type}) outputs values up to {first.out_max:.3g}, over fp16's maximum 65504: "
                f"the first module in forward order that would overflow to inf{more}",
                module=first.name, evidence={"out_max": first.out_max, "fp16_max": FP16_MAX, "dtype": precision.dtype,
                                             "modules": [l.name for l in over]},
                fix=advice.format(name=first.name).capitalize() + ".")
            return
        precision = _precision(record, backward=True)
        if precision.scaler or precision.dtype != "fp16":
            return
        grads = sorted((l for l in layers if l.grad_max is not None and l.grad_max > FP16_MAX),
                       key=lambda l: l.backward_order if l.backward_order is not None else math.inf)
        if grads:
            first = grads[0]
            yield self.finding(
                f"the gradient at {first.name}'s output reaches {first.grad_max:.3g}, over fp16's maximum 65504: it "
                f"overflows to inf in the backward pass without loss scaling",
                module=first.name, evidence={"grad_max": first.grad_max, "fp16_max": FP16_MAX,
                                             "dtype": precision.dtype, "modules": [l.name for l in grads]},
                fix="Use torch.amp.GradScaler (it lowers the scale until gradients fit), or " + advice.format(
                    name=first.name) + ".")

    def _measured(self, record: ProbeRecord, amp: AmpStats) -> Iterator[Finding]:
        if amp.verdict not in ("collapse", "spike"):
            return
        run = f"under real {amp.dtype} autocast{' with a GradScaler' if amp.scaler else ''} ({amp.device})"
        where = (f"; {amp.first_nonfinite} is the first module whose {'output' if amp.nonfinite_in == 'forward' else 'output gradient'} "
                 "went inf/NaN" if amp.first_nonfinite else "")
        steps = len(amp.scales)
        if amp.verdict == "spike":
            first = amp.skipped[amp.kinds.index("spike") if "spike" in amp.kinds else amp.kinds.index("forward")]
            yield self.finding(
                f"{run}, step {first + 1} of {steps} overflowed at a scale earlier steps fit at ({amp.scales[first]:g}): "
                f"a transient spike the scaler skipped; {len(amp.skipped)} skipped in all, the scale settles at "
                f"{amp.final_scale:g}{where}", module=amp.first_nonfinite, severity=Severity.INFO,
                evidence=_measured(amp),
                fix="Nothing to do for one skipped step; if they recur, find what grows at the named module "
                    "(clip gradients, lower the lr) or train in bf16.")
            return
        forward = amp.nonfinite_in == "forward" or all(kind == "forward" for kind in amp.kinds[-3:])
        cause = ("the forward overflows, which no loss scale reaches" if forward else
                 "the gradients overflow at every scale tried")
        falling = f", the scale falling from {amp.init_scale:g} to {amp.final_scale:g}" if amp.scaler else ""
        name = amp.first_nonfinite or next((l.name for l in _half(record) if l.out_max and l.out_max > FP16_MAX), None)
        yield self.finding(
            f"{run} training collapses: the last {_trailing(amp)} of {steps} steps were skipped{falling}: "
            f"{cause}{where}", module=name, evidence=_measured(amp),
            fix=("Train in bf16 (torch.autocast(device_type, dtype=torch.bfloat16)), keep "
                 f"{name or 'the overflowing module'} in fp32 (torch.autocast(device_type, enabled=False) around it), "
                 "or clamp or rescale its output." if amp.dtype == "fp16" else
                 f"Keep {name or 'the overflowing module'} in fp32, or clamp or rescale its output."))


def _trailing(amp: AmpStats) -> int:
    kept = [t for t in range(len(amp.scales)) if t not in amp.skipped]
    return len(amp.scales) - 1 - (kept[-1] if kept else -1)


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
        precision, amp = _precision(record, backward=True), record.amp
        if precision.dtype != "fp16" or (amp is not None and (amp.dtype != "fp16" or amp.verdict == "collapse")):
            return
        scaled = amp.scaler if amp is not None else precision.scaler
        scale = amp.final_scale if amp is not None else (precision.init_scale if scaled else 1.0)
        shares = [(l, flushed_share(l, scale)) for l in _half(record)]
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
    largest = max((l.grad_max for l in _half(record) if l.grad_max), default=0.0)
    return 2.0 ** math.floor(math.log2(FP16_MAX / largest)) if largest > 0 else math.inf
