"""What kind of layer a module is, as plain strings the rules can read without torch."""
from __future__ import annotations

from typing import Optional

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


def activation_family(module: nn.Module) -> Optional[str]:
    cls = type(module)
    if hasattr(cls, "family_name"):  # probe/functional.py's stand-ins: named for the nn class they extend
        cls = cls.__mro__[1]
    name = cls.__name__
    if isinstance(module, (nn.Softmax, nn.LogSoftmax)):
        return None
    for token, family in _FAMILIES:
        if token.lower() in name.lower():
            return family
    return None


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
