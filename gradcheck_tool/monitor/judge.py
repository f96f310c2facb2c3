"""The monitor's host side: one step's numbers, judged against the run's own history.

Findings use the scan's codes and JSON vocabulary:

- GH101 exploding-gradients: a gradient-norm spike.  The baseline is an exponential moving
  mean and variance of log ||g|| (log, so the test is scale-free: a model whose norms sit at
  1e-4 is judged like one at 1e2).  A step is a spike when its z-score is >= ``spike_z`` (6 by
  default: under Gaussian noise p < 1e-9 per step, so a million-step run raises no false alarm)
  and the norm is >= ``spike_ratio`` (2x) the baseline, because a very steady run has a tiny
  variance that would make a 10% wobble look like 6 sigma.  Loss spikes in large-model training
  arrive with such multi-fold gradient-norm jumps (Chowdhery et al. 2022, PaLM sec. 5.1; Molybog
  et al. 2023).  The pre-clip norm is judged when ``clipped()`` gave it: clipping hides spikes;
  a step a trainer clipped before the monitor saw it (``clip_max_norm``) is not judged.
- GH103 non-finite-gradients: NaN/Inf in a gradient; names the first module in backward order
  (the last in declaration order) whose gradient is not finite: everything before it in the
  forward pass only inherits the NaN from it.
- GH141 / GH142 update-ratio-too-large / -too-small: per layer ||delta w|| / ||w|| per optimizer
  step, the median over a window of steps after the first ``warmup`` ones, against the ~1e-3 rule of thumb (Karpathy, CS231n
  "ratio of weights:updates"): >= 0.1 means the layer rewrites a tenth of itself every step;
  <= 1e-5 (at the run's peak learning rate, not during warmup or decay) means it barely learns.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Mapping, Optional

from gradcheck_tool.findings import Applicability, Finding, Fix, Severity
from gradcheck_tool.rules import RULES
from gradcheck_tool.rules.updates import LOW

SEVERITIES = {"GH101": Severity.WARNING, "GH103": Severity.ERROR,
              "GH141": Severity.WARNING, "GH142": Severity.INFO}
# Sustained over a window mid-run, a tenth of the weight per step is already far too much; the
# scan's GH141 (rules/updates.py) judges the first steps at init, where up to 1 is normal.
RATIO_LARGE = 0.1
RATIO_SMALL = LOW
STD_FLOOR = 0.05  # log-norm noise below 5% is not resolvable from a few steps


@dataclass(frozen=True)
class StepRecord:
    """One monitored step as the host read it.  ``grad_norm`` is the global L2 norm of the
    gradients the optimizer saw: after clipping, when ``clip_grad_norm_`` ran first and was handed
    to ``GradMonitor.clipped``; ``pre_clip_norm`` is then what it returned, and ``clipped`` says
    whether it actually scaled the gradients down."""

    step: int
    grad_norm: float
    clipped: bool = False
    pre_clip_norm: Optional[float] = None
    layers: Mapping[str, float] = field(default_factory=dict)  # module -> gradient L2 norm
    update_ratios: Mapping[str, float] = field(default_factory=dict)  # module -> ||dw|| / ||w||
    nonfinite: tuple[str, ...] = ()  # parameters whose gradient holds NaN/Inf
    missing: tuple[str, ...] = ()  # trainable parameters with no gradient this step
    lr: Optional[float] = None
    findings: tuple[Finding, ...] = ()


def finding(code: str, message: str, fix: str, module: Optional[str] = None, **evidence) -> Finding:
    return Finding(code, RULES[code].NAME, SEVERITIES[code], message, module=module, evidence=evidence,
                   fix=Fix(Applicability.DISPLAY_ONLY, fix))


class Baseline:
    """Exponential moving mean and variance of log ||g||; a plain running average over the first
    ``1 / (1 - beta)`` steps (no start-up bias).  Updates are winsorised at the spike threshold, so one
    spike does not blind the detector for the next ones, yet a lasting shift is absorbed."""

    def __init__(self, beta: float = 0.98):
        self.beta, self.count, self.mean, self.var = beta, 0, 0.0, 0.0

    def z(self, log_norm: float) -> float:
        return (log_norm - self.mean) / max(math.sqrt(self.var), STD_FLOOR)

    def update(self, log_norm: float, cap: float) -> None:
        self.count += 1
        beta = min(self.beta, 1.0 - 1.0 / self.count)
        x = log_norm if self.count == 1 else min(log_norm, self.mean + cap * max(math.sqrt(self.var), STD_FLOOR))
        delta = x - self.mean
        self.mean += (1 - beta) * delta
        self.var = beta * (self.var + (1 - beta) * delta * delta)


class Judge:
    def __init__(self, spike_z: float = 6.0, spike_ratio: float = 2.0, warmup: int = 20, window: int = 20):
        self.spike_z, self.spike_ratio, self.warmup = spike_z, spike_ratio, warmup
        self.baseline = Baseline()
        self.in_spike = self.in_nonfinite = False
        self.ratios: deque = deque(maxlen=window)
        self.lrs: deque = deque(maxlen=window)
        self.peak_lr = 0.0
        self.reported: set = set()
        self.updates_seen = 0

    def __call__(self, step: StepRecord, first_nonfinite: Optional[str], total: int) -> tuple[Finding, ...]:
        found = []
        nonfinite = bool(step.nonfinite)
        if nonfinite and not self.in_nonfinite:
            found.append(self._nonfinite(step, first_nonfinite, total))
        self.in_nonfinite = nonfinite
        norm = step.pre_clip_norm if step.pre_clip_norm is not None else step.grad_norm
        unknown = step.clipped and step.pre_clip_norm is None  # capped by a trainer: the raw norm is not known
        if not nonfinite and not unknown and math.isfinite(norm) and norm > 0:
            found.extend(self._spike(step, norm))
        if step.update_ratios:
            found.extend(self._ratios(step))
        return tuple(found)

    def _nonfinite(self, step: StepRecord, first: Optional[str], total: int) -> Finding:
        every = len(step.nonfinite) == total
        where = ("every gradient is non-finite: the loss, or an early forward output, is; "
                 "`gradhealth scan` (GH104) or torch.autograd.detect_anomaly() names the operation") if every else \
            f"first in backward order at {first} ({len(step.nonfinite)} of {total} parameters)"
        return finding("GH103", f"step {step.step}: NaN/Inf in the gradients, {where}",
                       "guard the operation that overflows (clamp before log/sqrt/exp, eps in divisions), lower the "
                       "learning rate, or clip gradients", module=None if every else first,
                       step=step.step, parameters=list(step.nonfinite))

    def _spike(self, step: StepRecord, norm: float) -> list[Finding]:
        log_norm, out = math.log(norm), []
        if self.baseline.count >= self.warmup:
            z = self.baseline.z(log_norm)
            ratio = math.exp(log_norm - self.baseline.mean)
            spike = z >= self.spike_z and ratio >= self.spike_ratio
            if spike and not self.in_spike:
                label = "pre-clip " if step.pre_clip_norm is not None else ""
                out.append(finding(
                    "GH101", f"step {step.step}: {label}gradient norm {norm:.3g} is {ratio:.3g}x its running "
                    f"baseline {math.exp(self.baseline.mean):.3g} (z = {z:.1f} on log scale)",
                    "clip gradients (torch.nn.utils.clip_grad_norm_) near the baseline norm, lower the learning rate "
                    "or lengthen warmup; look at the batch of this step for outliers",
                    step=step.step, grad_norm=norm, baseline=math.exp(self.baseline.mean), ratio=ratio, z=z))
            self.in_spike = spike
        self.baseline.update(log_norm, self.spike_z)
        return out

    def _ratios(self, step: StepRecord) -> list[Finding]:
        # The first steps are not judged: a zero-initialised weight (a LoRA B matrix, a zeroed output
        # projection) grows from nothing, so its ratio is ~1/t and only falls below 0.1 after ~10 steps.
        self.updates_seen += 1
        if self.updates_seen <= self.warmup:
            return []
        self.ratios.append(step.update_ratios)
        self.lrs.append(step.lr)
        if step.lr is not None:
            self.peak_lr = max(self.peak_lr, step.lr)
        if len(self.ratios) < self.ratios.maxlen:
            return []
        at_peak = step.lr is not None and all(lr == self.peak_lr for lr in self.lrs)
        out = []
        for layer in step.update_ratios:
            values = sorted(r.get(layer, math.nan) for r in self.ratios)
            median = values[len(values) // 2]
            if not math.isfinite(median):
                continue
            if median >= RATIO_LARGE and ("GH141", layer) not in self.reported:
                self.reported.add(("GH141", layer))
                out.append(finding(
                    "GH141", f"step {step.step}: {layer} changes by {median:.2g} of its norm per step (median of "
                    f"{len(values)} measured steps; ~1e-3 is typical)", "lower the learning rate for this layer (a parameter "
                    "group) or overall", module=layer, step=step.step, update_ratio=median, lr=step.lr))
            elif 0 < median <= RATIO_SMALL and at_peak and ("GH142", layer) not in self.reported:
                self.reported.add(("GH142", layer))
                out.append(finding(
                    "GH142", f"step {step.step}: {layer} changes by only {median:.2g} of its norm per step at the "
                    f"peak learning rate (median of {len(values)} measured steps; ~1e-3 is typical)",
                    "raise the learning rate for this layer (a parameter group), or check its weight scale",
                    module=layer, step=step.step, update_ratio=median, lr=step.lr))
        return out
