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

The same mode notes how the forward uses each ``nn.Parameter`` (``ParamUse``, read by GH112): every
parameter an op takes and that yields a tensor (``F.linear``, ``p.data``; not ``p.dtype``); the ones
whose op yields a tensor cut from autograd (``p.detach()``, ``p.data``, any op under
``torch.no_grad()``); and the modules whose output is detached or leaves torch (``.detach()``,
``.numpy()``, ``.tolist()``, ``.item()``).  A parameter the forward never took is unused in this
mode, one whose gradient was cut is a bug.

On the first pass the mode also hands every softmax and attention call to ``AttentionProbe``
(probe/attention.py: the entropy GH114 reads).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from gradcheck_tool.probe.attention import OPS as ATTENTION_OPS, AttentionProbe


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


# Ops whose result leaves autograd: a module output passed to one is cut from the loss.
_CUTTERS = frozenset({torch.Tensor.detach, torch.detach, torch.Tensor.numpy, torch.Tensor.tolist, torch.Tensor.item})


@dataclass
class ParamUse:
    """What one forward did with the parameters, by ``id``, and which modules' outputs it cut."""

    consumed: set[int] = field(default_factory=set)
    cut: set[int] = field(default_factory=set)
    cut_modules: set[str] = field(default_factory=set)

    def note(self, func, args, kwargs, result, producer: Callable[[torch.Tensor], Optional[str]]) -> None:
        if func in _CUTTERS and args and isinstance(args[0], torch.Tensor):
            owner = producer(args[0])
            if owner is not None:
                self.cut_modules.add(owner)
        if not isinstance(result, torch.Tensor):
            return
        params = [a for a in args if isinstance(a, nn.Parameter)]
        for arg in args:
            if isinstance(arg, (list, tuple)):
                params += [a for a in arg if isinstance(a, nn.Parameter)]
        if kwargs:
            params += [a for a in kwargs.values() if isinstance(a, nn.Parameter)]
        self.consumed.update(id(p) for p in params)
        if params and result.is_floating_point() and not result.requires_grad:
            self.cut.update(id(p) for p in params if p.requires_grad)


class FunctionalActivations(TorchFunctionMode):
    """Hands each functional activation's output to ``record(name, stand_in_class, output)``.

    ``producer(tensor)`` names the module whose output a tensor is (or None), ``last()`` the
    module that ran last, ``inside()`` whether a watched leaf module's forward is running.
    """

    def __init__(self, record: Callable[[str, type, torch.Tensor], None],
                 producer: Callable[[torch.Tensor], Optional[str]], last: Callable[[], str],
                 inside: Callable[[], bool], uses: Optional[ParamUse] = None,
                 attention: Optional[AttentionProbe] = None):
        super().__init__()
        self._record, self._producer, self._last, self._inside = record, producer, last, inside
        self._uses, self._attention = uses, attention

    def _site(self) -> str:
        """Where an attention op sits: the block whose submodule ran last (``h.0.attn`` after ``h.0.attn.c_attn``)."""
        last = self._last()
        return last.rpartition(".")[0] or last

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if self._uses is not None:
            self._uses.note(func, args, kwargs, result, self._producer)
        if self._attention is not None and func in ATTENTION_OPS:
            source = args[0] if args and isinstance(args[0], torch.Tensor) else None
            self._attention.note(func, args, kwargs or {}, self._site,
                                 source is not None and self._producer(source) is not None)
        cls = _TABLE.get(func)
        if cls is None or self._inside() or not isinstance(result, torch.Tensor) or not args:
            return result
        source = args[0] if isinstance(args[0], torch.Tensor) else None
        owner = (self._producer(source) if source is not None else None) or self._last()
        self._record(f"{owner}.{cls.family_name}()" if owner else f"{cls.family_name}()", cls, result)
        return result
