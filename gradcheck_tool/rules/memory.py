"""Recurrent memory shorter than the sequence the model is trained on (GH132)."""
from __future__ import annotations

from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ProbeRecord, RecurrentStats
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.recurrent import VanishingThroughTime, per_step_decades

FP32_EPS = 2.0**-23  # a term this much smaller than the largest vanishes when added to it in fp32


def memory_steps(stats: RecurrentStats) -> Optional[int]:
    """Steps back over which the last step's gradient stays within fp32 resolution of its peak."""
    values = stats.step_grad_norms
    peak = max(values, default=0.0)
    if not peak > 0:
        return None
    return 1 + max(k for k, v in enumerate(values) if v >= peak * FP32_EPS)


def _measure(record: ProbeRecord, module: Optional[str]) -> Optional[float]:
    stats = next((r for r in record.recurrent if r.name == module), None)
    steps = memory_steps(stats) if stats else None
    return steps / stats.steps if steps else None


class ShortRecurrentMemory(RuntimeRule):
    """A recurrent layer's gradient cannot reach back over the sequence length it is trained on.

    What it does: uses the per-step gradient of GH130/GH131 over the whole probed sequence,
    ||d(v . y_T)/d x_t|| for every t (the last step's output, as a loss on the final state sees
    it), and counts the steps back over which it stays within fp32 resolution (2^-23) of its
    peak: the layer's memory at initialisation.  Fires when that memory covers at most half of
    the probed sequence: a warning for a vanilla RNN, information for LSTM/GRU, whose gates can
    learn to remember longer.  A layer whose gradient dies within a few steps is GH131's (the
    cause: saturated gates or tiny recurrent weights) and is not reported twice; GH132 is the
    slower decay that is healthy on short sequences and fatal on long ones.

    Why it matters: a dependency t steps back reaches the weights through a gradient term
    shrunk by the product of t Jacobians (Bengio et al. 1994); once that term is below 2^-23 of
    the short-range terms it is lost in rounding of the fp32 gradient sum and the layer cannot
    learn it.  Default-initialised layers keep 0.2-0.3 decades per step (measured: RNN 23-28
    steps, GRU and LSTM 32-34 steps of memory at hidden 64-256), enough for sequences of
    30-60 steps, not for 200.  Measured on the probe's input length: give ``example_inputs()``
    at the training length.

    Example: ``nn.RNN(32, 128)`` classifying sequences of 256 steps from its last output.

    Fix: a gated layer (LSTM/GRU) for a vanilla RNN; chrono initialisation of the gate biases,
    ``b_forget ~ log(U(1, T - 1))`` for an LSTM (Tallec and Ollivier 2018), so the gates start
    with memory of the training length; truncated backpropagation or attention for longer
    dependencies.
    """

    CODE = "GH132"
    NAME = "short-recurrent-memory"
    SEVERITY = Severity.WARNING
    METRIC = "memory steps / sequence length"
    BETTER = 1
    measure = classmethod(lambda cls, record, module: _measure(record, module))
    GOOD = (examples.rnn(0.63, steps=32, kind="GRU"), examples.rnn(1.0, steps=256, kind="RNN"),
            examples.rnn(0.1, steps=256, kind="RNN"))  # the last one is GH131's
    BAD = (examples.rnn(0.55, steps=256, kind="RNN"), examples.rnn(0.63, steps=200, kind="LSTM"))

    MAX_SHARE = 0.5

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for stats in record.recurrent:
            slope = per_step_decades(stats)
            memory = memory_steps(stats)
            if memory is None or (slope is not None and slope <= VanishingThroughTime.MAX_DECAY):
                continue
            if memory > self.MAX_SHARE * stats.steps:
                continue
            gated = stats.type in ("LSTM", "GRU")
            inferred = " (an inferred length: give example_inputs() at the training length)" \
                if record.inputs.startswith("inferred") else ""
            yield self.finding(
                f"{stats.name}'s gradient reaches back {memory} of the {stats.steps} steps it is probed on"
                f"{inferred}: earlier steps are below fp32 resolution of the last ones",
                module=stats.name,
                evidence={"layer": stats.name, "type": stats.type, "steps": stats.steps, "memory_steps": memory,
                          "memory_share": round(memory / stats.steps, 4)},
                fix=(f"Initialise {stats.name}'s gates for the training length (chrono init: forget-gate bias "
                     f"log(U(1, {stats.steps - 1})), Tallec and Ollivier 2018), or shorten the dependencies "
                     "(truncated BPTT, attention)." if gated else
                     f"Replace the vanilla {stats.name} with nn.LSTM/nn.GRU (chrono-initialised gates for long "
                     "sequences), or shorten the sequences the loss depends on (truncated BPTT, attention)."),
                severity=Severity.INFO if gated else Severity.WARNING,
            )
