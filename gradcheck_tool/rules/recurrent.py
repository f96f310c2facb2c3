"""Gradient through time in recurrent layers: GH130 (exploding) and GH131 (vanishing)."""
from __future__ import annotations

import math
from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ProbeRecord, RecurrentStats
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.signals import clip_advice, fmt, theil_sen

# Steps whose gradient underflowed below this share of the last step's carry no trend.
_FLOOR = 1e-30


def per_step_decades(stats: RecurrentStats) -> Optional[float]:
    """Theil-Sen slope of log10 ||d y_T / d x_t|| per step back in time (negative: decays)."""
    values = stats.step_grad_norms
    if not values or not values[0] > 0:
        return None
    kept = []
    for v in values:
        if not (v > values[0] * _FLOOR) or not math.isfinite(v):
            break
        kept.append(math.log10(v))
    if len(kept) < 4:
        # Underflow within three steps back is the fastest possible decay.
        return -math.inf if len(values) >= 4 else None
    return theil_sen(kept)


def _evidence(stats: RecurrentStats, slope: float) -> dict:
    return {"layer": stats.name, "type": stats.type, "steps": stats.steps,
            "decades_per_step": round(slope, 4) if math.isfinite(slope) else None,
            "growth_per_step": 10**slope if math.isfinite(slope) else 0.0,
            "last_step_grad": stats.step_grad_norms[0], "first_step_grad": stats.step_grad_norms[-1],
            "spectral_radius": stats.spectral_radius}


def _through_time(record: ProbeRecord, module: Optional[str]) -> Optional[float]:
    stats = next((r for r in record.recurrent if r.name == module), None)
    slope = per_step_decades(stats) if stats else None
    return abs(slope) if slope is not None else None  # inf: underflow within three steps


class ExplodingThroughTime(RuntimeRule):
    """A recurrent layer's gradient grows from late to early time steps.

    What it does: re-runs each RNN/LSTM/GRU layer on the input it saw and differentiates
    only its last time step's output with respect to the input at every step.  Fits the
    per-step growth of that gradient in log space; fires when it compounds to 10x or more
    over the probed sequence (error from 1000x).  The spectral radius of the recurrent
    weight blocks is reported beside it.

    Why it matters: backpropagation through time multiplies by the recurrent Jacobian at
    every step; when its gain exceeds 1 the gradient grows geometrically with sequence
    length (Bengio et al. 1994; Pascanu et al. 2013), even when every parameter's norm
    looks moderate.  Training on longer sequences than the probe's makes it worse.

    Example: ``nn.RNN`` with ``nn.init.orthogonal_(weight_hh_l0, gain=2.0)``.

    Fix: recurrent weights with spectral radius <= 1 (``nn.init.orthogonal_(w_hh)``), an
    LSTM/GRU instead of a vanilla RNN, and gradient clipping (Pascanu et al. 2013).
    """

    CODE = "GH130"
    NAME = "exploding-through-time"
    SEVERITY = Severity.WARNING
    METRIC = "gradient change per step (decades)"
    measure = classmethod(lambda cls, record, module: _through_time(record, module))
    GOOD = (examples.rnn(0.6), examples.rnn(1.0))
    BAD = (examples.rnn(1.15), examples.rnn(1.5, radius=2.0))

    WARN_DECADES = 1.0
    ERROR_DECADES = 3.0

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for stats in record.recurrent:
            slope = per_step_decades(stats)
            if slope is None or not math.isfinite(slope):
                continue
            total = slope * (stats.steps - 1)
            if total < self.WARN_DECADES:
                continue
            radius = f" (spectral radius of the recurrent weights {fmt(stats.spectral_radius)})" \
                if stats.spectral_radius is not None else ""
            yield self.finding(
                f"{stats.name}'s gradient grows {fmt(10 ** slope)}x per step back in time: "
                f"{fmt(10 ** total)}x over {stats.steps} steps{radius}",
                module=stats.name,
                evidence=_evidence(stats, slope),
                fix=(f"Initialise {stats.name}'s recurrent weights with spectral radius <= 1, e.g. "
                     f"nn.init.orthogonal_({stats.name}.weight_hh_l0); prefer LSTM/GRU over a vanilla RNN."
                     + clip_advice(record)),
                severity=Severity.ERROR if total >= self.ERROR_DECADES else Severity.WARNING,
            )


class VanishingThroughTime(RuntimeRule):
    """A recurrent layer's gradient dies from late to early time steps within a few steps.

    What it does: the same last-step gradient as GH130; fires when it falls by half an order
    of magnitude or more per step, i.e. 100x within 4 steps.

    Why it matters: the layer cannot learn dependencies longer than a few steps.  Some decay
    is normal at init: default-initialised LSTM, GRU and tanh RNN layers lose 0.2-0.27
    decades per step (measured; an LSTM's forget gate sits at sigmoid(0) = 0.5) and learn to
    extend their memory.  A layer twice as short-sighted as any default has saturated gates
    or recurrent weights scaled far below 1.

    Example: an LSTM whose forget-gate bias is initialised to -6.

    Fix: forget-gate bias 1 for LSTMs (Jozefowicz et al. 2015), orthogonal recurrent
    weights, inputs scaled so the gates do not saturate.
    """

    CODE = "GH131"
    NAME = "vanishing-through-time"
    SEVERITY = Severity.WARNING
    METRIC = "gradient change per step (decades)"
    measure = classmethod(lambda cls, record, module: _through_time(record, module))
    GOOD = (examples.rnn(0.55), examples.rnn(1.0))
    BAD = (examples.rnn(0.1), examples.rnn(0.0))

    MAX_DECAY = -0.5  # decades per step

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for stats in record.recurrent:
            slope = per_step_decades(stats)
            if slope is None or slope > self.MAX_DECAY:
                continue
            horizon = 2 / -slope if math.isfinite(slope) else 0.0
            forget = (f" For an LSTM: set the forget-gate bias to 1: {stats.name}.bias_ih_l0.data"
                      f"[h:2*h].fill_(1.0) with h = hidden_size, and zero bias_hh_l0's slice.") \
                if stats.type == "LSTM" else ""
            yield self.finding(
                f"{stats.name}'s gradient falls 100x within {horizon:.1f} steps back in time",
                module=stats.name,
                evidence=_evidence(stats, slope),
                fix=("Keep the gates out of saturation (normalise the layer's input) and use orthogonal "
                     "recurrent weights (nn.init.orthogonal_)." + forget),
            )
