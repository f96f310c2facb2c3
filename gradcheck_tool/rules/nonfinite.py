"""NaN and Inf: GH103 (gradients) and GH104 (activations)."""
from __future__ import annotations

from typing import Iterator

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule


class NonFiniteActivations(RuntimeRule):
    """A forward output contains NaN or Inf; names the first module, in forward order, that made it.

    What it does: checks every module's output on every probe batch (its L2 norm is finite
    exactly when all its elements are, and their squares sum below float32's 3.4e38) and
    reports the earliest module in execution order whose output is not finite.  Later
    modules only propagate it.

    Why it matters: one NaN poisons the loss, every gradient and, after one optimizer step,
    every weight.  The first module that produces it is where the bug is: a log or sqrt of
    a non-positive value, a division by a zero norm, an exp that overflows, or activations
    that have grown past the dtype's range.

    Example: ``torch.log(x)`` on a pre-activation that can be negative.

    Fix: guard the operation (``x.clamp_min(eps)``, ``torch.log1p``, ``F.normalize(eps=...)``,
    a numerically stable ``logsumexp``) or fix the growth that overflows.
    """

    CODE = "GH104"
    NAME = "non-finite-activations"
    SEVERITY = Severity.ERROR
    GOOD = (examples.mlp(),)
    BAD = (examples.mlp(nonfinite_from=5),)

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        first = next((layer for layer in record.layers if layer.out_nonfinite), None)
        if first is None:
            return
        before = [layer for layer in record.layers if layer.order < first.order and layer.out_rms is not None]
        previous = before[-1] if before else None
        yield self.finding(
            f"{first.name} ({first.type}) outputs NaN/Inf"
            + (f"; its input came from {previous.name} with RMS {previous.out_rms:.3g}" if previous else ""),
            module=first.name,
            evidence={"module": first.name, "type": first.type, "forward_position": first.order,
                      "previous_module": previous.name if previous else None,
                      "previous_rms": previous.out_rms if previous else None},
            fix=(f"Find the operation in {first.name} that leaves the finite range (log/sqrt of a "
                 "non-positive value, division by zero, exp overflow) and guard it, e.g. "
                 "x.clamp_min(1e-6) before log/sqrt or an eps in the denominator."),
        )


class NonFiniteGradients(RuntimeRule):
    """A gradient contains NaN or Inf although the forward pass is finite.

    What it does: checks the gradient arriving at every module's output and every
    parameter's gradient, finds the first output gradient (in backward order) that is not
    finite, and names the module whose backward produced it: the one that consumed that output.  Stays silent when GH104 already reports a non-finite
    forward output, which makes every later gradient non-finite too.

    Why it matters: a finite forward with a non-finite backward comes from operations whose
    derivative is infinite where the value is not: sqrt at 0, norm of a zero vector,
    acos/asin at +-1, pow with a fractional exponent at 0.  One such step destroys the
    weights.

    Example: ``x.norm(dim=-1)`` on a row of zeros: the value is 0, the gradient NaN.

    Fix: add an epsilon inside the operation (``torch.sqrt(x + 1e-12)``,
    ``F.normalize(x, eps=1e-6)``) or clamp its input away from the singular point.
    """

    CODE = "GH103"
    NAME = "non-finite-gradients"
    SEVERITY = Severity.ERROR
    GOOD = (examples.mlp(), examples.mlp(nonfinite_from=5))
    BAD = (examples.mlp(grad_nonfinite_from=6),)

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        if any(layer.out_nonfinite for layer in record.layers):
            return
        bad = [layer for layer in record.layers if layer.grad_nonfinite]
        if bad:
            # The first output gradient to go bad (backward order) was made by the backward of
            # the module that consumed that output: the next module in forward order still clean.
            receiver = min(bad, key=lambda l: l.backward_order if l.backward_order is not None else 1 << 30)
            clean_after = [l for l in record.layers if l.order > receiver.order and l.grad_norm is not None]
            culprit = clean_after[0] if clean_after else receiver
            where = culprit.name
            evidence = {"module": culprit.name, "type": culprit.type, "first_nonfinite_output_grad": receiver.name,
                        "layers_affected": len(bad)}
        else:
            params = [p for p in record.parameters if p.grad_nonfinite]
            if not params:
                return
            where, evidence = params[-1].module, {"parameters": [p.name for p in params]}
        yield self.finding(
            f"the backward pass of {where} produces NaN/Inf gradients although the forward pass is finite",
            module=where,
            evidence=evidence,
            fix=(f"Look in {where}'s forward for an operation with an infinite derivative at a finite "
                 "value (sqrt or norm at 0, pow with fractional exponent at 0, acos at +-1) and add an "
                 "epsilon inside it."),
        )
