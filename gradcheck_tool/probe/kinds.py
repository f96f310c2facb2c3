"""What kind of layer a module is, as plain strings the rules can read without torch."""
from __future__ import annotations

from typing import Optional

import torch

from torch import nn

# Activation family by class name.  "relu" is the only family whose units can die
# (an exact zero and zero slope below the kink); sigmoid/tanh saturate.
_FAMILIES = (
    ("ReLU6", "relu"), ("LeakyReLU", "leaky_relu"), ("PReLU", "leaky_relu"), ("RReLU", "leaky_relu"),
    ("ReLU", "relu"), ("SELU", "selu"), ("CELU", "elu"), ("ELU", "elu"), ("GELU", "gelu"),
    ("SiLU", "silu"), ("Swish", "silu"), ("Mish", "silu"), ("Hardswish", "silu"),
    ("Hardsigmoid", "sigmoid"), ("LogSigmoid", "sigmoid"), ("Sigmoid", "sigmoid"),
    ("Hardtanh", "tanh"), ("Tanh", "tanh"), ("Softsign", "tanh"), ("Softplus", "softplus"),
)
SATURATING = {"sigmoid": ("Sigmoid",), "tanh": ("Tanh",)}


_EXACT = dict(_FAMILIES)
# Longest token first, so a name is never matched by a token inside a longer one: "GELU" is
# not "ELU", "LeakyReLU" is not "ReLU", "Hardsigmoid" is not "Sigmoid".
_BY_LENGTH = sorted(_FAMILIES, key=lambda item: -len(item[0]))


def activation_family(module: nn.Module) -> Optional[str]:
    """The family of an activation module: its class (or the torch.nn class it extends) by exact
    name, else the longest family token in a library's own class name (transformers'
    ``NewGELUActivation`` is gelu, ``SiLUActivation`` silu)."""
    if isinstance(module, (nn.Softmax, nn.LogSoftmax)):
        return None
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch.nn") and cls.__name__ in _EXACT:
            return _EXACT[cls.__name__]
    name = type(module).__name__.lower()
    return next((family for token, family in _BY_LENGTH if token.lower() in name), None)


def is_dead_capable(module: nn.Module) -> bool:
    return isinstance(module, (nn.ReLU, nn.ReLU6))


def saturating_kind(module: nn.Module) -> Optional[str]:
    if isinstance(module, nn.Sigmoid):
        return "sigmoid"
    if isinstance(module, nn.Tanh):
        return "tanh"
    return None


def is_channel_first(module: nn.Module) -> bool:
    """Conv and BatchNorm outputs carry units on dim 1; everything else on the last dim."""
    return isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.GroupNorm))


_NORM_NAMES = (("RMSNorm", "rms"), ("LayerNorm", "layer"), ("GroupNorm", "group"), ("InstanceNorm", "instance"),
               ("BatchNorm", "batch"))


def normalisation(module: nn.Module) -> Optional[str]:
    """"batch", "layer", "group", "instance" or "rms" for a layer that normalises its input's scale
    away (torch's classes and libraries' own, e.g. transformers' ``LlamaRMSNorm`` and
    ``T5LayerNorm``), else None."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "batch"
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return "instance"
    name = type(module).__name__
    return next((kind for token, kind in _NORM_NAMES if name.endswith(token) or token + "Layer" in name), None)


def primary_weight(module: nn.Module) -> Optional[torch.Tensor]:
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.RNNBase):
        weight = getattr(module, "weight_ih_l0", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        return None
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        weight = weight.t()  # transformers' GPT-2 Conv1D stores a Linear weight as [in, out]
    return weight
