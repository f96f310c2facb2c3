"""The backward signal across depth: GH101, GH102 (the forward signal: rules/activations.py)."""
from __future__ import annotations

import dataclasses
import math
from statistics import median
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import LayerStats, ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.normalised import (
    RESIDUAL_BN_FIX, live_residual_bn, normalised_severity, scale_invariant, unstable_steps,
)
from gradcheck_tool.rules.signals import (
    ERROR_DECADES, WARN_DECADES, Trend, backward_trend, clip_advice, fmt, forward_trend, init_call, init_mismatches,
    product, product_trend, weight_layers,
)

_STRUCTURAL = (
    "If the stack is deep, put a normalisation layer (nn.LayerNorm / nn.BatchNorm) before each "
    "activation, or make the blocks residual (x = x + block(x))."
)


def _severity(decades: float) -> Severity:
    return Severity.ERROR if abs(decades) >= ERROR_DECADES else Severity.WARNING


def _next_layer(record: ProbeRecord, name: str) -> Optional[LayerStats]:
    """The first layer after ``name`` in execution order that is not dropout, an identity, or
    the container that returns its output (a module owning parameters directly)."""
    found = False
    for layer in record.layers:
        if found and layer.type not in ("Dropout", "Identity") and not name.startswith(layer.name + "."):
            return layer
        found = found or layer.name == name
    return None


def _nonfinite(record: ProbeRecord) -> bool:
    return any(layer.out_nonfinite or layer.grad_nonfinite for layer in record.layers)


def _fix(record: ProbeRecord, trend: Trend, direction: int) -> str:
    """The init call for the layers whose init does not fit their activation, else structural advice.

    A clipping threshold measured on a mis-initialised model is meaningless, so clipping is
    only advised when the init is not the cause.
    """
    groups = init_mismatches(record, direction)
    if groups:
        advice = []
        for (_, act), layers in groups.items():
            span = layers[0].name if len(layers) == 1 else f"{layers[0].name} ... {layers[-1].name}"
            advice.append(f"initialise {span} (now {layers[0].weight_init.scheme}) for {act}: "
                          f"{init_call(act, 'm.weight')}; nn.init.zeros_(m.bias)")
        text = "; ".join(advice)
        return text[0].upper() + text[1:] + ". " + _STRUCTURAL
    activations = {layer.next_activation for layer in weight_layers(record, trend.layers)} - {None}
    if activations and activations <= {"sigmoid", "tanh"}:
        return ("Sigmoid/tanh slopes are at most 1/4 and 1, so stacked saturating layers lose signal whatever "
                "the init: use ReLU/GELU with " + init_call("relu") + ", or normalisation or residual "
                "connections between them.")
    return _STRUCTURAL + (clip_advice(record) if direction > 0 else "")


def _per_layer(record: ProbeRecord, trend: Trend, sign: int) -> str:
    return f"{fmt(10 ** (sign * trend.per_layer(len(weight_layers(record, trend.layers)))))}x per weight layer"


def _anchor(record: ProbeRecord, trend: Trend) -> str:
    """Findings point at the first weight layer of the chain: where an init fix goes."""
    weights = weight_layers(record, trend.layers)
    return weights[0].name if weights else trend.first


def _evidence(trend: Trend, record: ProbeRecord) -> dict:
    return {
        "decades_per_weight_layer": round(trend.per_layer(len(weight_layers(record, trend.layers))), 4),
        "total_decades": round(trend.total, 3),
        "chain_length": len(trend.layers),
        "first_layer": trend.first,
        "last_layer": trend.last,
        "first_value": trend.fitted[0],
        "last_value": trend.fitted[1],
        "output_grad_norm": record.output_grad_norm,
    }


def drift_decades(record: ProbeRecord) -> float:
    """How far the forward or backward signal drifts across depth, in decades (0: flat)."""
    totals = [abs(t.total) for t in (forward_trend(record), backward_trend(record)) if t is not None]
    return max(totals) if totals else 0.0


class _DepthRule(RuntimeRule):
    """Shared by the four depth rules: one finding per drifting chain, at its first weight layer."""

    METRIC = "drift across depth (decades)"

    @classmethod
    def measure(cls, record: ProbeRecord, module: Optional[str]) -> Optional[float]:
        return drift_decades(record)

    def _drift(self, record: ProbeRecord, trend: Trend, message: str, direction: int) -> Finding:
        return self.finding(message, module=_anchor(record, trend), evidence=_evidence(trend, record),
                            fix=_fix(record, trend, direction), severity=_severity(trend.total))


class ExplodingGradients(_DepthRule):
    """The backward signal grows from the output toward the input.

    What it does: measures ||d loss / d output|| of every layer and fits its per-layer
    growth in log space over each stack of the model's structure (Theil-Sen, robust to
    single outliers and to the repeating pattern of transformer blocks; see
    ``rules/signals.py``).  Fires when the gradient grows by two orders of magnitude or
    more across a stack (error from four).  Also fires when some layer's output gradient
    exceeds the gradient at the model output by three orders of magnitude *and* its
    gradient x activation norm exceeds the median layer's by as much, and it is a jump:
    100x the median gradient of the 8 layers after it (a growth spread over many residual
    blocks reaches the stem as large as the layers next to it: a trend): a layer whose
    activations are small by design (RWKV's tiny embeddings feeding a LayerNorm) has a
    large gradient in proportion, and its weights' relative step is ordinary.  When a
    normalisation layer follows the peak it is named: LayerNorm of a (nearly) constant row,
    e.g. a zero-initialised class token (transformers' DeiT), has a gain of 1/sqrt(eps).

    Residual BatchNorm nets: BatchNorm makes the weights before it scale-invariant, so
    what they learn depends on their gradient relative to their norm (the effective
    learning rate, van Laarhoven 2017; Arora et al. 2019).  With each residual branch's
    last BatchNorm at γ = 1 (PyTorch's default) every block adds a unit-variance signal to
    the stream, and the gradient toward the stem grows with depth (ResNet-50: ~100-270x).
    The field trains these nets every day from that init, with a warmup or with the last
    γ of each branch at zero (Goyal et al. 2017; torchvision's ``zero_init_residual``), so
    without more evidence this is information with that remedy; it is a warning when the
    file's own optimizer, run for a few steps at its lr, diverges (GH140).  A plain
    BatchNorm stack without residual connections is not absolved: its gradients explode
    at init by ~1.21x per layer whatever the weights' scale (Yang et al. 2019, a mean
    field theory of batch normalization).  Normalised weights tune their own rate (a large
    gradient grows ||W||, which lowers lr / ||W||^2: Arora et al. 2019), so in a stack whose
    weights are mostly normalised the verdict is one level lower: information below four
    decades (MobileNetV1's 27 layers: ~2.5), a warning from four (64 Conv-BN-ReLU layers:
    ``fixtures/exploding_bn_stack.py``), an error from six.

    Why it matters: every layer multiplies the backward signal by its Jacobian gain.
    A gain above 1 compounds geometrically (Bengio et al. 1994; Pascanu et al. 2013):
    early layers take steps orders of magnitude larger than late ones, and training
    diverges or needs a learning rate so small that the rest stalls.  The ratio of
    first- to last-layer *weight* gradients can look ordinary while this happens,
    because growing gradients meet shrinking (or growing) activations: the signal
    itself is what the rule reads.

    Example: a ReLU MLP whose weights are drawn from N(0, 1): each 64-wide layer
    multiplies the gradient by sqrt(64/2) = 5.7.

    Fix: initialise for the activation (He/Kaiming for ReLU, Glorot/LeCun for tanh),
    add normalisation or residual connections, and clip the global gradient norm.
    """

    CODE = "GH101"
    NAME = "exploding-gradients"
    SEVERITY = Severity.ERROR
    GOOD = (examples.mlp(forward_gain=1.0, backward_gain=1.0), examples.mlp(depth=2, backward_gain=4.0),
            examples.residual_bn(backward_gain=1.05, zero_gamma=True))
    BAD = (examples.mlp(forward_gain=5.7, backward_gain=5.7), examples.mlp(depth=8, backward_gain=2.0),
           examples.residual_bn(), examples.residual_bn(losses=(2.3, 40.0, math.inf)))

    PEAK_DECADES = 3.0
    # A peak is a jump: 100x the median gradient of the next 8 layers (DeiT: ~1e4x, the LayerNorm
    # right after it).  A growth spread over many blocks (ResNet-152's residual BatchNorm stream,
    # 3.5 decades over 50 blocks) reaches the stem as large as the layers just after it.
    LOCAL_DECADES = 2.0
    LOCAL_WINDOW = 8

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        if _nonfinite(record):
            return
        trend = backward_trend(record, -1)
        peak = self._peak(record)
        if trend is not None and -trend.total >= WARN_DECADES:
            message = (f"gradients grow {_per_layer(record, trend, -1)} toward the input: "
                       f"{fmt(10 ** -trend.total)}x from {trend.last} back to {trend.first}")
            branches = live_residual_bn(record, trend)
            if not branches:
                finding = self._drift(record, trend, message, 1)
                if scale_invariant(record, trend):
                    finding = dataclasses.replace(finding, severity=normalised_severity(trend.total))
                yield finding
                return
            # A residual BatchNorm net at its library's init: the growth is real, but the field
            # trains these nets every day; only the file's own steps can show it hurts.
            unstable = unstable_steps(record)
            yield self.finding(
                message + f", through {len(branches)} residual branches whose last BatchNorm starts at γ = 1"
                + (" (and the file's optimizer diverged in its first steps: GH140)" if unstable else ""),
                module=_anchor(record, trend),
                evidence=dict(_evidence(trend, record), residual_bn_branches=branches, unstable_steps=unstable),
                fix=RESIDUAL_BN_FIX, severity=Severity.WARNING if unstable else Severity.INFO)
        elif peak is not None:
            name, ratio = peak
            after = _next_layer(record, name)
            norm = after is not None and after.normalisation is not None
            yield self.finding(
                f"the gradient at {name}'s output is {fmt(ratio)}x the gradient at the model output"
                + (f": {after.name} ({after.type}), which normalises it, divides each row by its standard "
                   "deviation, so rows with (near) zero variance get a huge gain" if norm else ""),
                module=name,
                evidence={"layer": name, "ratio_to_output_grad": ratio, "output_grad_norm": record.output_grad_norm,
                          "normalised_by": after.name if norm else None},
                fix=("Rows of its output that are (nearly) constant, e.g. a token or embedding initialised to "
                     "zeros, meet the normalisation's 1/sqrt(var + eps): 1e6 at eps=1e-12. Initialise such "
                     "embeddings with a small random normal (nn.init.trunc_normal_(p, std=0.02)) or raise eps."
                     if norm else "Check the scale of the layers after " + name + " (init, a missing normalisation).")
                + clip_advice(record),
            )

    def _peak(self, record: ProbeRecord) -> Optional[tuple[str, float]]:
        """The layer whose output gradient is 1000x the model output's, when its ||gradient|| x
        ||activation|| is also 1000x the median layer's: a layer whose activations are tiny by
        design (RWKV's embeddings feeding a LayerNorm, a collapsed signal) has a large gradient
        in proportion, and that product, which a rescaling cannot move, stays ordinary.  And only
        when it is a jump over the layers right after it (LOCAL_DECADES)."""
        ref = record.output_grad_norm
        if not ref:
            return None
        worst = max((layer for layer in record.layers if layer.grad_norm), key=lambda l: l.grad_norm, default=None)
        if worst is None or worst.grad_norm / ref < 10**self.PEAK_DECADES:
            return None
        products = {layer.name: product(layer) for layer in record.layers if product(layer) is not None}
        typical = median(products.values()) if products else None
        if worst.name in products and typical and products[worst.name] < 10**self.PEAK_DECADES * typical:
            return None
        after = [layer.grad_norm for layer in record.layers if layer.order > worst.order and layer.grad_norm]
        if after and worst.grad_norm < 10**self.LOCAL_DECADES * median(after[:self.LOCAL_WINDOW]):
            return None  # no jump: a growth spread over the layers after it, a trend's story
        return worst.name, worst.grad_norm / ref


class VanishingGradients(_DepthRule):
    """The backward signal shrinks from the output toward the input.

    What it does: the same per-stack fit of ||d loss / d output|| as GH101; fires when the
    gradient reaching the first layers of a stack is two or more orders of magnitude below
    what its last layers get (error from four), and the product ||gradient|| x
    ||activation|| shrinks by at least one order of magnitude too.  In a positively
    homogeneous network (ReLU, no normalisation) ``<dL/dz, z>`` is the same at every layer,
    so a uniform rescaling of the weights (AlexNet at PyTorch's default init) shrinks the
    activations toward the output exactly as it grows the gradients: each layer's relative
    step is unchanged, nothing vanishes, and the product stays flat.  The activations'
    collapse, where it is large, is GH106's finding.  An encoder fed only through
    cross-attention is its own stack: the step between encoder and decoder is no trend.

    Why it matters: early layers then learn orders of magnitude more slowly than late
    ones (Hochreiter 1991; Glorot & Bengio 2010).  Sigmoid's slope is at most 1/4, so a
    stack of sigmoid layers loses at least a factor 4 per layer whatever its init; ReLU
    layers initialised below He scale lose sqrt(2) or more per layer.

    Example: ten Linear+Sigmoid layers at PyTorch's default init: the gradient at the
    first layer is ~1e-9 of the gradient at the output.

    Fix: ReLU-family activations with He init, normalisation layers, or residual
    connections; for saturating activations, the init alone cannot fix it.
    """

    CODE = "GH102"
    NAME = "vanishing-gradients"
    SEVERITY = Severity.ERROR
    GOOD = (examples.mlp(), examples.mlp(depth=3, backward_gain=0.3))
    BAD = (examples.mlp(activation="Sigmoid", backward_gain=0.2), examples.mlp(depth=12, backward_gain=0.6))

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        if _nonfinite(record):
            return
        trend = backward_trend(record, 1)
        if trend is None or trend.total < WARN_DECADES:
            return
        product = product_trend(record, trend.layers)
        if product is not None and product.total < WARN_DECADES / 2:
            return  # activations grow toward the input as gradients shrink: a uniform rescaling
        yield self._drift(
            record, trend,
            f"gradients shrink {_per_layer(record, trend, -1)} toward the input: "
            f"{trend.first} gets {fmt(10 ** -trend.total)}x the gradient of {trend.last}",
            -1,
        )
