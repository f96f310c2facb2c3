"""Tensors that learn in the forward but that ``model.parameters()`` does not list (GH113).

``nn.Module.__setattr__`` registers a module or ``nn.Parameter`` assigned to an attribute; one
inside a plain ``list``, ``tuple`` or ``dict`` (``self.layers = [nn.Linear(8, 8) for _ in
range(4)]``), or a plain tensor with ``requires_grad=True`` (``self.w = torch.randn(8,
requires_grad=True)``), is an ordinary Python attribute: its weights get gradients, but the
optimizer built from ``model.parameters()`` never updates them, ``.to(device)`` does not move them
and ``state_dict()`` does not save them.

``UnregisteredWatch.find`` walks the first probe batch's autograd graph from the model's outputs to
its ``AccumulateGrad`` leaves (tensors that require grad), before the backward.  A leaf that is not a
registered parameter and not one of the probe's inputs is looked up among the plain containers and
tensor attributes of the model's modules (``plain_held``), which name the attribute that holds it;
a leaf no attribute holds (a tensor made in forward, a module of another object) is not reported.
After every backward the watch reads their gradient and gives them back the ``.grad`` they had.
The graph walk is a Python loop over the nodes once per scan (a few ms for a 12-layer transformer).
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn

from gradcheck_tool.probe.record import Unregistered

_INTERNAL = frozenset(vars(nn.Module()))  # nn.Module's own bookkeeping attributes
_DEPTH = 3  # nested containers looked into


def _held(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(path, module or tensor) for every module or tensor inside a plain container."""
    if isinstance(value, (nn.Module, torch.Tensor)):
        yield path, value
    elif depth < _DEPTH and isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _held(item, f"{path}[{i}]", depth + 1)
    elif depth < _DEPTH and isinstance(value, dict):
        for key, item in value.items():
            yield from _held(item, f"{path}[{key!r}]", depth + 1)


def plain_held(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, list[tuple[str, Any]]]]:
    """(attribute path, its owner, container kind, [(path, module or tensor)]) for each attribute of a
    module of ``model`` that holds modules or tensors without registering them."""
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr in _INTERNAL or isinstance(value, nn.Module):
                continue
            path = f"{name}.{attr}" if name else attr
            if isinstance(value, torch.Tensor):
                if value.requires_grad and not isinstance(value, nn.Parameter):
                    yield path, module, "tensor", [(path, value)]
                continue
            if isinstance(value, (list, tuple, dict)):
                items = list(_held(value, path, 0))
                if items:
                    yield path, module, type(value).__name__, items


def registrable(value: Any) -> bool:
    """Whether nn.ModuleList / nn.ModuleDict would take ``value`` as it is."""
    if isinstance(value, dict):
        return bool(value) and all(isinstance(k, str) and isinstance(v, nn.Module) for k, v in value.items())
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, nn.Module) for v in value)


def _graph_leaves(outputs: list[torch.Tensor]) -> dict[int, torch.Tensor]:
    leaves: dict[int, torch.Tensor] = {}
    seen: set[int] = set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            leaves[id(variable)] = variable
            continue
        stack.extend(f for f, _ in node.next_functions if f is not None)
    return leaves


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


class UnregisteredWatch:
    def __init__(self, model: nn.Module):
        self._model = model
        # (attribute path, owner, container kind, [(path, tensor)], [(path, module)]) per holding attribute
        self._found: list[tuple[str, nn.Module, str, list[tuple[str, torch.Tensor]], list[tuple[str, nn.Module]]]] = []
        self._prior: dict[int, Any] = {}
        self._norms: dict[int, float] = {}

    def find(self, outputs: list[torch.Tensor], inputs: Any) -> None:
        registered = {id(p) for p in self._model.parameters()} | {id(t) for t in _tensors(inputs)}
        leaves = {key: t for key, t in _graph_leaves(outputs).items() if key not in registered}
        if not leaves:
            return
        for holder, owner, container, items in plain_held(self._model):
            tensors, modules = [], []
            for path, obj in items:
                if isinstance(obj, nn.Module):
                    named = [(f"{path}.{n}", p) for n, p in obj.named_parameters()]
                    if any(id(p) in leaves for _, p in named):
                        modules.append((path, obj))
                else:
                    named = [(path, obj)]
                tensors += [(n, t) for n, t in named if id(t) in leaves and id(t) not in self._prior]
                self._prior.update((id(t), t.grad) for n, t in named if id(t) in leaves)
            if tensors:
                self._found.append((holder, owner, container, tensors, modules))

    def after_backward(self, first: bool) -> None:
        """Read the gradient the pass gave each tensor (on the first pass), and restore its .grad."""
        for _, _, _, tensors, _ in self._found:
            for _, t in tensors:
                prior = self._prior[id(t)]
                if first and t.grad is not None:
                    g = t.grad.detach() - (prior if prior is not None else 0)
                    self._norms[id(t)] = float(torch.linalg.vector_norm(g.float()))
                t.grad = prior

    def result(self) -> tuple[Unregistered, ...]:
        out = []
        for holder, owner, container, tensors, modules in self._found:
            norms = [self._norms[id(t)] for _, t in tensors if id(t) in self._norms]
            out.append(Unregistered(
                holder=holder, owner_type=type(owner).__name__, container=container,
                tensors=tuple(n for n, _ in tensors), numel=sum(t.numel() for _, t in tensors),
                grad_norm=sum(v * v for v in norms) ** 0.5 if norms else None,
                modules=tuple(type(m).__name__ for _, m in modules),
                eval_mode=bool(modules) and not any(m.training for _, m in modules),
                site=modules[0][0] if modules else holder,
                registrable=registrable(getattr(owner, holder.rpartition(".")[2], None))))
        return tuple(out)
