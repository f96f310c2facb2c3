"""Synthetic probe records for the rules' GOOD/BAD examples: no model, no torch.

``mlp()`` describes a Linear/activation stack whose forward RMS is multiplied by
``forward_gain`` and whose backward gradient norm by ``backward_gain`` per layer
(walking toward the input), the two numbers the init theory predicts.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

from gradcheck_tool.probe.record import (
    AmpStats,
    AttentionStats,
    Curvature,
    InitStats,
    LayerStats,
    ParamStats,
    Precision,
    ProbeRecord,
    RecurrentStats,
    StepStats,
    SymmetryStats,
    WeightGrowth,
)

_INITS = {
    "kaiming": InitStats("kaiming-normal", 0.177, 64, 64, 2.0),
    "xavier": InitStats("xavier-normal", 0.125, 64, 64, 1.0),
    "normal1": InitStats("normal(std=1)", 1.0, 64, 64, 64.0),
    "default": InitStats("pytorch-default", 0.072, 64, 64, 1 / 3),
}


def mlp(
    depth: int = 8,
    forward_gain: float = 1.0,
    backward_gain: float = 1.0,
    activation: str = "ReLU",
    init: str = "kaiming",
    dead: float = 0.0,
    saturated: float = 0.0,
    nonfinite_from: Optional[int] = None,
    grad_nonfinite_from: Optional[int] = None,
    samples: float = 24.0,
) -> ProbeRecord:
    family = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}[activation]
    layers, params = [], []
    n = 2 * depth
    for i in range(n):
        is_linear = i % 2 == 0
        name = f"body.{i}"
        fwd = forward_gain ** (i // 2 + 1)
        bwd = backward_gain ** ((n - 1 - i) // 2)
        broken = nonfinite_from is not None and i >= nonfinite_from
        grad_broken = grad_nonfinite_from is not None and i <= grad_nonfinite_from
        layers.append(LayerStats(
            name=name, type="Linear" if is_linear else activation, order=i, calls=3, out_shape=(8, 64),
            out_rms=None if broken else fwd, out_nonfinite=broken,
            grad_norm=None if grad_broken or broken else bwd, grad_nonfinite=grad_broken or broken,
            backward_order=n - 1 - i,
            activation=None if is_linear else family,
            dead_fraction=dead if (not is_linear and family == "relu") else None,
            saturated_fraction=saturated if (not is_linear and family != "relu") else None,
            units=None if is_linear else 64, samples_per_unit=None if is_linear else samples,
            weight_init=_INITS[init] if is_linear else None,
            next_activation=family if is_linear else None,
            params=(f"{name}.weight", f"{name}.bias") if is_linear else (),
        ))
        if is_linear:
            g = bwd * fwd / forward_gain
            params.append(ParamStats(f"{name}.weight", name, (64, 64), 8.0, g, (g, g, g)))
            params.append(ParamStats(f"{name}.bias", name, (64,), 0.0, bwd, (bwd, bwd, bwd)))
    return record(layers=layers, parameters=params)


def dip(depth: int = 16, floor: float = 1e-5) -> ProbeRecord:
    """An MLP whose activation RMS falls 10x every 4 layers down to ``floor`` over the first two
    thirds of the stack and is back at 1 over the last third (a collapse that later
    normalisation undoes: no steady trend)."""
    base = mlp(depth=depth)
    n = len(base.layers)
    layers = tuple(dataclasses.replace(layer, out_rms=max(10.0 ** (-i / 4), floor) if i < 2 * n // 3 else 1.0)
                   for i, layer in enumerate(base.layers))
    return dataclasses.replace(base, layers=layers)


def gate(dead: float = 0.9) -> ProbeRecord:
    """A squeeze-excitation gate: Linear, ReLU (``dead`` of its units silent), Linear, Sigmoid."""
    base = mlp(depth=2, dead=dead)
    reduce, relu, expand, last = base.layers
    expand = dataclasses.replace(expand, next_activation="sigmoid")
    last = dataclasses.replace(last, type="Sigmoid", activation="sigmoid", dead_fraction=None)
    return dataclasses.replace(base, layers=(reduce, relu, expand, last))


def normalised(base: ProbeRecord) -> ProbeRecord:
    """``base`` with a normalisation layer after every weight layer: their scale is normalised away."""
    return dataclasses.replace(base, layers=tuple(
        dataclasses.replace(layer, normalised=layer.weight_init is not None) for layer in base.layers))


def residual_bn(blocks: int = 16, backward_gain: float = 1.4, zero_gamma: bool = False,
                losses: Optional[Sequence[float]] = None) -> ProbeRecord:
    """A residual BatchNorm net: per block a conv, its BatchNorm (the branch's last, added to the
    stream by residual sum ``i``) and a ReLU, the gradient growing ``backward_gain`` per block
    toward the input; γ of those BatchNorms zero when ``zero_gamma``; ``losses``: a run of the
    file's optimizer (under the file's loss_fn)."""
    layers, params = [], []
    for i in range(blocks):
        bwd = backward_gain ** (blocks - 1 - i)
        common = dict(calls=3, out_shape=(8, 64, 8, 8), out_rms=1.0, out_nonfinite=False, grad_norm=bwd,
                      grad_nonfinite=False)
        layers += [
            LayerStats(f"blocks.{i}.conv", "Conv2d", order=3 * i, weight_init=_INITS["kaiming"], normalised=True,
                       params=(f"blocks.{i}.conv.weight",), **common),
            LayerStats(f"blocks.{i}.bn", "BatchNorm2d", order=3 * i + 1, normalisation="batch", residual_sum=i,
                       params=(f"blocks.{i}.bn.weight", f"blocks.{i}.bn.bias"), **common),
            LayerStats(f"blocks.{i}.relu", "ReLU", order=3 * i + 2, activation="relu", **common),
        ]
        params += [ParamStats(f"blocks.{i}.conv.weight", f"blocks.{i}.conv", (64, 64, 3, 3), 8.0, bwd, (bwd,) * 3),
                   ParamStats(f"blocks.{i}.bn.weight", f"blocks.{i}.bn", (64,), 0.0 if zero_gamma else 8.0, bwd,
                              (bwd,) * 3)]
    base = record(layers=layers, parameters=params)
    if losses is None:
        return base
    stats = StepStats("SGD", 0.1, 0.0, False, tuple(losses), ())
    return dataclasses.replace(base, steps=stats, loss="loss_fn")


def record(
    layers: Sequence[LayerStats] = (),
    parameters: Sequence[ParamStats] = (),
    recurrent: Sequence[RecurrentStats] = (),
    **kw,
) -> ProbeRecord:
    return ProbeRecord(
        model="Synthetic", device="cpu", seed=0, batches=3, loss="default", inputs="synthetic",
        layers=tuple(layers), parameters=tuple(parameters), recurrent=tuple(recurrent),
        total_grad_norms=(1.0, 1.1, 0.9), output_grad_norm=1.0, input_rms=1.0,
        recommended_max_norm=2.0, **kw,
    )


def with_params(base: ProbeRecord, *extra: ParamStats) -> ProbeRecord:
    return dataclasses.replace(base, parameters=base.parameters + tuple(extra))


def rnn(per_step: float, steps: int = 32, radius: float = 0.6, kind: str = "LSTM") -> ProbeRecord:
    """One recurrent layer (``kind``: "RNN", "GRU", "LSTM") whose last-step gradient changes by
    ``per_step`` per step back over ``steps`` steps."""
    return record(recurrent=[RecurrentStats("rnn", kind, steps, tuple(per_step**k for k in range(steps)), radius)])


def symmetric(learning: int, units: int = 64, distinct: int = 1) -> ProbeRecord:
    """An MLP whose first hidden Linear has ``units`` units, ``distinct`` distinct weight rows, and
    ``learning`` units left once rows with identical weights and identical gradients count once."""
    stats = SymmetryStats("body.2", "Linear", units, distinct, learning, distinct == 1)
    return dataclasses.replace(mlp(depth=3), symmetry=(stats,))


def attention(entropy: float, keys: float = 128.0, name: str = "blocks.0.attn",
              kind: str = "softmax") -> ProbeRecord:
    """One attention site whose sampled rows have mean entropy ``entropy`` (nats) over ``keys`` keys."""
    return dataclasses.replace(mlp(depth=2), attention=(AttentionStats(name, kind, 256, keys, entropy,
                                                                       math.log(keys)),))


def trained(optimizer: str = "Adam", lr: float = 1e-3, growth: float = 5e-4, *, weight_decay: float = 0.0,
            steps: int = 10, matrices: int = 4,
            losses: Optional[Sequence[float]] = None, loss: str = "default",
            sharpness: Optional[float] = None, step_ratio: Optional[float] = None) -> ProbeRecord:
    """An MLP record plus a short optimizer run whose weight matrices' squared norms grow by
    ``2 * growth`` of their initial value per step (the random-walk growth GH143 measures),
    with ``losses`` (default: 1.0 at every step) under ``loss`` ("loss_fn" or the default), and
    the curvature measured at ``sharpness`` (plain SGD's bound 2/λ_max, Adam's 2/λ_max(P⁻¹H)), and
    each step moving every matrix by ``step_ratio`` of its norm (GH141/GH142; default: not recorded)."""
    weights = []
    for i in range(matrices):
        norms = tuple(8.0 * (1 + 2 * growth * t) ** 0.5 for t in range(steps + 1))
        moved = tuple(step_ratio * n for n in norms[:-1]) if step_ratio is not None else ()
        weights.append(WeightGrowth(f"body.{2 * i}.weight", f"body.{2 * i}", norms, moved, moved))
    curvature = None
    if sharpness is not None:
        constant, formula = (2.0, "2/λ_max") if optimizer == "SGD" else (2.0, "2/λ_max(P⁻¹H)")
        curvature = Curvature(sharpness, constant / sharpness, formula, optimizer != "SGD", 12)
    stats = StepStats(optimizer, lr, weight_decay, optimizer == "AdamW",
                      tuple(losses) if losses is not None else tuple(1.0 for _ in range(steps)), tuple(weights),
                      curvature=curvature)
    return dataclasses.replace(mlp(), steps=stats, loss=loss)


def half(out_max: float = 10.0, grad_max: float = 1e-3, exponents: Sequence[tuple[int, int]] = ((-12, 100),),
         dtype: Optional[str] = None, scaler: bool = False, init_scale: float = 2.0**16,
         trains: bool = True, asked: bool = False, amp: Optional[str] = None) -> ProbeRecord:
    """An MLP record whose middle Linear outputs values up to ``out_max``, receives output gradients up to
    ``grad_max`` spread over powers of two as ``exponents`` ((floor(log2 |g|), count), ...), in a file
    that trains in ``dtype`` ("fp16", "bf16" or None for fp32), with or without a GradScaler; ``asked``:
    the dtype came from --amp.  ``amp``: the verdict of a real --amp run ("clean", "search", "spike",
    "collapse"), with the scale history such a run of 10 steps from ``init_scale`` would have."""
    base = mlp(depth=2)
    layers = tuple(dataclasses.replace(layer, out_max=out_max if layer.name == "body.2" else 1.0,
                                       grad_max=grad_max if layer.name == "body.2" else 1e-3,
                                       grad_exponents=tuple(exponents) if layer.name == "body.2" else ((-12, 100),))
                   for layer in base.layers)
    runs = {"clean": ((), ()), "search": ((0, 1, 2), ("search",) * 3), "spike": ((5,), ("spike",)),
            "collapse": ((0, 1, 2), ("forward",) * 3)}
    skipped, kinds = runs[amp] if amp else ((), ())
    scales, scale = [], init_scale
    for t in range(3 if amp == "collapse" else 10 + len(skipped)):
        scales.append(scale)
        scale = scale / 2 if t in skipped else scale
    measured = AmpStats(dtype or "fp16", "cuda", "AdamW", scaler, init_scale, 2000, tuple(scales),
                        tuple(None if amp == "collapse" else 1.0 for _ in scales),
                        skipped, kinds, scale, amp, "body.2" if amp in ("spike", "collapse") else None,
                        "forward" if amp == "collapse" else "backward") if amp else None
    return dataclasses.replace(base, layers=layers, amp=measured,
                               precision=Precision(dtype, scaler, init_scale, trains, asked=asked))
