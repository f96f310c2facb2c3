"""The probe's result: an immutable, JSON-serialisable record of per-layer statistics.

Everything here is plain numbers and strings so the record can cross a process
boundary (the CLI probes user code in a child process) and feed rules that never
touch torch.  ``to_dict``/``from_dict`` round-trip exactly.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class InitStats:
    """How a weight was initialised, judged from its values."""

    scheme: str  # e.g. "pytorch-default", "kaiming-normal", "xavier-uniform", "normal(std=1)", "orthogonal", "zeros"
    std: float
    fan_in: int
    fan_out: int
    gain2: float  # var(W) * fan_in: 1/3 PyTorch default, 1 LeCun, 2 He


@dataclass(frozen=True)
class LayerStats:
    """One leaf module, aggregated over every call in every probe batch.

    ``out_rms`` is the forward signal (RMS of the output, per element, which does
    not depend on layer width under fan-in initialisation).  ``grad_norm`` is the
    backward signal: the L2 norm of d(loss)/d(output) over the whole output
    (per-sample norms are width-independent too; reshapes do not change it).
    """

    name: str
    type: str
    order: int  # position in forward execution order (first call)
    calls: int
    out_shape: tuple[int, ...]
    out_rms: Optional[float]  # None when the output has no floating tensor
    out_nonfinite: bool
    grad_norm: Optional[float]  # None when no gradient reached the output
    grad_nonfinite: bool
    backward_order: Optional[int] = None  # when its output gradient arrived, 0 = first
    activation: Optional[str] = None  # "relu" family / "sigmoid" / "tanh" / ... for activation modules
    dead_fraction: Optional[float] = None  # ReLU family: units never > 0 on any probe sample
    saturated_fraction: Optional[float] = None  # sigmoid/tanh: units in the flat tails on most samples
    units: Optional[int] = None
    samples_per_unit: Optional[float] = None  # independent probe samples (batch rows) each unit's verdict rests on
    weight_init: Optional[InitStats] = None
    next_activation: Optional[str] = None  # the activation applied after this layer, if any
    params: tuple[str, ...] = ()
    normalisation: Optional[str] = None  # "batch" / "layer" / "group" / "instance" / "rms" for a normalisation layer
    # A weight layer whose output reaches a normalisation layer before any activation or weight
    # layer: its output scale is normalised away (scale-invariant weights).
    normalised: bool = False
    # A normalisation layer whose output a residual sum adds (the last norm of a residual branch,
    # or a projection shortcut's): the sum's index, shared by the norms one sum adds.
    residual_sum: Optional[int] = None
    out_max: Optional[float] = None  # max |output| over every call (GH150)
    grad_max: Optional[float] = None  # max |d loss / d output| (GH150)
    grad_exponents: tuple[tuple[int, int], ...] = ()  # (floor(log2 |g|), count) of the nonzero output gradients (GH151)


@dataclass(frozen=True)
class ParamStats:
    name: str
    module: str
    shape: tuple[int, ...]
    norm: float
    grad_norm: Optional[float]  # mean over probe batches; None: never received a gradient
    grad_norms: tuple[float, ...] = ()  # one per probe batch
    grad_nonfinite: bool = False
    requires_grad: bool = True
    # What the first probe forward did with it: "unused" (no op took it), "used", or "cut" (an op
    # took it with autograd off, or its module's output was detached); None: not recorded.
    use: Optional[str] = None


@dataclass(frozen=True)
class RecurrentStats:
    """Gradient of the last time step's output w.r.t. the input at each step.

    ``step_grad_norms[k]`` is ||d(v . y_T)/d x_{T-k}||: index 0 is the last step,
    so the list reads from late to early time steps (Pascanu et al., 2013).
    """

    name: str
    type: str
    steps: int
    step_grad_norms: tuple[float, ...]
    spectral_radius: Optional[float]  # largest |eigenvalue| of the recurrent weight blocks


@dataclass(frozen=True)
class SymmetryStats:
    """A weight layer with identical units at initialisation (probe/symmetry.py; GH121)."""

    name: str
    type: str
    units: int  # rows of the weight: output features, conv filters, RNN gate units
    distinct_weights: int  # units left when identical weight rows are counted once
    learning_units: int  # units left when rows with identical weights AND identical nonzero gradients count once
    constant: bool  # every row identical (a constant or zero initialisation)


@dataclass(frozen=True)
class AttentionStats:
    """Entropy of one attention site's probabilities, on a sample of query rows (probe/attention.py; GH114)."""

    name: str  # the module that ran last before the softmax (or the attention module)
    kind: str  # "softmax", "scaled_dot_product_attention" or "MultiheadAttention"
    rows: int  # query rows sampled
    keys: float  # mean number of keys a sampled row may attend to (masks applied)
    entropy: float  # mean entropy of a sampled row, in nats
    max_entropy: float  # mean log(keys): the entropy of uniform attention over the same rows


@dataclass(frozen=True)
class WeightGrowth:
    """One weight matrix's L2 norm before the first optimizer step and after each one."""

    name: str
    module: str
    norms: tuple[float, ...]  # steps + 1 values
    updates: tuple[float, ...] = ()  # ||w_t+1 - w_t|| at each step
    tangential: tuple[float, ...] = ()  # the part of that update orthogonal to w_t (the effective step)


@dataclass(frozen=True)
class Curvature:
    """The sharpness at initialisation and the largest stable lr of the optimizer (probe/curvature.py)."""

    sharpness: Optional[float]  # lambda_max of the Hessian, or of P^-1 H for Adam; None: not measured
    bound: Optional[float]  # the edge of stability: the largest lr at which the first steps are stable
    formula: str  # how the bound follows from the sharpness, "2/λ_max"
    preconditioned: bool
    hvps: int  # Hessian-vector products used
    note: str = ""  # why it was not measured


@dataclass(frozen=True)
class StepStats:
    """A short run of the file's own optimizer, as its constructor call configures it (probe/steps.py)."""

    optimizer: str  # the torch.optim class, "Adam"
    lr: float
    weight_decay: float
    decoupled: bool  # AdamW-style decay (applied to the weights, not folded into the gradient)
    losses: tuple[float, ...]  # the loss at each step, before that step's update
    weights: tuple[WeightGrowth, ...]
    warmup: bool = False  # the file's schedule can start below lr: these steps ran at its peak
    curvature: Optional[Curvature] = None  # None: not measured (--curvature off, or no bound for the optimizer)


@dataclass(frozen=True)
class Precision:
    """How the file trains, as its source says (static/analysis/amp_usage.py; GH150/GH151)."""

    dtype: Optional[str]  # "fp16", "bf16", or None: fp32 as far as the source says
    scaler: bool  # gradients are loss-scaled (GradScaler, or a trainer that scales fp16 itself)
    init_scale: float = 2.0**16  # the scale the scaler starts at (torch's default 2^16)
    trains: bool = True  # the file runs a backward pass (or a trainer): fp16 gradients exist, not only inference
    growth_interval: int = 2000  # clean steps before the scaler doubles the scale (torch's default 2000)
    asked: bool = False  # set by --amp, not read from the file: judge it as if the file trained so


PERSIST = 3  # AMP steps skipped in a row that end a run (a collapse): the scale is still falling


def trailing_skips(steps: int, skipped) -> int:
    """How many of the last of ``steps`` AMP steps were skipped in a row."""
    skipped = set(skipped)
    kept = [t for t in range(steps) if t not in skipped]
    return steps - 1 - (kept[-1] if kept else -1)


@dataclass(frozen=True)
class AmpStats:
    """A real autocast (+ GradScaler) run of the file's optimizer steps (``--amp``; probe/amp.py)."""

    dtype: str  # "fp16" or "bf16"
    device: str  # autocast's device type, "cuda" or "cpu"
    optimizer: str  # the torch.optim class stepped; "" when the file has none (the weights stay at init)
    scaler: bool  # a GradScaler ran (fp16 by the book)
    init_scale: float  # its starting scale (1.0 without one)
    growth_interval: int
    scales: tuple[float, ...]  # the loss scale each step ran at
    losses: tuple[Optional[float], ...]  # each step's loss under autocast; None where not finite
    skipped: tuple[int, ...]  # steps whose update was skipped (inf/NaN gradients, or loss)
    kinds: tuple[str, ...]  # per skipped step: "search", "spike" or "forward" (probe/amp.py: classify)
    final_scale: float  # the scale after the last update: where it settles
    verdict: str  # "clean", "search", "spike" or "collapse"
    first_nonfinite: Optional[str] = None  # the module whose output (or output gradient) first went inf/NaN
    nonfinite_in: Optional[str] = None  # "forward" or "backward": where first_nonfinite was found


@dataclass(frozen=True)
class LossCall:
    """A loss function ``loss_fn`` called on the first probe batch with a suspicious input
    (probe/losses.py; GH107, GH108)."""

    function: str  # the torch.nn.functional loss: "cross_entropy", "mse_loss", ...
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    squashed_by: Optional[str] = None  # "softmax" / "sigmoid": the input is probabilities, not logits
    producer: Optional[str] = None  # the module whose output (or whose squashed output) the input is
    in_model: Optional[bool] = None  # the squash is the model's (True) or loss_fn's own (False); None: unknown
    shrink: Optional[float] = None  # ||dL/dz|| as written / as the loss expects, z the logits before the squash
    broadcast: tuple[int, ...] = ()  # the shape input and target broadcast to, when larger than both


@dataclass(frozen=True)
class Unregistered:
    """Tensors that require grad and reach the output, held by a module attribute that does not
    register them: ``model.parameters()`` misses them (probe/unregistered.py; GH113)."""

    holder: str  # the attribute, by its path from the model: "layers", "encoder.heads"
    owner_type: str  # the class of the module holding it
    container: str  # "list" / "tuple" / "dict" / "tensor" (a plain tensor attribute)
    tensors: tuple[str, ...]  # each tensor by path: "layers[0].weight"
    numel: int
    grad_norm: Optional[float]  # L2 norm of their gradient on the first probe batch
    modules: tuple[str, ...] = ()  # the classes of the layers held, in order ("Linear", ...)
    eval_mode: bool = False  # every module held is in eval mode: kept out of the model on purpose
    site: str = ""  # the first held module, by the name its source line is recorded under
    # Every item of the container is a module (and a dict's keys are strings): nn.ModuleList /
    # nn.ModuleDict would take it as it is (the GH113 codemod wraps it only then).
    registrable: bool = False


@dataclass(frozen=True)
class ProbeRecord:
    model: str
    device: str
    seed: int
    batches: int
    loss: str  # "loss_fn" or "default: ..." naming the default loss used (probe/outputs.py)
    inputs: str  # how the inputs were obtained and their shapes
    layers: tuple[LayerStats, ...]
    parameters: tuple[ParamStats, ...]
    recurrent: tuple[RecurrentStats, ...] = ()
    total_grad_norms: tuple[float, ...] = ()  # global grad norm, one per batch
    output_grad_norm: Optional[float] = None  # ||d loss / d model output||
    input_rms: Optional[float] = None  # RMS of the floating model inputs, None for token inputs
    duration_s: float = 0.0
    recommended_max_norm: Optional[float] = None
    steps: Optional[StepStats] = None  # None: no optimizer run (none found in the file, or --train-steps 0)
    precision: Optional[Precision] = None  # None: not read (the Python API without a file)
    loss_calls: tuple[LossCall, ...] = ()  # suspicious loss calls of loss_fn (GH107, GH108)
    unregistered: tuple[Unregistered, ...] = ()  # trainable tensors model.parameters() misses (GH113)
    # The file's torch.optim constructor takes ``X.parameters()`` (so it misses unregistered tensors):
    # True; it takes something else: False; None: not read, or no constructor in the file.
    optimizer_from_parameters: Optional[bool] = None
    symmetry: tuple[SymmetryStats, ...] = ()  # only layers with identical units (GH121)
    attention: tuple[AttentionStats, ...] = ()  # attention sites of the first probe forward (GH114)
    amp: Optional[AmpStats] = None  # None: no real mixed-precision run (--amp not given)

    def layer(self, name: str) -> Optional[LayerStats]:
        return next((layer for layer in self.layers if layer.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProbeRecord":
        def layer(d: dict) -> LayerStats:
            d = dict(d, out_shape=tuple(d["out_shape"]), params=tuple(d["params"]),
                     grad_exponents=tuple(tuple(pair) for pair in d.get("grad_exponents", ())))
            if d.get("weight_init") is not None:
                d["weight_init"] = InitStats(**d["weight_init"])
            return LayerStats(**d)

        def param(d: dict) -> ParamStats:
            return ParamStats(**dict(d, shape=tuple(d["shape"]), grad_norms=tuple(d["grad_norms"])))

        def recurrent(d: dict) -> RecurrentStats:
            return RecurrentStats(**dict(d, step_grad_norms=tuple(d["step_grad_norms"])))

        def steps(d: Optional[dict]) -> Optional[StepStats]:
            if d is None:
                return None
            weights = tuple(WeightGrowth(**dict(w, **{k: tuple(w.get(k, ())) for k in ("norms", "updates", "tangential")}))
                            for w in d["weights"])
            curvature = Curvature(**d["curvature"]) if d.get("curvature") else None
            return StepStats(**dict(d, losses=tuple(d["losses"]), weights=weights, curvature=curvature))

        def loss_call(d: dict) -> LossCall:
            return LossCall(**dict(d, **{k: tuple(d.get(k, ())) for k in ("input_shape", "target_shape", "broadcast")}))

        def unregistered(d: dict) -> Unregistered:
            return Unregistered(**dict(d, tensors=tuple(d["tensors"]), modules=tuple(d.get("modules", ()))))

        return cls(
            **dict(
                data,
                steps=steps(data.get("steps")),
                loss_calls=tuple(loss_call(d) for d in data.get("loss_calls", ())),
                unregistered=tuple(unregistered(d) for d in data.get("unregistered", ())),
                precision=Precision(**data["precision"]) if data.get("precision") else None,
                amp=AmpStats(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["amp"].items()})
                if data.get("amp") else None,
                layers=tuple(layer(d) for d in data["layers"]),
                parameters=tuple(param(d) for d in data["parameters"]),
                recurrent=tuple(recurrent(d) for d in data["recurrent"]),
                symmetry=tuple(SymmetryStats(**d) for d in data.get("symmetry", ())),
                attention=tuple(AttentionStats(**d) for d in data.get("attention", ())),
                total_grad_norms=tuple(data["total_grad_norms"]),
            )
        )
