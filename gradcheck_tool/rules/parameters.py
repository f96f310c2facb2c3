"""Parameters that cannot learn well: no gradient (GH112), init that does not fit (GH120)."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ParamStats, ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.signals import EXPECTED_GAIN2, drift_direction, fmt, init_call, init_mismatches


class GradientFreeParameters(RuntimeRule):
    """A trainable parameter gets no gradient: None, or exactly zero on every probe batch.

    What it does: after each probe backward pass, reads every parameter with
    ``requires_grad=True``; reports, per module, parameters whose gradient was None on all
    batches (not used by the loss) or exactly zero on all batches.

    Why it matters: the optimizer will never move these weights (weight decay aside, which
    only shrinks them).  None means the module is not on the path from the inputs to the
    loss: an unused layer, a ``.detach()``, a branch the forward never takes.  Exactly zero
    means the path exists but is blocked: dead units after it, a multiplication by a
    zero-initialised weight (then it can be transient: deliberate zero-init of a residual
    branch's last layer unblocks after one step), or an integer cast.

    Example: ``self.unused = nn.Linear(8, 8)`` defined in ``__init__`` and never called.

    Fix: remove the module or freeze it (``requires_grad_(False)``); if it should learn,
    find the detach or the blocked path.
    """

    CODE = "GH112"
    NAME = "gradient-free-parameters"
    SEVERITY = Severity.WARNING
    GOOD = (examples.mlp(),)
    BAD = (examples.with_params(examples.mlp(), ParamStats("unused.weight", "unused", (8, 8), 1.0, None)),)

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        if any(p.grad_nonfinite for p in record.parameters):
            return
        by_module: dict[str, list[ParamStats]] = defaultdict(list)
        for p in record.parameters:
            if p.requires_grad and (p.grad_norm is None or not any(p.grad_norms)):
                by_module[p.module].append(p)
        for module, params in by_module.items():
            none = all(p.grad_norm is None for p in params)
            names = ", ".join(p.name for p in params)
            yield self.finding(
                f"{names} " + ("receive no gradient (not used by the loss)" if none
                               else "receive an exactly zero gradient on every probe batch"),
                module=module or None,
                evidence={"parameters": [p.name for p in params], "gradient": "none" if none else "zero"},
                fix=(f"Remove {module or 'the parameter'} or freeze it with requires_grad_(False); if it should "
                     "learn, check that forward uses it and that nothing detaches its output." if none else
                     "The path from these parameters to the loss is blocked: look for dead units after them "
                     "(GH110), a zero-initialised layer after them, or an integer cast."),
                severity=Severity.WARNING if none else Severity.INFO,
            )


class InitScaleMismatch(RuntimeRule):
    """A layer's weight scale vs fan-in does not fit the activation that follows, and the signal drifts.

    What it does: for every weight layer it reads ``gain2 = var(W) * fan_in`` and the
    activation module that follows it, and compares with what keeps the signal's scale:
    2 for the ReLU family (He et al. 2015), 1 for tanh/SELU/linear (LeCun et al. 1998;
    Glorot & Bengio 2010).  It fires only when the probe measured a drift of two orders of
    magnitude across depth (forward or backward) and the layers' init is off by more than
    1.5x in that direction, so a shallow network that trains fine with any init is left
    alone.  Sigmoid layers are not reported: no init fixes a slope of 1/4.  Embeddings are
    not weight layers here (their input is one-hot).

    Why it matters: a mismatch by a factor c per layer compounds to c^(depth/2) in the
    signal.  Glorot init before ReLU loses sqrt(2) per layer; N(0, 1) weights gain
    sqrt(fan_in / 2); PyTorch's default (1/3) loses sqrt(6) per ReLU layer.

    Example: a 20-layer ReLU MLP with ``nn.init.xavier_normal_``.

    Fix: the init that matches the activation, e.g.
    ``nn.init.kaiming_normal_(m.weight, nonlinearity="relu")`` for ReLU layers.
    """

    CODE = "GH120"
    NAME = "init-scale-mismatch"
    SEVERITY = Severity.WARNING
    METRIC = "drift across depth (decades)"  # what a better init moves

    @classmethod
    def measure(cls, record: ProbeRecord, module: Optional[str]) -> Optional[float]:
        from gradcheck_tool.rules.depth import drift_decades

        return drift_decades(record)
    GOOD = (examples.mlp(), examples.mlp(depth=3, init="xavier"),
            examples.mlp(depth=12, activation="Sigmoid", backward_gain=0.2, init="default"))
    BAD = (examples.mlp(depth=20, forward_gain=0.707, backward_gain=0.707, init="xavier"),
           examples.mlp(forward_gain=5.7, backward_gain=5.7, init="normal1"))

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        direction = drift_direction(record)
        if direction == 0:
            return
        groups = init_mismatches(record, direction)
        for (kind, act), layers in groups.items():
            expected = EXPECTED_GAIN2[act]
            first = layers[0]
            scheme = first.weight_init.scheme
            names = first.name if len(layers) == 1 else f"{len(layers)} {kind} layers ({first.name} ... {layers[-1].name})"
            yield self.finding(
                f"{names} use {scheme} (var(W)*fan_in = {fmt(first.weight_init.gain2)}) before {act}, "
                f"which needs {fmt(expected)}: the signal {'grows' if direction > 0 else 'shrinks'} "
                f"{fmt(math.sqrt(first.weight_init.gain2 / expected))}x per layer",
                module=first.name,
                evidence={"layers": [l.name for l in layers], "scheme": scheme, "gain2": first.weight_init.gain2,
                          "expected_gain2": expected, "activation": act, "fan_in": first.weight_init.fan_in},
                fix=f"Initialise each of them with {init_call(act, 'm.weight')} and nn.init.zeros_(m.bias).",
            )
