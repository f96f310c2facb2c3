"""The output and the loss do not fit: probabilities into a loss that expects logits (GH107), a
regression target that broadcasts against the output (GH108).  Both read what ``loss_fn`` called on
the first probe batch (probe/losses.py); the default loss is the probe's own and is never judged."""
from __future__ import annotations

import dataclasses
import math
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import LossCall, ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.signals import fmt, last_weight_layer

# What each loss expects, and the call that gives it that (GH107's advice).
_EXPECTS = {
    "cross_entropy": ("unnormalised logits: it applies log_softmax itself", "cross-entropy on the logits",
                      "return the logits (drop the final softmax) and keep the cross-entropy loss; take "
                      "softmax only for predictions"),
    "nll_loss": ("log-probabilities: it returns -input[target], so on probabilities the loss is -p(target), "
                 "whose gradient vanishes as p(target) -> 0", "nll_loss on log_softmax(logits)",
                 "feed NLLLoss log_softmax(logits, dim=1) instead of softmax (or return logits and use "
                 "nn.CrossEntropyLoss)"),
    "binary_cross_entropy_with_logits": ("logits: it applies the sigmoid itself", "BCEWithLogits on the logits",
                                         "return the logits (drop the final sigmoid) and keep BCEWithLogitsLoss; "
                                         "or keep the sigmoid and use nn.BCELoss"),
}
_SHAPES = {"cross_entropy": "F.cross_entropy / nn.CrossEntropyLoss", "nll_loss": "F.nll_loss / nn.NLLLoss",
           "binary_cross_entropy_with_logits": "F.binary_cross_entropy_with_logits / nn.BCEWithLogitsLoss"}


def head(record: ProbeRecord) -> Optional[str]:
    """Where a loss finding with no named producer points: the model's last weight layer."""
    layer = last_weight_layer(record)
    return layer.name if layer is not None else None


def _calls(record: ProbeRecord, functions) -> list[LossCall]:
    return [c for c in record.loss_calls if c.function in functions] if record.loss == "loss_fn" else []


def _loss_fn_record(*calls: LossCall, loss: str = "loss_fn") -> ProbeRecord:
    """An example record: a small MLP trained under the file's loss_fn, which made ``calls``."""
    return dataclasses.replace(examples.record(layers=examples.mlp(depth=2).layers, loss_calls=calls), loss=loss)


def _softmax_into_ce(shrink: Optional[float] = 0.1, function: str = "cross_entropy", loss: str = "loss_fn") -> ProbeRecord:
    call = LossCall(function, (32, 10), (32,), squashed_by="softmax", producer="head.1", in_model=True, shrink=shrink)
    return _loss_fn_record(call, loss=loss)


class ProbabilitiesIntoLogitLoss(RuntimeRule):
    """Probabilities (a softmax or sigmoid output) are fed to a loss that expects logits.

    What it does: watches the loss functions ``loss_fn`` calls on the first probe batch (modules
    and functions alike: ``nn.CrossEntropyLoss`` calls ``F.cross_entropy``).  It reports a
    ``cross_entropy`` or ``binary_cross_entropy_with_logits`` call whose input comes out of a
    softmax or sigmoid (``nn.Softmax``, ``F.softmax``, ``x.softmax()``, ``torch.sigmoid``, in the
    model's last layer or in ``loss_fn``, seen in the autograd graph through reshapes and indexing,
    or as values that are non-negative and sum to 1 over the class axis), and an ``nll_loss`` call
    on such probabilities instead of log-probabilities.  It measures how much smaller the gradient
    at the logits is than under the loss the function expects, by autograd on the same batch:
    the shrink in the message.  Warning; error when the gradient shrinks 10x or more (an order of
    magnitude: about what a softmax before cross-entropy costs with 10 or more classes).  ``sigmoid`` + ``nn.BCELoss`` and ``log_softmax`` + ``nn.NLLLoss`` are correct
    pairs and are not reported.

    Why it matters: cross-entropy applies log_softmax to its input, so a softmax before it squashes
    twice.  Its input then lies in [0, 1], softmax of that is nearly uniform, and the gradient at
    the logits is the softmax Jacobian diag(p) - p p^T times a nearly constant vector: at
    initialisation, with p near uniform over C classes, it is about 1/C of the gradient of
    cross-entropy on the logits (p - y), and it vanishes again wherever the softmax saturates.
    The loss cannot fall below log(1 + (C - 1)/e) (the logit gap is at most 1), so it stalls
    high even when the predictions are right.  ``nll_loss`` expects log-probabilities; on
    probabilities it computes -p(target), whose gradient p(target) (e_y - p) vanishes for exactly
    the examples that are wrong.  A sigmoid before ``BCEWithLogits`` gives sigmoid(p) in
    [0.5, 0.73]: the model can never predict below 0.5, and the gradient is scaled by
    p (1 - p) <= 1/4.

    Example: ``self.out = nn.Sequential(nn.Linear(128, 10), nn.Softmax(dim=1))`` trained with
    ``nn.CrossEntropyLoss()``; ``F.nll_loss(F.softmax(logits, 1), y)``.

    Fix: return the logits and let the loss apply the (log-)softmax; use softmax only to read
    predictions.  For NLLLoss, use ``log_softmax``.
    """

    CODE = "GH107"
    NAME = "probabilities-into-logit-loss"
    SEVERITY = Severity.WARNING
    ERROR_SHRINK = 10.0
    GOOD = (_loss_fn_record(),
            # the default loss is the probe's own: nothing of the file's to judge
            _softmax_into_ce(loss="default: cross-entropy of logits"))
    BAD = (_softmax_into_ce(shrink=0.5), _softmax_into_ce(shrink=0.001), _softmax_into_ce(shrink=None, function="nll_loss"))

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for call in _calls(record, _EXPECTS):
            if call.squashed_by is None:
                continue
            expects, baseline, fix = _EXPECTS[call.function]
            made = f"a {call.squashed_by}" + (f" (at {call.producer})" if call.producer else "")
            where = (f"its input is the model's output, made by {made}" if call.in_model
                     else f"its input comes out of {made} applied in loss_fn" if call.in_model is False
                     else "its input is non-negative and sums to 1 over the class axis")
            factor = 1.0 / call.shrink if call.shrink else None
            severity = Severity.ERROR if factor and factor >= self.ERROR_SHRINK else Severity.WARNING
            measured = (f"; the gradient at the logits is {fmt(factor)}x smaller than with {baseline} "
                        "(measured on the first probe batch)" if factor else "")
            floor = ""
            if call.function == "cross_entropy" and call.squashed_by == "softmax" and len(call.input_shape) >= 2:
                classes = call.input_shape[1]
                floor = (f"; the loss cannot fall below log(1 + {classes - 1}/e) = "
                         f"{math.log(1 + (classes - 1) / math.e):.3g} (chance: {math.log(classes):.3g})")
            yield self.finding(
                f"loss_fn feeds {_SHAPES[call.function]} probabilities: {where}, but it expects "
                f"{expects}{measured}{floor}",
                module=call.producer or head(record), severity=severity,
                evidence={"function": call.function, "squashed_by": call.squashed_by, "producer": call.producer,
                          "in_model": call.in_model, "input_shape": list(call.input_shape),
                          "gradient_shrink": factor},
                fix=fix[:1].upper() + fix[1:] + ".")


class BroadcastLossTarget(RuntimeRule):
    """A regression loss compares the output with a target of another shape that broadcasts.

    What it does: watches ``mse_loss``, ``l1_loss``, ``smooth_l1_loss`` and ``huber_loss`` (and
    the ``nn`` modules that call them) in ``loss_fn`` on the first probe batch, and reports a
    call whose input and target shapes broadcast to a shape larger than either, e.g. an output
    of shape (N, 1) against a target of shape (N,), which broadcast to (N, N).  Error: it is
    never what the author meant.

    Why it matters: the loss becomes the average over all N x N pairs (output i, target j), so
    every output is pulled toward the mean of all the batch's targets, not its own: the
    gradient of (1/N^2) sum_ij (y_i - t_j)^2 at y_i is (2/N)(y_i - mean(t)).  The model learns
    to predict the mean and its loss plateaus at the targets' variance.  PyTorch only warns
    ("Using a target size that is different to the input size"), once, among other output.

    Example: ``self.head = nn.Linear(64, 1)`` with ``F.mse_loss(model(x), y)`` where ``y`` has
    shape (N,).

    Fix: make the shapes equal: ``F.mse_loss(output.squeeze(-1), y)`` or
    ``F.mse_loss(output, y.view_as(output))``.
    """

    CODE = "GH108"
    NAME = "broadcast-loss-target"
    SEVERITY = Severity.ERROR
    _FUNCTIONS = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
    GOOD = (_loss_fn_record(), _loss_fn_record(LossCall("cross_entropy", (32, 10), (32,))),
            _loss_fn_record(LossCall("mse_loss", (32, 1), (32,), broadcast=(32, 32)), loss="default: mean-squared error"))
    BAD = (_loss_fn_record(LossCall("mse_loss", (32, 1), (32,), broadcast=(32, 32))),)

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for call in _calls(record, self._FUNCTIONS):
            if not call.broadcast:
                continue
            shape = lambda s: "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"
            n = call.input_shape[0] if call.input_shape else 1
            yield self.finding(
                f"loss_fn's F.{call.function} compares the output {shape(call.input_shape)} with a target "
                f"{shape(call.target_shape)}: they broadcast to {shape(call.broadcast)}, so the loss averages "
                f"every output against every target and each output is pulled toward the mean of the {n} "
                "targets, not its own: the model can only learn the mean",
                module=head(record),
                evidence={"function": call.function, "input_shape": list(call.input_shape),
                          "target_shape": list(call.target_shape), "broadcast": list(call.broadcast)},
                fix="Give output and target the same shape: output.squeeze(-1) against a (N,) target, or "
                    "target.view_as(output).")
