"""Parameters that cannot learn well: no gradient (GH112), init that does not fit (GH120)."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ParamStats, ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.signals import EXPECTED_GAIN2, drift_direction, fmt, init_call, init_mismatches, last_weight_layer


def behind_zero_gamma(record: ProbeRecord) -> set[str]:
    """Layers of residual branches whose sum's normalisation starts at γ = 0 (torchvision's
    ``zero_init_residual``): their gradient is exactly zero until the first step moves γ, by design.
    A branch is taken as the layers run since the previous residual sum's normalisation."""
    norms = {p.name: p.norm for p in record.parameters}
    explained: set[str] = set()
    start = 0
    for index, layer in enumerate(record.layers):
        if layer.residual_sum is None:
            continue
        if norms.get(f"{layer.name}.weight") == 0.0:
            explained.update(l.name for l in record.layers[start:index + 1])
        start = index + 1
    return explained


def zero_head(record: ProbeRecord) -> Optional[str]:
    """The model's last weight layer when it starts with a zero weight and gets a gradient itself
    (torchvision's ViT zero-initialises ``heads.head``): every parameter before it gets an exactly
    zero gradient until the first step moves it, by design."""
    head = last_weight_layer(record)
    weight = next((p for p in record.parameters if head is not None and p.name == f"{head.name}.weight"), None)
    return head.name if weight is not None and weight.norm == 0.0 and any(weight.grad_norms) else None


class GradientFreeParameters(RuntimeRule):
    """A trainable parameter gets no gradient: None, or exactly zero on every probe batch.

    What it does: after each probe backward pass, reads every parameter with
    ``requires_grad=True``; reports, per module, parameters whose gradient was None on all
    batches, or exactly zero on all batches.  For a None gradient it tells the cases apart by
    what the first probe forward's ops did (``probe/functional.py``): a parameter whose gradient
    the forward *cut* (an op took it under ``torch.no_grad()``, through ``.data`` or
    ``.detach()``, or its module's output was detached or turned into numpy) is a warning.  One
    the forward never took is unused in this mode, and one whose module ran but whose output
    never reaches the loss (a pooler the task head skips) does not serve this loss; both are
    often by design (an optional head, a mask token or segment embedding used only with other
    inputs): information.

    Why it matters: the optimizer will never move these weights (weight decay aside, which
    only shrinks them).  A gradient that is cut off is almost always a bug: the layer runs, its
    output matters, yet it never learns.  Exactly zero means the path exists but is blocked:
    dead units after it, a multiplication by a zero-initialised weight (then it can be
    transient: deliberate zero-init of a residual branch's last layer unblocks after one step,
    so the layers of a branch whose last normalisation starts at γ = 0 are not reported, nor
    the layers before a zero-initialised classifier head that gets a gradient, as torchvision's
    ViT has), or an integer cast.

    Example: ``h + self.aux(h).detach()`` in forward (warning); ``self.unused = nn.Linear(8, 8)``
    defined in ``__init__`` and never called (information).

    Fix: if it should learn, remove the detach / ``.data`` / ``no_grad`` on its path; if it is
    not meant to train in this mode, freeze it (``requires_grad_(False)``) or remove it.
    """

    CODE = "GH112"
    NAME = "gradient-free-parameters"
    SEVERITY = Severity.WARNING
    GOOD = (examples.mlp(),)
    BAD = (examples.with_params(examples.mlp(), ParamStats("aux.weight", "aux", (8, 8), 1.0, None, use="cut")),
           examples.with_params(examples.mlp(), ParamStats("unused.weight", "unused", (8, 8), 1.0, None, use="unused")))

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        if any(p.grad_nonfinite for p in record.parameters):
            return
        by_module: dict[str, list[ParamStats]] = defaultdict(list)
        by_design = behind_zero_gamma(record)
        head = zero_head(record)
        for p in record.parameters:
            transient = p.module in by_design or (head is not None and p.module != head)
            if p.requires_grad and (p.grad_norm is None or (not any(p.grad_norms) and not transient)):
                by_module[p.module].append(p)
        for module, params in by_module.items():
            none = all(p.grad_norm is None for p in params)
            names = ", ".join(p.name for p in params)
            uses = {p.use for p in params}
            cut = none and bool(uses & {"cut", None})  # not recorded: the cautious reading
            if cut:
                what, severity = ("are used by the forward but receive no gradient: their path to the loss is "
                                  "cut (.detach(), .data, torch.no_grad() or a numpy round trip)"), Severity.WARNING
                fix = ("If they should learn, remove the detach / .data / no_grad on their path; if not, freeze "
                       "them with requires_grad_(False).")
            elif none:
                what = ("are used by the forward, but nothing they compute reaches the loss" if "used" in uses
                        else "are not used by this forward, so they receive no gradient")
                severity = Severity.INFO
                fix = (f"Nothing to do if {module or 'the parameter'} serves another mode or input (an optional "
                       "head, a mask token); otherwise remove it or freeze it with requires_grad_(False).")
            else:
                what, severity = "receive an exactly zero gradient on every probe batch", Severity.INFO
                fix = ("The path from these parameters to the loss is blocked: look for dead units after them "
                       "(GH110), a zero-initialised layer after them, or an integer cast.")
            yield self.finding(
                f"{names} {what}", module=module or None,
                evidence={"parameters": [p.name for p in params],
                          "gradient": "zero" if not none else "cut" if cut else "unused",
                          "use": sorted(u or "unknown" for u in uses)},
                fix=fix, severity=severity)


class InitScaleMismatch(RuntimeRule):
    """A layer's weight scale vs fan-in does not fit the activation that follows, and the signal drifts.

    What it does: for every weight layer it reads ``gain2 = var(W) * fan_in`` and the
    activation module that follows it, and compares with what keeps the signal's scale:
    2 for the ReLU family (He et al. 2015), 1 for tanh/SELU/linear (LeCun et al. 1998;
    Glorot & Bengio 2010).  It fires only when the probe measured a drift of two orders of
    magnitude across depth (forward or backward) and the layers' init is off by more than
    1.5x in that direction, so a shallow network that trains fine with any init is left
    alone.  Sigmoid layers are not reported: no init fixes a slope of 1/4.  Embeddings are
    not weight layers here (their input is one-hot).  Nor are layers whose output is
    normalised (a BatchNorm/LayerNorm/GroupNorm/RMSNorm follows before any activation): the
    norm divides their scale away, so any init scale is valid there, He fan-out before
    BatchNorm included (van Laarhoven 2017).  Nor are layers that only feed a sigmoid gate
    (squeeze-excitation).  And since a normalisation resets the scale, mismatches compound
    only between two of them: a segment whose mismatches move the signal by less than 10x
    (a post-LN feed-forward layer at std 0.02) is not reported.

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
            examples.mlp(depth=12, activation="Sigmoid", backward_gain=0.2, init="default"),
            # the same N(0, 1) weights, each followed by a normalisation layer: scale-invariant
            examples.normalised(examples.mlp(forward_gain=1.0, backward_gain=5.7, init="normal1")),
            # a Glorot layer before ReLU loses sqrt(2): over 3 layers less than 10x, whatever the drift
            examples.mlp(depth=3, forward_gain=0.01, init="xavier"))
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
