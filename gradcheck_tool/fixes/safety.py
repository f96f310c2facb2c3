"""Proof that a fix's new code can run where it lands, checked on the patched text itself.

A codemod proposes text; this module decides, without knowing which rule asked, whether every
name that text introduces is bound at its insertion point on every path that reaches it:

- a name is a parameter of the enclosing function, bound by a statement that runs before it in
  every branch (an ``if`` counts only when both branches bind it), a loop/``with``/``except``
  target around it, or a module-level name that the module binds unconditionally (not only
  under ``if __name__ == "__main__":``: a function called from elsewhere would not see it);
- ``self.attr`` is set unconditionally in some method of the class (or defined in it), or set
  only under ``if <cond>:`` and the new code sits under that same condition, on the same side;
- ``x.zero_grad()`` / ``x.unscale_(...)`` need ``x``'s type to be known to have the method:
  the constructor that built it (followed through this file's call sites for a parameter) is a
  ``torch.optim`` optimizer or a ``GradScaler``; ``DistributedOptimizer`` has no ``zero_grad``.

On top, :func:`new_undefined` compares the whole file's undefined names before and after
(stdlib ``symtable``), so a fix can never add one.  The engine withdraws a fix with the reason.
"""
from __future__ import annotations

import ast
import builtins
import difflib
import re
import symtable
from typing import Iterator, Optional

from gradcheck_tool.findings import split_lines
from gradcheck_tool.fixes.bindings import (
    binds,
    binds_unconditionally,
    declared_global,
    header,
    imports,
    parameters,
    self_values,
    sets_self,
    wraps_binding,
)

_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__", "__builtins__"}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)
# Methods whose receiver's type decides whether the call exists.
_OPTIMIZER_METHODS = {"zero_grad"}
_SCALER_METHODS = {"unscale_"}
_LACKS = {"torch.distributed.optim.DistributedOptimizer": {"zero_grad"}}
_SCALERS = ("GradScaler", "ShardedGradScaler")
_MODULE_ATTRS = {"parameters", "named_parameters", "modules", "children", "zero_grad", "train", "eval"}


def new_undefined(before: str, after: str) -> set[str]:
    """Names the patched file reads but nothing defines, that the original did not already."""
    return _undefined(after) - _undefined(before)


def _undefined(source: str) -> set[str]:
    try:
        top = symtable.symtable(source, "<fix>", "exec")
        if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(ast.parse(source))):
            return set()  # a star import may define anything
    except (SyntaxError, ValueError, RecursionError):
        return set()
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    found: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        for sym in table.get_symbols():
            name = sym.get_name()
            if sym.is_referenced() and (table is top or sym.is_global()) and name not in defined \
                    and name not in _BUILTINS:
                found.add(name)
    return found


def inserted_rows(before: str, after: str) -> tuple[set[int], set[str]]:
    """Rows of ``after`` (1-based) that the edit wrote, and the names the replaced rows held."""
    old, new = split_lines(before), split_lines(after)
    rows: set[int] = set()
    replaced: list[str] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("insert", "replace"):
            rows.update(range(j1 + 1, j2 + 1))
            replaced.extend(old[i1:i2])
    return rows, _names_in("".join(replaced))


def _names_in(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", text))


def problems(before: str, after: str) -> list[str]:
    """Why the code ``after`` adds to ``before`` may fail where it lands; empty when proven."""
    try:
        tree = ast.parse(after)
    except (SyntaxError, ValueError, RecursionError):
        return ["the patched file would not parse"]
    rows, kept = inserted_rows(before, after)
    found = [f"it adds undefined name `{n}`" for n in sorted(new_undefined(before, after))]
    if not rows:
        return found
    checker = _Checker(tree, _undefined(before))
    for statement in checker.statements:
        end = getattr(statement, "end_lineno", statement.lineno) or statement.lineno
        if isinstance(statement, (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef,
                                  ast.ClassDef, ast.AsyncFunctionDef)):
            end = statement.lineno  # compound: only its header line is its own text
        if rows.isdisjoint(range(statement.lineno, end + 1)):
            continue
        found.extend(p for p in checker.check(statement, kept, rows) if p not in found)
    return found


class _Checker:
    def __init__(self, tree: ast.Module, free: set[str]) -> None:
        self.tree = tree
        self.free = free  # names the original file reads and never defines (a snippet, an exec)
        self.parent: dict[ast.AST, ast.AST] = {}
        self.statements: list[ast.stmt] = []
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
            if isinstance(node, ast.stmt):
                self.statements.append(node)
        self.imports = imports(tree)

    # -- where a statement sits -------------------------------------------------------------
    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        while node in self.parent:
            node = self.parent[node]
            yield node

    def scope(self, node: ast.AST) -> ast.AST:
        return next(a for a in self.ancestors(node) if isinstance(a, _SCOPES))

    def klass(self, function: ast.AST) -> Optional[ast.ClassDef]:
        owner = self.parent.get(function)
        return owner if isinstance(owner, ast.ClassDef) else None

    # -- the checks -------------------------------------------------------------------------
    def check(self, statement: ast.stmt, kept: set[str], rows: set[int]) -> list[str]:
        out: list[str] = []
        nodes = [statement] if not hasattr(statement, "body") else header(statement)
        for node in (n for root in nodes for n in ast.walk(root)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in kept:
                if not self.bound(node.id, statement) and not self.read_already(node.id, statement, rows):
                    out.append(f"`{node.id}` is not bound on every path to line {statement.lineno}")
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "self" and node.attr not in kept:
                reason = self.self_attribute(node.attr, statement)
                if reason:
                    out.append(reason)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                reason = self.method(node.func, statement)
                if reason:
                    out.append(reason)
        return out

    def bound(self, name: str, statement: ast.stmt) -> bool:
        if name in _BUILTINS:
            return True
        scope = self.scope(statement)
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if name in parameters(scope) or declared_global(scope, name) is False:
                return True
            if declared_global(scope, name):
                return binds_unconditionally(self.tree.body, name)
            if any(binds(s, name, definite=False) for s in scope.body):  # a local: must precede
                return self._before(name, statement, scope)
            outer = self.scope(scope)
            while isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if name in parameters(outer) or any(binds(s, name, definite=False) for s in outer.body):
                    return True  # a closure's variable: bound by the time the inner function runs
                outer = self.scope(outer)
            return binds_unconditionally(self.tree.body, name)
        return self._before(name, statement, scope)

    def read_already(self, name: str, statement: ast.stmt, rows: set[int]) -> bool:
        """A name the file never defines but already reads in this scope: the fix adds no new
        way to fail (the snippets of a README, names an ``exec`` or a star import provides)."""
        scope = self.scope(statement)
        return name in self.free and any(
            isinstance(n, ast.Name) and n.id == name and n.lineno not in rows and self.scope(n) is scope
            for n in ast.walk(scope))

    def _before(self, name: str, statement: ast.stmt, scope: ast.AST) -> bool:
        """Some statement binds ``name`` on every path from the top of ``scope`` to ``statement``."""
        node: ast.AST = statement
        for holder in self.ancestors(statement):
            if wraps_binding(holder, node, name):
                return True
            for field in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(holder, field, None)
                if isinstance(block, list) and node in block:
                    if any(binds(s, name) for s in block[:block.index(node)]):
                        return True
            if holder is scope:
                return False
            node = holder
        return False

    def self_attribute(self, attr: str, statement: ast.stmt) -> Optional[str]:
        scope = self.scope(statement)
        klass = self.klass(scope)
        if klass is None:
            return f"`self.{attr}`: line {statement.lineno} is not in a method"
        if any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and s.name == attr
               or binds(s, attr) for s in klass.body):
            return None
        guards: list[tuple[str, bool]] = []
        for method in (s for s in klass.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for assign in ast.walk(method):
                if not sets_self(assign, attr):
                    continue
                guard = self._guard(assign, method)
                if guard is None:
                    return None  # set unconditionally
                guards.append(guard)
        if not guards:
            if attr in _MODULE_ATTRS and klass.bases:
                return None
            return f"`self.{attr}` is never set in class {klass.name}"
        here = set()
        node: ast.AST = statement
        for holder in self.ancestors(statement):
            if isinstance(holder, ast.If):
                here.add((ast.unparse(holder.test), node in holder.body))
            node = holder
        if any(g in here for g in guards):
            return None
        test, side = guards[0]
        return (f"`self.{attr}` is set only {'when' if side else 'unless'} `{test}`, and line "
                f"{statement.lineno} is not under that condition")

    def _guard(self, assign: ast.AST, method: ast.AST) -> Optional[tuple[str, bool]]:
        """The innermost ``if`` test (and side) an assignment depends on; None when it always runs."""
        node = assign
        for holder in self.ancestors(assign):
            if holder is method:
                return None
            if isinstance(holder, ast.If):
                return ast.unparse(holder.test), node in holder.body
            if isinstance(holder, (ast.For, ast.While, ast.Try, ast.ExceptHandler)):
                return "<loop or try>", True
            node = holder
        return None

    def method(self, func: ast.Attribute, statement: ast.stmt) -> Optional[str]:
        wanted = func.attr
        if wanted not in _OPTIMIZER_METHODS | _SCALER_METHODS:
            return None
        kinds = self.types(func.value, self.scope(statement))
        receiver = ast.unparse(func.value)
        if not kinds:
            return f"`{receiver}`'s type is unknown: nothing proves it has `{wanted}()`"
        for kind in kinds:
            if wanted in _LACKS.get(kind, ()):
                return f"`{receiver}` is a {kind.rsplit('.', 1)[-1]}, which has no `{wanted}()`"
            if wanted in _OPTIMIZER_METHODS and not (kind.startswith("torch.optim.") or kind.startswith(
                    "torch.distributed.optim.") or kind.endswith("Optimizer")):
                return f"`{receiver}` is built by `{kind}`, not known to have `{wanted}()`"
            if wanted in _SCALER_METHODS and not kind.endswith(_SCALERS):
                return f"`{receiver}` is built by `{kind}`, not known to have `{wanted}()`"
        return None

    def types(self, expr: ast.AST, scope: ast.AST, depth: int = 0) -> set[str]:
        """The constructors (full dotted names) that may have built ``expr``; empty when unknown."""
        if depth > 2:
            return set()
        if isinstance(expr, ast.Call):
            made = self.imports.full(ast.unparse(expr.func))
            return {made} if made else set()
        values: list[ast.AST] = []
        if isinstance(expr, ast.Name):
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)) and expr.id in parameters(scope):
                return self._from_callers(scope, expr.id, depth)
            where = scope if any(binds(s, expr.id, definite=False) for s in scope.body) else self.tree
            values = [a.value for a in ast.walk(where) if isinstance(a, ast.Assign) and self.scope(a) is where
                      and any(isinstance(t, ast.Name) and t.id == expr.id for t in a.targets)]
            owner = scope if where is scope else self.tree
        elif isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "self":
            klass = self.klass(scope)
            values = [v for a in ast.walk(klass) for v in self_values(a, expr.attr)] if klass else []
            owner = None
        else:
            return set()
        out: set[str] = set()
        for value in values:
            found = self.types(value, owner or self.scope(value), depth + 1)
            if not found:
                return set()
            out |= found
        return out

    def _from_callers(self, function: ast.AST, param: str, depth: int) -> set[str]:
        """What this file's calls of ``function`` pass as ``param`` (``Trainer(...)`` for an
        ``__init__``); empty when a call passes something unknown, or nothing calls it."""
        positional = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
        index = positional.index(param) if param in positional else None
        name, klass = function.name, self.klass(function)
        if name == "__init__" and klass is not None:
            name, index = klass.name, None if index is None else index - 1
        calls = [c for c in ast.walk(self.tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
                 and c.func.id == name]
        out: set[str] = set()
        for call in calls:
            given = next((k.value for k in call.keywords if k.arg == param), None)
            if given is None and index is not None and index < len(call.args) \
                    and not any(isinstance(a, ast.Starred) for a in call.args[:index + 1]):
                given = call.args[index]
            found = self.types(given, self.scope(call), depth + 1) if given is not None else set()
            if not found:
                return set()
            out |= found
        return out
