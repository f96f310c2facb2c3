"""Probe inputs: the user's ``example_inputs()``, ``--input-shape``, or inferred from the first layer the
forward runs."""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from gradcheck_tool.errors import GradhealthError

BATCH = 8
MAX_DIMS, MAX_ELEMENTS = 8, 2**28  # --input-shape beyond these is a typo (2**28 float32 is 1 GiB)
# With BatchNorm the batch is part of the model: its statistics over 8 rows are noise (BatchNorm1d
# standardises each feature over the batch alone), so the probe then runs at a batch BN can use.
BN_BATCH = 32
SEQUENCE = 32
_SPATIAL = {1: (64,), 2: (32, 32), 3: (8, 16, 16)}
_DTYPES = {
    "float32": torch.float32, "float": torch.float32, "float64": torch.float64, "double": torch.float64,
    "float16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
    "int64": torch.int64, "long": torch.int64, "int32": torch.int32, "int": torch.int32, "bool": torch.bool,
}

MakeInputs = Callable[[], Any]


def parse_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[name.lower().removeprefix("torch.")]
    except KeyError:
        raise GradhealthError(f"unknown --input-dtype {name!r}; use one of {', '.join(sorted(_DTYPES))}") from None


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))  # "8,,3" or "8,x" is a typo
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise GradhealthError(f"bad --input-shape {text!r}: give positive sizes like 8,3,32,32")
    if len(shape) > MAX_DIMS or math.prod(shape) > MAX_ELEMENTS:
        raise GradhealthError(f"bad --input-shape {text!r}: at most {MAX_DIMS} sizes and {MAX_ELEMENTS:,} elements "
                              "in all; a probe needs a small batch (8,3,32,32), not a training one")
    return shape


def to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def describe(inputs: Any) -> str:
    if isinstance(inputs, torch.Tensor):
        return f"{str(inputs.dtype).removeprefix('torch.')}{list(inputs.shape)}"
    if isinstance(inputs, dict):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in inputs.items()) + "}"
    if isinstance(inputs, (tuple, list)):
        return "(" + ", ".join(describe(v) for v in inputs) + ")"
    return type(inputs).__name__


def _vocabulary(model: nn.Module) -> int:
    emb = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    return emb.num_embeddings if emb is not None else 2


def from_shape(model: nn.Module, shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> MakeInputs:
    if dtype.is_floating_point:
        return lambda: torch.randn(tuple(shape), device=device).to(dtype)
    high = _vocabulary(model)
    return lambda: torch.randint(0, high, tuple(shape), device=device, dtype=dtype)


_FIRST_KINDS = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding, nn.RNNBase)


def _shape_of(layer: nn.Module, batch: int = BATCH) -> tuple[tuple[int, ...], torch.dtype]:
    if isinstance(layer, nn.Embedding):
        return (batch, SEQUENCE), torch.int64
    if isinstance(layer, nn.Linear):
        return (batch, layer.in_features), torch.float32
    if isinstance(layer, nn.RNNBase):
        shape = (batch, SEQUENCE, layer.input_size) if layer.batch_first else (SEQUENCE, batch, layer.input_size)
        return shape, torch.float32
    return (batch, layer.in_channels, *_SPATIAL[len(layer.kernel_size)]), torch.float32


def _code(model: nn.Module, layer: Optional[nn.Module]) -> str:
    """The Python expression that makes the inferred input, for a message to quote."""
    if layer is None:
        return "<input>"
    shape, dtype = _shape_of(layer)
    if dtype.is_floating_point:
        return f"torch.randn{shape}"
    return f"torch.randint(0, {_vocabulary(model)}, {shape})"


class _Reached(BaseException):
    """Raised by the trial's hook at the layer that takes the model's input itself (a BaseException,
    so a forward's own ``except Exception`` cannot swallow it)."""


def _reached_first(model: nn.Module, layers: list[tuple[str, nn.Module]],
                   make: MakeInputs) -> Optional[tuple[str, nn.Module]]:
    """The first of ``layers`` that a forward on ``make()`` feeds the input tensor itself, the forward
    stopped right there (so it costs nothing beyond it); else the first of them it ran at all (a
    positional embedding before the token one), else None (it raised or returned before any).  The
    model is left as found: eval mode for the trial (BatchNorm statistics untouched), no grad, RNG
    restored."""
    from gradcheck_tool.probe.engine import call_model

    reached: list[tuple[str, nn.Module]] = []

    def watch(name: str):
        def hook(layer, args):
            reached.append((name, layer))
            if args and args[0] is inputs:
                raise _Reached()
        return hook

    handles = [layer.register_forward_pre_hook(watch(name)) for name, layer in layers]
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            inputs = make()
            call_model(model, inputs)
    except _Reached:
        return reached[-1]
    except Exception:  # noqa: BLE001 - a failed trial says only which layer ran first, if any
        pass
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return reached[0] if reached else None


def first_layer(model: nn.Module, device: torch.device = torch.device("cpu")) -> Optional[tuple[str, nn.Module]]:
    """The first Linear/Conv/Embedding/RNN layer the forward runs, found by trying candidates: start
    from the first registered, feed inputs shaped for it, and move to the layer the forward actually
    reaches first until the guess and the layer reached agree.  Registration order is not execution
    order (a Transformer LM registers its encoder before its embedding)."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _FIRST_KINDS)]
    if not layers:
        return None
    guess, tried = layers[0], []
    while len(tried) < len(layers):
        tried.append(_shape_of(guess[1]))
        reached = _reached_first(model, layers, from_shape(model, *tried[-1], device))
        if reached is not None and _shape_of(reached[1]) == tried[-1]:
            return reached  # the inputs fit the layer the forward runs first
        if reached is not None and _shape_of(reached[1]) not in tried:
            guess = reached
            continue
        untried = [layer for layer in layers if _shape_of(layer[1]) not in tried]
        if reached is not None or not untried:
            break
        guess = untried[0]  # the forward failed before any layer: try the next kind of input
    return layers[0]


def check_forward(model: nn.Module, filename: str, first: Optional[nn.Module] = None) -> None:
    """A forward that needs more than the one input gradhealth makes: name what it needs and show the
    example_inputs() to write (positional and keyword arguments as ``(args, kwargs)``)."""
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return
    required = [p for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    positional = [p for p in required if p.kind is not p.KEYWORD_ONLY]
    extra = positional[1:] + [p for p in required if p.kind is p.KEYWORD_ONLY]
    if not extra:
        return
    args = [_code(model, first)] + [f"<{p.name}>" for p in positional[1:]]
    keywords = [f'"{p.name}": <{p.name}>' for p in required if p.kind is p.KEYWORD_ONLY]
    value = f"({', '.join(args)},), {{{', '.join(keywords)}}}" if keywords else ", ".join(args)
    signature = ", ".join(p.name for p in parameters)
    raise GradhealthError(
        f"{type(model).__name__}.forward({signature}) needs {', '.join(p.name for p in extra)} besides the input "
        f"gradhealth can make: define example_inputs() in {filename} that returns every argument, "
        f'e.g. "def example_inputs(): return {value}"')


def as_call(model: nn.Module, value: Any, what: str = "example_inputs()") -> Any:
    """``example_inputs()``'s value as the probe passes it: a tensor (one argument), a tuple (positional
    arguments), a dict (keyword arguments), or a pair ``(args_tuple, kwargs_dict)`` for both, which is
    bound to forward's signature and passed as keywords."""
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (tuple, list))
            and isinstance(value[1], dict)):
        return value
    args, kwargs = value
    signature = inspect.signature(model.forward)
    if any(p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY) for p in signature.parameters.values()):
        raise GradhealthError(f"{what} returned (args, kwargs), but {type(model).__name__}.forward takes "
                              "positional-only or *args parameters: return a tuple of positional arguments")
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as err:
        raise GradhealthError(f"{what} returned (args, kwargs) that {type(model).__name__}.forward does not "
                              f"take: {err}") from None
    out: dict[str, Any] = {}
    for name, argument in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(argument)
        else:
            out[name] = argument
    return out


def infer(model: nn.Module, device: torch.device, filename: str = "the file") -> tuple[MakeInputs, str]:
    """Random inputs shaped for the first Linear/Conv/Embedding/RNN layer the forward runs."""
    registered = next((m for m in model.modules() if isinstance(m, _FIRST_KINDS)), None)
    check_forward(model, filename, registered)
    found = first_layer(model, device)
    if found is None:
        raise GradhealthError(
            f"cannot infer inputs for {type(model).__name__}: no Linear, Conv, Embedding or RNN layer; "
            f"define example_inputs() in {filename} or pass --input-shape"
        )
    name, layer = found
    batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    batch = BN_BATCH if batch_norm else BATCH
    shape, dtype = _shape_of(layer, batch)
    make = from_shape(model, shape, dtype, device)
    note = f" (batch {batch}: BatchNorm needs batch statistics)" if batch_norm else ""
    return make, f"inferred from {name or 'the model'} ({type(layer).__name__}): {describe(make())}{note}"
