"""Activations called as functions (``F.relu(self.fc1(x))``, ``torch.tanh(h)``, ``x.sigmoid()``)
counted like activation modules, so dead units, saturation and the activation an init must fit
are seen in models that never build an ``nn.ReLU``.

A ``TorchFunctionMode`` is active during the probe's forward passes only.  Each call of a
function in ``_TABLE`` made outside a watched leaf module's own forward (``nn.GELU`` calls
``F.gelu`` itself; a custom cell's gates are its own business) becomes a pseudo-layer named
after the module whose output it was applied to: ``F.relu(self.fc1(x))`` is ``fc1.relu()``
(a runtime finding then points at ``fc1``'s line), and when the input is not a module's
output (``F.relu(out + identity)``), after the module that ran last.  Its stand-in module is
an instance of the matching activation class, so everything downstream treats it as one.

The same mode notes every ``nn.Parameter`` an op takes and that yields a tensor (``F.linear``,
``p.detach()``, ``p.data``; not ``p.dtype``): a parameter the forward consumed but that got no
gradient was cut off from the loss (``.detach()``, ``.data``, ``torch.no_grad()``, a numpy round
trip), one it never consumed is simply unused in this mode (GH112).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


def _stand_in(base: type, name: str) -> type:
    return type(f"F.{name}", (base,), {"family_name": name})


_TABLE: dict[Callable, type] = {}
for _funcs, _cls in (
    ((F.relu, torch.relu, torch.Tensor.relu, torch.relu_, torch.Tensor.relu_), _stand_in(nn.ReLU, "relu")),
    ((F.relu6,), _stand_in(nn.ReLU6, "relu6")),
    ((F.leaky_relu, F.leaky_relu_), _stand_in(nn.LeakyReLU, "leaky_relu")),
    ((F.gelu,), _stand_in(nn.GELU, "gelu")),
    ((F.silu,), _stand_in(nn.SiLU, "silu")),
    ((F.elu, F.elu_), _stand_in(nn.ELU, "elu")),
    ((F.selu, torch.selu, torch.selu_), _stand_in(nn.SELU, "selu")),
    ((F.softplus,), _stand_in(nn.Softplus, "softplus")),
    ((torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid, torch.sigmoid_, torch.Tensor.sigmoid_),
     _stand_in(nn.Sigmoid, "sigmoid")),
    ((torch.tanh, torch.Tensor.tanh, F.tanh, torch.tanh_, torch.Tensor.tanh_), _stand_in(nn.Tanh, "tanh")),
):
    for _func in _funcs:
        _TABLE[_func] = _cls


class FunctionalActivations(TorchFunctionMode):
    """Hands each functional activation's output to ``record(name, stand_in_class, output)``.

    ``producer(tensor)`` names the module whose output a tensor is (or None), ``last()`` the
    module that ran last, ``inside()`` whether a watched leaf module's forward is running.
    """

    def __init__(self, record: Callable[[str, type, torch.Tensor], None],
                 producer: Callable[[torch.Tensor], Optional[str]], last: Callable[[], str],
                 inside: Callable[[], bool], consumed: Optional[set[int]] = None):
        super().__init__()
        self._record, self._producer, self._last, self._inside = record, producer, last, inside
        self._consumed = consumed

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if self._consumed is not None and isinstance(result, torch.Tensor):
            for arg in args:
                if isinstance(arg, nn.Parameter):
                    self._consumed.add(id(arg))
                elif isinstance(arg, (list, tuple)):
                    self._consumed.update(id(a) for a in arg if isinstance(a, nn.Parameter))
            if kwargs:
                self._consumed.update(id(a) for a in kwargs.values() if isinstance(a, nn.Parameter))
        cls = _TABLE.get(func)
        if cls is None or self._inside() or not isinstance(result, torch.Tensor) or not args:
            return result
        source = args[0] if isinstance(args[0], torch.Tensor) else None
        owner = (self._producer(source) if source is not None else None) or self._last()
        self._record(f"{owner}.{cls.family_name}()" if owner else f"{cls.family_name}()", cls, result)
        return result
