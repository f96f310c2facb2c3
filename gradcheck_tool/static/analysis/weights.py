"""How a file uses its tensors: which are multiplied into activations as weights, which are
a module's inputs, which are normalised before use (read by GH206)."""
from __future__ import annotations

import re
from functools import cached_property
from typing import Iterator, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.analysis.names import dotted, last, subtree

# A trainable torch.randn(...) is only a fan-in weight with evidence: multiplied into the
# activations somewhere in the file, or named like a weight. Tables of scores (a CRF's
# transition matrix, logits) and inputs (GAN noise, latent codes) are not scaled maps.
# (Patterns compiled by `re` on first use: only a file with a trainable randn needs them.)
_WEIGHT_NAME = r"(?i)weight|kernel|proj|^w[a-z]?\d*(_|$)"
_NOT_A_MAP = r"^(trans|transitions?|crf|potentials?|scores?|logits?|noise|ideas?|latents?)$"
_MATMUL_FUNCTIONS = frozenset({"mm", "matmul", "bmm", "linear", "einsum", "addmm", "mv",
                               "baddbmm", "addbmm", "bilinear", "tensordot"})
# Views of a tensor that keep it the same weight: `w.t()`, `w.T`, `w.data`.
_VIEWS = frozenset({"t", "T", "mT", "data", "transpose", "permute", "view", "reshape",
                    "contiguous", "to", "unsqueeze"})



def used_as_weight(uses: "Uses", target: str) -> bool:
    leaf = last(target)
    tokens = [t.lower() for t in re.split(r"[_\d]+", leaf) if t]
    if not tokens or tokens[0] == "z" or any(re.match(_NOT_A_MAP, t) for t in tokens):
        return False  # `z = torch.randn(...)`, `self.transitions`, `G_ideas`
    if target in uses.model_inputs:
        return False  # `G(G_ideas)`: the input of a module, not one of its weights
    return target in uses.multiplied or bool(re.search(_WEIGHT_NAME, leaf))


class Uses:
    """How the file uses its tensors; each part read on first use, so only files with a
    candidate pay for the walk."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx

    @cached_property
    def _read(self) -> tuple[frozenset, frozenset]:
        ctx, multiplied, inputs = self.ctx, set(), set()
        for site in ctx.facts.calls:
            call, name = site.node, site.name or ""
            if _is_module(ctx, call.func):
                inputs.update(_operand(a.value) for a in call.args)
            elif last(name) in _MATMUL_FUNCTIONS and (last(name) != "linear" or name.startswith(
                    ("torch.", "F.", "nn.functional."))):  # F.linear, not a `self.linear` layer
                operands = [a.value for a in call.args]
                if isinstance(call.func, syntax.Attribute):
                    operands.append(call.func.value)  # w.mm(x)
                multiplied.update(_operand(o) for o in operands)
        for node in _matmuls(ctx.module):
            multiplied.update((_operand(node.left), _operand(node.right)))
        return frozenset(multiplied - {None}), frozenset(inputs - {None})

    @property
    def multiplied(self) -> frozenset:  # dotted names used as a matmul operand
        return self._read[0]

    @property
    def model_inputs(self) -> frozenset:  # dotted names passed to a module call: `net(x)`
        return self._read[1]

    @cached_property
    def normalized(self) -> frozenset:
        """Tensors the file normalises before use (cosine classifiers, weight norm): their
        scale never reaches the activations."""
        return frozenset({dotted(a.value) for s in self.ctx.facts.calls if last(s.name) in _NORMALIZERS
                          for a in s.node.args} - {None})


def _matmuls(module: syntax.Module) -> Iterator[syntax.BinaryOperation]:
    for node in subtree(module):
        if isinstance(node, syntax.BinaryOperation) and isinstance(node.operator,
                                                                 syntax.MatrixMultiply):
            yield node


def _operand(node: syntax.CSTNode) -> Optional[str]:
    """The tensor an operand is a view of: ``w`` for ``w``, ``w.t()``, ``w.T``, ``w.data``."""
    while True:
        if isinstance(node, syntax.Call) and isinstance(node.func, syntax.Attribute) and \
                node.func.attr.value in _VIEWS:
            node = node.func.value
        elif isinstance(node, syntax.Attribute) and node.attr.value in _VIEWS:
            node = node.value
        else:
            return dotted(node)


def _is_module(ctx: SourceContext, func: syntax.CSTNode) -> bool:
    """``net(x)`` where ``net`` was built by a class: ``G = nn.Sequential(...)``, ``Net()``."""
    made = ctx.facts.constructed(dotted(func))
    return bool(made) and last(made)[:1].isupper()


_NORMALIZERS = frozenset({"normalize", "weight_norm", "spectral_norm"})


def is_parameter(ctx: SourceContext, node: Optional[syntax.CSTNode]) -> bool:
    return isinstance(node, syntax.Call) and last(ctx.facts.imports.resolve(node.func)) == "Parameter"
