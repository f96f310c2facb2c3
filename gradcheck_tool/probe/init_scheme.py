"""Which initialisation scheme a weight tensor matches, judged from its values alone.

The statistic is ``gain2 = var(W) * fan_in``, the quantity the init papers fix:
1/3 for PyTorch's default ``kaiming_uniform_(a=sqrt(5))``, 1 for LeCun
(LeCun et al. 1998), 2 for He/Kaiming (He et al. 2015), ``2*fan_in/(fan_in+fan_out)``
for Glorot/Xavier (Glorot & Bengio 2010).  The distribution's shape (excess
kurtosis -1.2 for uniform, 0 for normal) separates the uniform and normal variants,
and an orthogonality check on a few rows recognises ``orthogonal_``.
"""
from __future__ import annotations

import math

import torch

from gradcheck_tool.probe.record import InitStats


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) as torch.nn.init computes them: [out, in, *kernel]."""
    if weight.dim() < 2:
        return int(weight.numel()), int(weight.numel())
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return int(weight.shape[1] * receptive), int(weight.shape[0] * receptive)


def _is_orthogonal(w2d: torch.Tensor) -> bool:
    rows, cols = w2d.shape
    m = w2d if rows <= cols else w2d.t()  # orthonormal rows of the wide orientation
    m = m[: min(64, m.shape[0])].double()
    gram = m @ m.t()
    diag = gram.diagonal()
    if diag.min() <= 0:
        return False
    off = gram - torch.diag(diag)
    return bool((diag.max() / diag.min() < 1.001) and (off.abs().max() < 1e-4 * diag.mean()))


def _schemes(fan_in: int, fan_out: int) -> list[tuple[str, float, str | None]]:
    """(name, expected gain2, required shape or None) in order of preference."""
    return [
        ("pytorch-default", 1 / 3, "uniform"),
        ("kaiming", 2.0, None),
        ("kaiming-fan-out", 2.0 * fan_in / fan_out, None),
        ("xavier", 2.0 * fan_in / (fan_in + fan_out), None),
        ("lecun", 1.0, None),
    ]


_SAMPLE = 2**20  # moments of larger tensors come from a strided sample (standard error ~1e-3)


def classify(weight: torch.Tensor) -> InitStats:
    flat = weight.detach().reshape(-1)
    w = flat[:: max(1, flat.numel() // _SAMPLE)].float()  # a view, then one copy of at most ~2M values
    fan_in, fan_out = fans(weight)
    n = w.numel()
    mean = w.mean()
    var = float(((w - mean) ** 2).mean())
    std = math.sqrt(var)
    gain2 = var * fan_in
    if var == 0.0:
        name = "zeros" if float(mean) == 0.0 else "constant"
        return InitStats(scheme=name, std=0.0, fan_in=fan_in, fan_out=fan_out, gain2=0.0)
    if weight.dim() >= 2 and min(weight.shape[0], fans(weight)[0]) >= 2 and _is_orthogonal(
        weight.detach().reshape(weight.shape[0], -1)
    ):
        return InitStats(scheme=f"orthogonal(gain={std * math.sqrt(max(fan_in, fan_out)):.2g})",
                         std=std, fan_in=fan_in, fan_out=fan_out, gain2=gain2)
    kurtosis = float(((w - mean) ** 4).mean()) / var**2 - 3.0
    # Sampling error of the kurtosis is ~sqrt(24/n); of log-variance ~sqrt(2/n).
    kurt_tol = max(0.3, 4 * math.sqrt(24 / n))
    shape = "uniform" if abs(kurtosis + 1.2) < kurt_tol else "normal" if abs(kurtosis) < kurt_tol else "other"
    tol = max(0.08, 4 * math.sqrt(2 / n))
    if shape != "other" and abs(float(mean)) < 4 * std / math.sqrt(n) + 1e-12:
        for name, expected, needs in _schemes(fan_in, fan_out):
            if (needs is None or needs == shape) and abs(math.log(gain2 / expected)) < tol:
                label = name if name == "pytorch-default" else f"{name}-{shape}"
                return InitStats(scheme=label, std=std, fan_in=fan_in, fan_out=fan_out, gain2=gain2)
    return InitStats(scheme=f"{shape}(std={std:.2g})", std=std, fan_in=fan_in, fan_out=fan_out, gain2=gain2)
