"""Which statements bind a name, read with the stdlib ``ast``: the facts :mod:`safety` proves
a fix's new code against (assignments and their branches, loop and ``with`` targets,
``self.attr = ...`` and what it assigns, the imports that say what a constructor is)."""
from __future__ import annotations

import ast
from typing import Iterator, Optional


class Imports:
    def __init__(self) -> None:
        self.alias: dict[str, str] = {}

    def full(self, dotted: str) -> Optional[str]:
        head, _, rest = dotted.partition(".")
        if head not in self.alias:
            return None
        return self.alias[head] + ("." + rest if rest else "")


def imports(tree: ast.Module) -> Imports:
    found = Imports()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.alias[alias.asname or alias.name.partition(".")[0]] = alias.name if alias.asname \
                    else alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                found.alias[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def header(statement: ast.stmt) -> list[ast.AST]:
    """A compound statement's own expressions (test, iterator, items), not its body."""
    parts = [getattr(statement, f, None) for f in ("test", "iter", "target")]
    parts += [i.context_expr for i in getattr(statement, "items", [])]
    return [p for p in parts if p is not None]


def parameters(function: ast.AST) -> set[str]:
    args = function.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return set(names)


def declared_global(function: ast.AST, name: str) -> Optional[bool]:
    """True for ``global name``, False for ``nonlocal name``, None otherwise."""
    for node in ast.walk(function):
        if isinstance(node, ast.Global) and name in node.names:
            return True
        if isinstance(node, ast.Nonlocal) and name in node.names:
            return False
    return None


def targets(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from targets(element)
    elif isinstance(target, ast.Starred):
        yield from targets(target.value)


def binds(statement: ast.stmt, name: str, definite: bool = True) -> bool:
    """Whether running ``statement`` binds ``name`` (``definite``: on every path through it)."""
    s = statement
    if isinstance(s, ast.Assign):
        return any(name in targets(t) for t in s.targets)
    if isinstance(s, (ast.AnnAssign, ast.AugAssign)):
        return (s.value is not None or isinstance(s, ast.AugAssign)) and name in targets(s.target)
    if isinstance(s, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.partition(".")[0]) == name for a in s.names)
    if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return s.name == name
    if isinstance(s, (ast.With, ast.AsyncWith)):
        return any(i.optional_vars is not None and name in targets(i.optional_vars) for i in s.items) \
            or any(binds(b, name, definite) for b in s.body)
    if isinstance(s, ast.If):
        body = any(binds(b, name, definite) for b in s.body)
        other = any(binds(b, name, definite) for b in s.orelse)
        return body and other if definite else body or other
    if isinstance(s, ast.Try) or type(s).__name__ == "TryStar":
        body = any(binds(b, name, definite) for b in s.body)
        handlers = [any(binds(b, name, definite) for b in h.body) for h in s.handlers]
        final = any(binds(b, name, definite) for b in s.finalbody)
        if definite:
            return final or (body and all(handlers))
        return body or any(handlers) or final or any(h.name == name for h in s.handlers)
    if isinstance(s, (ast.For, ast.AsyncFor, ast.While)):
        if definite:
            return False  # the body may run zero times
        return (not isinstance(s, ast.While) and name in targets(s.target)) or any(
            binds(b, name, False) for b in (*s.body, *s.orelse))
    if isinstance(s, ast.Expr):
        return any(isinstance(n, ast.NamedExpr) and n.target.id == name for n in ast.walk(s))
    return False


def wraps_binding(holder: ast.AST, node: ast.AST, name: str) -> bool:
    """A loop, ``with`` or ``except`` around ``node`` whose target binds ``name``."""
    if isinstance(holder, (ast.For, ast.AsyncFor)) and node in holder.body:
        return name in targets(holder.target)
    if isinstance(holder, (ast.With, ast.AsyncWith)):
        return any(i.optional_vars is not None and name in targets(i.optional_vars) for i in holder.items)
    if isinstance(holder, ast.ExceptHandler):
        return holder.name == name
    return False


def binds_unconditionally(body: list[ast.stmt], name: str) -> bool:
    """A module-level name every importer sees: bound at top level, in a ``with``/``try``, or
    in both branches of an ``if`` (a ``__main__`` guard alone does not count)."""
    for statement in body:
        if binds(statement, name):
            return True
        if isinstance(statement, ast.Try) and binds(statement, name, definite=False):
            return True  # try: import x / except ImportError: ... is still the module's name
        if isinstance(statement, (ast.For, ast.While)) and binds(statement, name, definite=False):
            return True  # a script's top-level loop has run by the time its functions are called
    return False


def sets_self(node: ast.AST, attr: str) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
        node, ast.AnnAssign) and node.value is not None else []
    for target in targets:
        for element in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]):
            if isinstance(element, ast.Attribute) and element.attr == attr and isinstance(
                    element.value, ast.Name) and element.value.id == "self":
                return True
    return False


def self_values(node: ast.AST, attr: str) -> Iterator[ast.AST]:
    """What ``self.attr = value`` (or ``self.a, self.attr = x, value``) assigns; the whole
    right-hand side when it cannot be paired (which then resolves to no known type)."""
    if not sets_self(node, attr):
        return
    for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(node.value, (ast.Tuple, ast.List)) \
                and len(target.elts) == len(node.value.elts):
            yield from (v for t, v in zip(target.elts, node.value.elts) if isinstance(t, ast.Attribute)
                        and t.attr == attr and isinstance(t.value, ast.Name) and t.value.id == "self")
        elif isinstance(target, ast.Attribute) and target.attr == attr:
            yield node.value
        elif isinstance(target, (ast.Tuple, ast.List)):
            yield node.value
