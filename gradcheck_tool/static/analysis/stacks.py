"""Layer stacks: the saturating layers of each ``nn.Sequential``, counted in order.

The layers may come from a literal, a ``[...] * n``, a comprehension over ``range(n)``,
or a list grown by ``append``/``extend``/``+=`` in a ``for _ in range(n)`` loop; where a
count is not a literal (or a name bound once to one), the stack is not reported.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.static.analysis.facts import FileFacts, Scope
from gradcheck_tool.static.analysis.names import (
    children,
    dotted,
    integer,
    is_torch_nn,
    last,
    range_length,
)

SATURATING_LAYERS = ("Sigmoid", "Tanh", "Hardtanh", "Hardsigmoid", "Softsign")


class Run(NamedTuple):
    """An ordered stack summarised so it can be concatenated and repeated: the saturating
    layers before the first barrier, after the last one, and the longest stretch between."""

    total: int = 0
    prefix: int = 0
    suffix: int = 0
    longest: int = 0
    barrier: bool = False  # a normalisation layer, or a module we cannot see into

    def then(self, other: "Run") -> "Run":
        return Run(
            self.total + other.total,
            self.prefix if self.barrier else self.total + other.prefix,
            other.suffix if other.barrier else self.suffix + other.total,
            max(self.longest, other.longest, self.suffix + other.prefix),
            self.barrier or other.barrier,
        )

    def times(self, n: int) -> "Run":
        if n <= 0:
            return EMPTY
        if not self.barrier:
            return Run(*(self.total * n,) * 4)
        return Run(self.total * n, self.prefix, self.suffix,
                   max(self.longest, self.suffix + self.prefix) if n > 1 else self.longest, True)


EMPTY, SATURATING, BARRIER = Run(), Run(1, 1, 1, 1), Run(barrier=True)


def _concat(runs) -> Optional[Run]:
    total = EMPTY
    for run in runs:
        if run is None:
            return None
        total = total.then(run)
    return total


def body_of(scope: Scope) -> tuple:
    body = scope.body
    return tuple(body.body) if isinstance(body, (syntax.IndentedBlock, syntax.SimpleStatementSuite)) \
        else tuple(body)


def _outer_calls(node: syntax.CSTNode) -> Iterator[syntax.Call]:
    """Calls not nested in another call's arguments (``nn.Sequential(...).to(d)`` counts)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (syntax.Lambda, syntax.FunctionDef, syntax.ClassDef)):
            continue
        if isinstance(current, syntax.Call):
            yield current
            stack.append(current.func)
            continue
        stack.extend(children(current))


class LayerStacks:
    """``nn.Sequential`` calls of one scope, each with the Run of its layers."""

    def __init__(self, facts: FileFacts) -> None:
        self.facts = facts

    def in_scope(self, scope: Scope) -> Iterator[tuple[syntax.Call, Run]]:
        yield from self._block(body_of(scope), {})

    def _block(self, statements, env: dict) -> Iterator[tuple[syntax.Call, Run]]:
        for stmt in statements:
            if isinstance(stmt, (syntax.SimpleStatementLine, syntax.SimpleStatementSuite)):
                for small in stmt.body:
                    yield from self._small(small, env)
            elif isinstance(stmt, syntax.For):
                yield from self._loop(stmt, env)
            elif isinstance(stmt, syntax.With):
                yield from self._block(body_of(stmt), env)
            elif isinstance(stmt, (syntax.If, syntax.While, syntax.Try)):
                inner = dict(env)
                for block in blocks(stmt):
                    yield from self._block(block, inner)
                env.update({k: None for k in env if inner.get(k) != env[k]})

    def _loop(self, stmt: syntax.For, env: dict) -> Iterator[tuple[syntax.Call, Run]]:
        count = iterations(stmt.iter, self.facts)
        delta = {k: EMPTY for k in env}
        yield from self._block(body_of(stmt), delta)
        rebound = _assigned(body_of(stmt))
        for name in env:
            grown = delta.get(name)
            if grown == EMPTY and name not in rebound:
                continue
            unknown = count is None or grown is None or env[name] is None or name in rebound
            env[name] = None if unknown else env[name].then(grown.times(count))

    def _small(self, small: syntax.CSTNode, env: dict) -> Iterator[tuple[syntax.Call, Run]]:
        for call in _outer_calls(small):
            if is_torch_nn(self.facts.imports.resolve(call.func), "Sequential"):
                run = self.layers(call, env)
                if run is not None:
                    yield call, run
        if isinstance(small, syntax.Assign) and len(small.targets) == 1:
            name = dotted(small.targets[0].target)
            if name is not None:
                env[name] = self.layers(small.value, env)
        elif isinstance(small, syntax.AugAssign) and dotted(small.target) in env:
            name = dotted(small.target)
            if isinstance(small.operator, syntax.AddAssign):
                env[name] = _concat([env[name], self.layers(small.value, env)])
            else:
                env[name] = None
        elif isinstance(small, syntax.Expr) and isinstance(small.value, syntax.Call):
            func = small.value.func
            if isinstance(func, syntax.Attribute) and dotted(func.value) in env:
                name = dotted(func.value)
                args = small.value.args
                grows = func.attr.value in ("append", "extend") and len(args) == 1
                env[name] = _concat([env[name], self.layers(args[0].value, env)]) if grows else None

    def layers(self, node: syntax.CSTNode, env: dict) -> Optional[Run]:
        if isinstance(node, (syntax.StarredElement, syntax.Element, syntax.Arg)):
            return self.layers(node.value, env)
        if isinstance(node, (syntax.List, syntax.Tuple)):
            return _concat(self.layers(e, env) for e in node.elements)
        if isinstance(node, syntax.Name):
            return env.get(node.value)
        if isinstance(node, syntax.BinaryOperation):
            if isinstance(node.operator, syntax.Add):
                return _concat([self.layers(node.left, env), self.layers(node.right, env)])
            if isinstance(node.operator, syntax.Multiply):
                for seq, n in ((node.left, node.right), (node.right, node.left)):
                    count = integer(n, self.facts.constants)
                    if count is not None:
                        run = self.layers(seq, env)
                        return run.times(count) if run is not None else None
            return None
        if isinstance(node, (syntax.ListComp, syntax.GeneratorExp)):
            comp = node.for_in
            count = iterations(comp.iter, self.facts)
            if comp.ifs or comp.inner_for_in is not None or count is None:
                return None
            run = self.layers(node.elt, env)
            return run.times(count) if run is not None else None
        if isinstance(node, syntax.Call):
            return self._module(node, env)
        return None

    def _module(self, call: syntax.Call, env: dict) -> Optional[Run]:
        name = self.facts.imports.resolve(call.func) or ""
        if is_torch_nn(name, *SATURATING_LAYERS):
            return SATURATING
        if "Norm" in last(name):
            return BARRIER
        if is_torch_nn(name, "Sequential", "ModuleList") or name in ("list", "tuple"):
            return _concat(self.layers(a, env) for a in call.args)
        if last(name) == "OrderedDict" and len(call.args) == 1:
            pairs = call.args[0].value
            if isinstance(pairs, (syntax.List, syntax.Tuple)) and all(
                    isinstance(e.value, syntax.Tuple) and len(e.value.elements) == 2
                    for e in pairs.elements):
                return _concat(self.layers(e.value.elements[1], env) for e in pairs.elements)
            return None
        # torch.nn's other layers are transparent; a user module may hide a norm or a
        # residual connection, so it ends the stretch being counted.
        return EMPTY if name.startswith(("torch.nn.", "nn.")) else BARRIER


def _assigned(body: tuple) -> set:
    """Names a loop body rebinds with ``=``: their growth is not ``append`` repeated."""
    return {dotted(t.target) for stmt in body if isinstance(stmt, syntax.SimpleStatementLine)
            for small in stmt.body if isinstance(small, syntax.Assign) for t in small.targets}


def blocks(stmt: syntax.CSTNode) -> Iterator[tuple]:
    yield body_of(stmt)
    for handler in getattr(stmt, "handlers", ()):
        yield body_of(handler)
    orelse = getattr(stmt, "orelse", None)
    while isinstance(orelse, syntax.If):
        yield body_of(orelse)
        orelse = orelse.orelse
    if orelse is not None:
        yield body_of(orelse)


def iterations(iterable: syntax.CSTNode, facts: FileFacts, hops: int = 0) -> Optional[int]:
    """How many times ``for _ in iterable`` runs: range(...) of constants, a literal list,
    or an attribute bound to a ModuleList/Sequential of known length."""
    count = range_length(iterable, facts.constants)
    if count is not None:
        return count
    if isinstance(iterable, (syntax.List, syntax.Tuple)):
        ok = all(isinstance(e, syntax.Element) for e in iterable.elements)
        return len(iterable.elements) if ok else None
    value = facts.values.get(dotted(iterable) or "")
    # `layers = nn.ModuleList(layers)` rebinds a name to itself: follow a few hops only.
    if hops > 3 or not (isinstance(value, syntax.Call) and len(value.args) == 1 and last(
            facts.imports.resolve(value.func)) in ("ModuleList", "Sequential")):
        return None
    inner = value.args[0].value
    if isinstance(inner, (syntax.ListComp, syntax.GeneratorExp)):
        comp = inner.for_in
        if comp.inner_for_in is None and not comp.ifs:
            return iterations(comp.iter, facts, hops + 1)
        return None
    return iterations(inner, facts, hops + 1)
