"""Whether activations and gradients fit fp16, read from the fp32 probe and the --amp run (GH150; the
shared half-precision constants and reads; GH151 is in rules/underflow.py)."""
from __future__ import annotations

import math
from typing import Iterator

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import PERSIST, AmpStats, LayerStats, Precision, ProbeRecord, trailing_skips
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule

FP16_MAX = 65504.0
FP16_SUBNORMAL = -24  # log2 of fp16's smallest subnormal: below it a value flushes to zero
FP16_NORMAL = -14  # log2 of its smallest normal: below it a value keeps fewer than 10 mantissa bits
DEFAULT_SCALE = 2.0**16  # torch's GradScaler init_scale
FLUSHED = 0.01  # share of a module's nonzero gradient entries lost to zero that counts
# Outputs autocast keeps in fp32 (its fp32 op list) or that come from fp32 weights by lookup.
FP32_OUTPUTS = frozenset({"Softmax", "LogSoftmax"})
# Libraries' own norms and embeddings too (BartScaledWordEmbedding, ConvNextLayerNorm, LlamaRMSNorm: an
# fp32 weight times the normalised input gives fp32); BatchNorm keeps its input's dtype.
FP32_NORMS = frozenset({"layer", "group", "rms"})


def training_precision(record: ProbeRecord, backward: bool = False) -> Precision:
    """How the file trains (or --amp asks); for the gradients (``backward``), a file that runs fp16
    only for inference (no backward pass in it) counts as fp32."""
    precision = record.precision or Precision(None, False)
    if backward and precision.dtype == "fp16" and not precision.trains:
        return Precision(None, False)
    return precision


def half_modules(record: ProbeRecord) -> list[LayerStats]:
    """The modules whose outputs (and output gradients) are fp16 under fp16 autocast."""
    return sorted((layer for layer in record.layers if layer.type not in FP32_OUTPUTS
                   and layer.normalisation not in FP32_NORMS and not layer.type.endswith(("Embedding", "EmbeddingBag"))),
                  key=lambda l: l.order)


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
    whose output autocast keeps in fp32 (layer, group and RMS norms, softmax, embeddings, libraries' own
    subclasses included) are left out.
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
        precision = training_precision(record)
        if precision.dtype != "fp16":
            return
        layers = half_modules(record)
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
        precision = training_precision(record, backward=True)
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
        forward = amp.nonfinite_in == "forward" or all(kind == "forward" for kind in amp.kinds[-PERSIST:])
        cause = ("the forward overflows, which no loss scale reaches" if forward else
                 "the gradients overflow at every scale tried")
        falling = f", the scale falling from {amp.init_scale:g} to {amp.final_scale:g}" if amp.scaler else ""
        name = amp.first_nonfinite or next((l.name for l in half_modules(record) if l.out_max and l.out_max > FP16_MAX), None)
        yield self.finding(
            f"{run} training collapses: the last {trailing_skips(len(amp.scales), amp.skipped)} of {steps} steps were skipped{falling}: "
            f"{cause}{where}", module=name, evidence=_measured(amp),
            fix=("Train in bf16 (torch.autocast(device_type, dtype=torch.bfloat16)), keep "
                 f"{name or 'the overflowing module'} in fp32 (torch.autocast(device_type, enabled=False) around it), "
                 "or clamp or rescale its output." if amp.dtype == "fp16" else
                 f"Keep {name or 'the overflowing module'} in fp32, or clamp or rescale its output."))

