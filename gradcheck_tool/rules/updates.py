"""How far each optimizer step moves a weight matrix against its own norm (GH141, GH142)."""
from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ProbeRecord, StepStats, WeightGrowth
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.signals import finite

HIGH = 1.0  # per step: each step moves the weight by more than its own norm
LOW = 1e-5  # per step: the weight needs ~1e5 steps to move by its own norm
TARGET = 0.03  # what the recommended lr aims the largest ratio at (GH141): a decade inside the band
TARGET_LOW = 1e-3  # ... and the median ratio at (GH142): the rule of thumb
# Rows of an embedding move only where their tokens occur: the whole matrix's ratio says little.
SPARSE_ROWS = ("Embedding", "EmbeddingBag")


@dataclass(frozen=True)
class UpdateRatio:
    weight: str
    module: str
    ratio: float  # median over the steps of ||Δw|| / ||w_0|| (behind a normalisation: ||Δw_⊥|| / ||w_t||)
    normalised: bool


def update_ratios(record: ProbeRecord) -> list[UpdateRatio]:
    stats = record.steps
    if stats is None:
        return []
    out = []
    for w in stats.weights:
        layer = record.layer(w.module)
        if layer is not None and layer.type in SPARSE_ROWS:
            continue
        normalised = _behind_normalisation(record, w.module)
        ratio = _ratio(w, normalised)
        if ratio is not None:
            out.append(UpdateRatio(w.name, w.module, ratio, normalised))
    return out


def _ratio(w: WeightGrowth, normalised: bool) -> Optional[float]:
    if not w.updates or not finite(w.norms[0]) or w.norms[0] <= 0:
        return None  # zero-initialised weights (a zero-init projection) are meant to grow from nothing
    # Against the initial norm: a large Adam step grows the norm, which would hide the next steps' size.
    # Behind a normalisation the current norm is the right scale: its growth is what slows the
    # effective step (scale invariance), so the orthogonal part over the current norm is that step.
    moved = w.tangential if normalised else w.updates
    scales = w.norms if normalised else [w.norms[0]] * len(moved)
    ratios = [u / n for u, n in zip(moved, scales) if finite(u) and finite(n) and n > 0]
    return median(ratios) if ratios else None


def _behind_normalisation(record: ProbeRecord, module: str) -> bool:
    """The next module in forward order is a normalisation layer: the weight's scale is divided out."""
    layer = record.layer(module)
    if layer is None:
        return False
    following = next((other for other in record.layers if other.order == layer.order + 1), None)
    return following is not None and "Norm" in following.type


def _call(stats: StepStats) -> str:
    return f"{stats.optimizer}(lr={stats.lr:g})"


class UpdateRatioTooLarge(RuntimeRule):
    """An optimizer step moves a weight matrix by more than its own norm.

    What it does: over the probe's optimizer steps (``--train-steps``, the file's own optimizer),
    takes each weight matrix's update ``||w_t+1 - w_t|| / ||w_0||`` per step (against the initial
    norm: a too-large step grows the norm, which would hide the next ones) and its median over the
    steps, and fires when it is above 1 for any matrix.  A weight followed by a normalisation layer
    (Conv -> BatchNorm) is scale-invariant, so only its effective step counts: the part of the
    update orthogonal to ``w_t``, over ``||w_t||`` (the norm's growth is what slows it).  Embedding
    matrices (rows move only where their tokens occur) and zero-initialised weights are skipped.
    A warning; information when the file warms the rate up (the steps ran at its peak).

    Why it matters: the usual rule of thumb is ~1e-3 per step (Karpathy, CS231n, "ratio of
    weights: updates"), which the band here widens by two to three decades.  Above 1, every step
    moves the matrix by more than its own norm: what its initialisation guaranteed (signal
    propagation through depth) is gone after the first step, before the loss can guide it.  Adam's
    step is ~``lr`` per element whatever the gradient (``|m/sqrt(v)| <= 1``, exactly 1 at the first
    step), so its ratio is about ``lr / rms(w)``: measured 2e-3 to 4e-2 on GPT-2 and BERT configs
    (init std 0.02) at AdamW 1e-4 to 1e-3, and ~0.1 for a width-128 MLP at PyTorch's default init
    (rms 0.05) at lr 5e-3.  SGD's is ``lr ||g|| / ||w||``, times ``1/(1-momentum)`` once momentum
    builds up, and depends on the loss.  The bound is 1 and not lower because by-the-book SGD (lr
    0.1, momentum 0.9) on a BatchNorm ResNet moves its stem and its classifier by ~0.3 per step at
    initialisation (measured on a transformers ResNetConfig) and trains fine; GPT-2 at AdamW 1e-1
    moves every matrix by ~5 times its norm at the first step.

    Example: ``AdamW(lr=1e-1)`` on GPT-2 (init std 0.02).

    Fix: the message computes an lr that brings the largest ratio to 0.03 (updates scale with lr),
    or warm up the rate, or give the outlier matrix its own parameter group.
    """

    CODE = "GH141"
    NAME = "update-ratio-too-large"
    AT_OPTIMIZER = True
    SEVERITY = Severity.WARNING
    GOOD = (
        examples.mlp(),
        examples.trained("AdamW", lr=1e-3, step_ratio=0.03),
        examples.trained("Adam", lr=5e-3, step_ratio=0.12),
        examples.trained("SGD", lr=0.1, loss="loss_fn", step_ratio=0.3),  # a BN ResNet's stem at init
        examples.trained("SGD", lr=0.1, loss="loss_fn", step_ratio=2e-3),
    )
    BAD = (
        examples.trained("AdamW", lr=1e-1, step_ratio=5.0),
        examples.trained("SGD", lr=1.0, loss="loss_fn", step_ratio=1.5),
    )

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        ratios = update_ratios(record)
        large = sorted((r for r in ratios if r.ratio > HIGH), key=lambda r: -r.ratio)
        if not large:
            return
        stats, worst = record.steps, large[0]
        lr = float(f"{stats.lr * TARGET / worst.ratio:.2g}")
        kind = "effective (orthogonal) step" if worst.normalised else "step"
        yield self.finding(
            f"{_call(stats)}: {len(large)} of {len(ratios)} weight matrices move more than {HIGH:g} of their norm "
            f"per optimizer step; the largest, {worst.weight}, by {worst.ratio:.3g} ({kind}, median over "
            f"{len(stats.losses)} steps)" + (" at the peak lr of the file's warmup" if stats.warmup else ""),
            module=worst.module, severity=Severity.INFO if stats.warmup else Severity.WARNING,
            evidence={"optimizer": stats.optimizer, "lr": stats.lr, "threshold": HIGH, "recommended_lr": lr,
                      "ratios": {r.weight: r.ratio for r in large}},
            fix=f"Lower the learning rate to lr={lr:g} (brings {worst.weight}'s step to {TARGET:g} of its norm), "
                "warm it up over the first steps, or give the outlier matrices their own parameter group.")


class UpdateRatioTooSmall(RuntimeRule):
    """The optimizer's steps barely move the weights: the median weight matrix moves by less than
    1e-5 of its norm per step.

    What it does: the same per-step ratios as GH141 (effective steps behind a normalisation,
    embeddings and zero-initialised weights skipped), and their median over the matrices.

    Why it matters: at 1e-5 per step a weight needs ~1e5 steps to move by its own norm: for any
    usual run, the model stays where it was initialised.  Two decades under the ~1e-3 rule of thumb
    (Karpathy, CS231n) still includes fine-tuning rates (Adam at lr 1e-6 on std-0.02 weights is
    5e-5 per step).  It reads the median matrix, not one layer: one layer that stalls is a
    vanishing gradient (GH102), seen better there.

    Example: ``SGD(lr=1e-6)`` on an MLP trained with cross-entropy.

    Fix: raise the learning rate to the one the message computes (it brings the median ratio to
    1e-3; updates scale with lr).
    """

    CODE = "GH142"
    NAME = "update-ratio-too-small"
    AT_OPTIMIZER = True
    SEVERITY = Severity.WARNING
    GOOD = (
        examples.mlp(),
        examples.trained("Adam", lr=1e-6, step_ratio=5e-5),
        examples.trained("SGD", lr=0.1, loss="loss_fn", step_ratio=2e-3),
    )
    BAD = (
        examples.trained("SGD", lr=1e-6, loss="loss_fn", step_ratio=2e-8),
        examples.trained("Adam", lr=1e-8, step_ratio=4e-7),
    )

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        ratios = update_ratios(record)
        if not ratios:
            return
        typical = median(r.ratio for r in ratios)
        if typical >= LOW:
            return
        stats = record.steps
        lr = float(f"{stats.lr * TARGET_LOW / typical:.2g}")
        yield self.finding(
            f"{_call(stats)}: the median weight matrix moves by {typical:.3g} of its norm per optimizer step "
            f"(under {LOW:g}; median over {len(ratios)} matrices and {len(stats.losses)} steps)",
            evidence={"optimizer": stats.optimizer, "lr": stats.lr, "median_ratio": typical, "threshold": LOW,
                      "recommended_lr": lr, "ratios": {r.weight: r.ratio for r in ratios}},
            fix=f"Raise the learning rate to lr={lr:g} (brings the median step to {TARGET_LOW:g} of the weight's norm).")
