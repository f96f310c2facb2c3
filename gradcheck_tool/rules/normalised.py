"""What normalisation changes in the depth verdicts (GH101): residual BatchNorm branches that start
at γ = 1, and stacks of scale-invariant weights, whose effective learning rate tunes itself."""
from __future__ import annotations

from gradcheck_tool.findings import Severity
from gradcheck_tool.probe.record import ProbeRecord
from gradcheck_tool.rules.divergence import LossDivergence
from gradcheck_tool.rules.signals import ERROR_DECADES, WARN_DECADES, Trend, weight_layers


def live_residual_bn(record: ProbeRecord, trend: Trend) -> list[str]:
    """The last BatchNorm of each residual branch in the trend's stack whose sum has no
    zero-initialised γ: each such branch adds a unit-variance signal to the stream at init."""
    names = set(trend.layers)
    norms = {p.name: p.norm for p in record.parameters}
    sums: dict[int, list[str]] = {}
    for layer in record.layers:
        if layer.residual_sum is not None and layer.normalisation == "batch" and layer.name in names:
            sums.setdefault(layer.residual_sum, []).append(layer.name)
    return [members[-1] for members in sums.values()
            if all(norms.get(f"{name}.weight", 1.0) > 0 for name in members)]


# Weights followed by normalisation tune their own rate: a large gradient grows their norm,
# which lowers their effective learning rate lr / ||W||^2 (Arora et al. 2019), so a normalised
# stack tolerates a steeper gradient profile: one level lower below 4 decades (MobileNetV1,
# a plain depthwise BatchNorm stack the field trains daily: ~2.5), a warning from 4.
NORMALISED_SHIFT = 2.0


def scale_invariant(record: ProbeRecord, trend: Trend) -> bool:
    """Most weight layers of the trend's stack are followed by a normalisation layer."""
    weights = weight_layers(record, trend.layers)
    return bool(weights) and 2 * sum(layer.normalised for layer in weights) > len(weights)


def normalised_severity(decades: float) -> Severity:
    size = abs(decades) - NORMALISED_SHIFT
    return Severity.INFO if size < WARN_DECADES else Severity.ERROR if size >= ERROR_DECADES else Severity.WARNING


def unstable_steps(record: ProbeRecord) -> bool:
    """The file's own optimizer, run for a few steps, diverged (GH140's verdict)."""
    return any(True for _ in LossDivergence().check(record))


RESIDUAL_BN_FIX = (
    "This is how residual BatchNorm nets start when each branch's last BatchNorm has γ = 1: every "
    "branch adds a unit-variance signal to the residual stream, so the stream's scale, and the "
    "gradient it carries back, compound with depth, and large early steps at a high learning rate can "
    "destabilise it (Goyal et al. 2017). Zero-initialise the last BatchNorm γ of each residual branch "
    "(nn.init.zeros_(block.bn3.weight), torchvision's zero_init_residual=True) so every block starts "
    "as the identity, or warm the learning rate up over the first epochs."
)
