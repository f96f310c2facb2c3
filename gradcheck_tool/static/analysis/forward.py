"""How many saturating calls a value has been through, reading one function's code.

``x = torch.tanh(self.fc1(x)); x = torch.tanh(self.fc2(x)); ...`` is a stack of depth n
even though no ``nn.Sequential`` says so. Assignments carry a depth per name; a
``for`` over ``range(k)`` (or over a ModuleList of known length) is unrolled; a
normalisation call resets the depth; an additive path (``x + f(x)``, an LSTM's
``f * c + i * g``) keeps the old depth, because the gradient has a way around.
"""
from __future__ import annotations

import re
from typing import Iterator, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.static.analysis.facts import FileFacts, Scope, attr_name
from gradcheck_tool.static.analysis.names import dotted, identifiers, is_torch_nn, last
from gradcheck_tool.static.analysis.stacks import SATURATING_LAYERS, blocks, body_of, iterations

SATURATING_FUNCTIONS = frozenset({"sigmoid", "tanh", "hardtanh", "hardsigmoid", "softsign",
                                  "sigmoid_", "tanh_", "expit"})
_NORM = re.compile(r"(^|_)(bn|ln|gn)\d*$|norm", re.IGNORECASE)
_MAX_UNROLL = 16  # enough to cross any threshold worth reporting; keeps huge ranges cheap


def saturating_call(call: syntax.Call, facts: FileFacts) -> bool:
    func = call.func
    leaf = func.attr.value if isinstance(func, syntax.Attribute) else last(facts.imports.resolve(func))
    if leaf in SATURATING_FUNCTIONS:
        return True  # torch.tanh(x), F.sigmoid(x), x.sigmoid(), layer(x).tanh()
    if _saturating_alias(dotted(func), facts):
        return True  # ACTIVATION = torch.tanh; ...; ACTIVATION(x)
    if isinstance(func, syntax.Call):
        return is_torch_nn(facts.imports.resolve(func.func), *SATURATING_LAYERS)  # nn.Tanh()(x)
    return is_torch_nn(facts.constructed(dotted(func)), *SATURATING_LAYERS)  # self.act(x)


def _saturating_alias(name: Optional[str], facts: FileFacts) -> bool:
    """A name bound once, to torch's own tanh/sigmoid function (not to a call of it): a
    rebound name or a parameter could hold anything by the time it is called."""
    if not name or name not in facts.bound_once:
        return False
    value = facts.values.get(name)
    target = facts.imports.resolve(value) if isinstance(value, (syntax.Name, syntax.Attribute)) else None
    return bool(target) and last(target) in SATURATING_FUNCTIONS and target.startswith(
        ("torch.", "F.", "nn.functional."))


def _norm_call(call: syntax.Call, facts: FileFacts) -> bool:
    name = facts.imports.resolve(call.func) or ""
    return bool(_NORM.search(last(name))) or "Norm" in (facts.constructed(name) or "")


class ForwardDepth:
    """Saturating calls a value has passed through in a row, following one function's code."""

    def __init__(self, facts: FileFacts) -> None:
        self.facts = facts
        self.found: list = []  # (call, depth) for every saturating call evaluated, in order

    def run(self, scope: Scope) -> None:
        decorators = getattr(scope, "decorators", ())
        if not any(self._no_grad(d.decorator) for d in decorators):
            self._block(body_of(scope), {})

    def _no_grad(self, node: syntax.CSTNode) -> bool:
        """Code under ``torch.no_grad()``/``inference_mode()`` (sampling, evaluation)
        sends no gradient back, so how many tanh calls it chains does not matter."""
        call = node.func if isinstance(node, syntax.Call) else node
        return last(self.facts.imports.resolve(call)) in ("no_grad", "inference_mode")

    def _block(self, statements, env: dict) -> None:
        for stmt in statements:
            if isinstance(stmt, (syntax.SimpleStatementLine, syntax.SimpleStatementSuite)):
                for small in stmt.body:
                    self._small(small, env)
            elif isinstance(stmt, syntax.For):
                count = iterations(stmt.iter, self.facts) or 1
                for _ in range(min(count, _MAX_UNROLL)):
                    self._block(body_of(stmt), env)
            elif isinstance(stmt, syntax.If):
                self.depth(stmt.test, env)
                branches = []
                for block in blocks(stmt):
                    branch = dict(env)
                    self._block(block, branch)
                    branches.append(branch)
                if len(branches) == 1:
                    branches.append(dict(env))
                for name in set().union(*branches):
                    env[name] = min(b.get(name, env.get(name, 0)) for b in branches)
            elif isinstance(stmt, syntax.With) and any(self._no_grad(i.item) for i in stmt.items):
                continue
            elif isinstance(stmt, (syntax.With, syntax.While, syntax.Try)):
                for block in blocks(stmt):
                    self._block(block, env)

    def _small(self, small: syntax.CSTNode, env: dict) -> None:
        if isinstance(small, (syntax.Assign, syntax.AnnAssign)) and small.value is not None:
            targets = [t.target for t in small.targets] if isinstance(small, syntax.Assign) \
                else [small.target]
            depth = self.depth(small.value, env)
            for target in targets:
                for name in _names(target):
                    # `c = f * c + i * g`, `h = h + block(h)`: an additive path carries the
                    # old value through untouched (LSTM cell state, residual stream).
                    env[name] = env.get(name, 0) if _carries(small.value, name) else depth
        elif isinstance(small, syntax.AugAssign):
            depth = self.depth(small.value, env)
            name = dotted(small.target)
            if name and not isinstance(small.operator, (syntax.AddAssign, syntax.SubtractAssign)):
                env[name] = max(env.get(name, 0), depth)
        elif isinstance(small, (syntax.Expr, syntax.Return)) and small.value is not None:
            self.depth(small.value, env)

    def depth(self, node: syntax.CSTNode, env: dict) -> int:
        if isinstance(node, syntax.Name):
            return env.get(node.value, 0)
        if isinstance(node, syntax.Call):
            parts = [self.depth(a.value, env) for a in node.args]
            if isinstance(node.func, (syntax.Attribute, syntax.Call)):
                parts.append(self.depth(node.func, env))
            inner = max(parts, default=0)
            if _norm_call(node, self.facts) or attr_name(node) in ("detach", "detach_"):
                return 0  # renormalised, or cut off from the gradient entirely
            if saturating_call(node, self.facts):
                self.found.append((node, inner + 1))
                return inner + 1
            return inner
        if isinstance(node, syntax.BinaryOperation):
            if isinstance(node.operator, (syntax.Add, syntax.Subtract)):
                terms = _summands(node)
                for term in terms:
                    if isinstance(term, syntax.Name) and any(
                            term.value in identifiers(t) for t in terms if t is not term):
                        for t in terms:
                            self.depth(t, env)
                        return env.get(term.value, 0)  # x + f(x): the skip path
            return max(self.depth(node.left, env), self.depth(node.right, env))
        if isinstance(node, (syntax.Attribute, syntax.Subscript)):
            return self.depth(node.value, env)
        if isinstance(node, (syntax.UnaryOperation, syntax.Await)):
            return self.depth(node.expression, env)
        if isinstance(node, (syntax.Tuple, syntax.List)):
            return max((self.depth(e.value, env) for e in node.elements), default=0)
        if isinstance(node, syntax.IfExp):
            return max(self.depth(node.body, env), self.depth(node.orelse, env))
        return 0


def _summands(node: syntax.CSTNode) -> list:
    """The terms of ``a + b - c`` (iteratively: such chains can be thousands long)."""
    terms, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, syntax.BinaryOperation) and isinstance(
                current.operator, (syntax.Add, syntax.Subtract)):
            stack.extend((current.right, current.left))
        else:
            terms.append(current)
    return terms


def _carries(value: syntax.CSTNode, name: str) -> bool:
    terms = _summands(value)
    return len(terms) > 1 and any(
        not isinstance(t, syntax.Call) and name in identifiers(t) for t in terms)


def _names(target: syntax.CSTNode) -> Iterator[str]:
    if isinstance(target, (syntax.Tuple, syntax.List)):
        for element in target.elements:
            yield from _names(element.value)
    elif isinstance(target, syntax.Name):
        yield target.value
