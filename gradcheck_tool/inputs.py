"""Probe inputs: the user's ``example_inputs()``, ``--input-shape``, or inferred from the first layer."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from gradcheck_tool.errors import GradhealthError

BATCH = 8
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


def first_layer(model: nn.Module) -> Optional[tuple[str, nn.Module]]:
    kinds = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding, nn.RNNBase)
    return next(((n, m) for n, m in model.named_modules() if isinstance(m, kinds)), None)


def infer(model: nn.Module, device: torch.device) -> tuple[MakeInputs, str]:
    """Random inputs shaped for the first Linear/Conv/Embedding/RNN layer the model registers."""
    found = first_layer(model)
    if found is None:
        raise GradhealthError(
            f"cannot infer inputs for {type(model).__name__}: no Linear, Conv, Embedding or RNN layer; "
            "define example_inputs() or pass --input-shape"
        )
    name, layer = found
    batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    batch = BN_BATCH if batch_norm else BATCH
    if isinstance(layer, nn.Embedding):
        shape, make = (batch, SEQUENCE), from_shape(model, (batch, SEQUENCE), torch.int64, device)
    else:
        if isinstance(layer, nn.Linear):
            shape = (batch, layer.in_features)
        elif isinstance(layer, nn.RNNBase):
            shape = (batch, SEQUENCE, layer.input_size) if layer.batch_first else (SEQUENCE, batch, layer.input_size)
        else:
            dims = len(layer.kernel_size)
            shape = (batch, layer.in_channels, *_SPATIAL[dims])
        make = from_shape(model, shape, torch.float32, device)
    note = f" (batch {batch}: BatchNorm needs batch statistics)" if batch_norm else ""
    return make, f"inferred from {name or 'the model'} ({type(layer).__name__}): {describe(make())}{note}"
