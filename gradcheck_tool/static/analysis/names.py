"""Alias-aware names and literal numbers: what an expression means given the file's imports.

A rule asks "is this call ``torch.nn.utils.clip_grad_norm_``?" without caring whether
the file wrote ``clip_grad_norm_``, ``c`` (imported ``as c``), ``nn.utils.clip_grad_norm_``
or the full path: every spelling resolves to one dotted name.
"""
from __future__ import annotations

import ast
import warnings
from types import MappingProxyType
from typing import Iterator, Mapping, NamedTuple, Optional

from gradcheck_tool.static.analysis import syntax

NO_CONSTANTS: Mapping[str, float] = MappingProxyType({})


def children(node: syntax.CSTNode) -> tuple[syntax.CSTNode, ...]:
    """The node's child nodes in field order; computed once per node (rules walk the same
    subtrees many times)."""
    found = node.__dict__.get("_children")
    if found is None:
        kids = []
        for name in node.FIELDS:
            value = getattr(node, name)
            if type(value) is list:
                kids.extend(item for item in value if isinstance(item, syntax.CSTNode))
            elif isinstance(value, syntax.CSTNode):
                kids.append(value)
        found = node._children = tuple(kids)
    return found


def subtree(node: syntax.CSTNode) -> Iterator[syntax.CSTNode]:
    """Every node under ``node`` (itself included), pre-order, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def identifiers(node: syntax.CSTNode) -> Iterator[str]:
    """Every name and attribute name used in an expression."""
    for sub in subtree(node):
        if isinstance(sub, syntax.Name):
            yield sub.value
        elif isinstance(sub, syntax.Attribute):
            yield sub.attr.value


def dotted(node, tree=syntax) -> Optional[str]:
    """``a.b.c`` for a chain of attributes on a name, else None (calls, subscripts...).
    ``tree``: the module of the node classes, ``syntax`` or libcst (their names are the same),
    so the codemods read libcst trees with the same function."""
    parts = []
    while isinstance(node, tree.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, tree.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def parse(source: str, filename: str) -> "ast.Module | BaseException":
    """CPython's tree of ``source``, or its parse error."""
    try:
        with warnings.catch_warnings():  # CPython warns about odd escapes: not ours to print
            warnings.simplefilter("ignore")
            return compile(source, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return error


def parse_or_none(source: str) -> Optional[ast.Module]:
    """The stdlib ``ast`` of ``source``, or None for a file CPython cannot parse."""
    tree = parse(source, "<source>")
    return None if isinstance(tree, BaseException) else tree


def ast_dotted(node: ast.AST) -> str:
    """``a.b.c`` for a stdlib-``ast`` chain of attributes on a name, else ""."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{ast_dotted(node.value)}.{node.attr}"
    return ""


def keyword_arg(call: syntax.Call, keyword: str) -> Optional[syntax.Arg]:
    """The argument passed as ``keyword=...``."""
    return next((a for a in call.args if a.keyword and a.keyword.value == keyword), None)


def argument(call: syntax.Call, position: int, keyword: str) -> Optional[syntax.Arg]:
    """The argument for a parameter that may be passed by keyword or at ``position``."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    found = positional[position] if len(positional) > position else None
    return keyword_arg(call, keyword) or found


def last(name: Optional[str]) -> str:
    return (name or "").rpartition(".")[2]


def import_aliases(node, tree=syntax) -> Iterator[tuple[str, str]]:
    """(local name, qualified name) pairs an import statement binds (``tree``: as for ``dotted``)."""
    if isinstance(node, tree.Import):
        for alias in node.names:
            name = dotted(alias.name, tree)
            if name is None:
                continue
            if alias.asname is not None and isinstance(alias.asname.name, tree.Name):
                yield alias.asname.name.value, name
            else:
                head = name.partition(".")[0]
                yield head, head
        return
    # Relative imports name the user's own modules: leave those names as written.
    if node.relative or node.module is None or isinstance(node.names, tree.ImportStar):
        return
    module = dotted(node.module, tree)
    if module is None:
        return
    for alias in node.names:
        if not isinstance(alias.name, tree.Name):
            continue
        local = alias.name.value
        if alias.asname is not None and isinstance(alias.asname.name, tree.Name):
            local = alias.asname.name.value
        yield local, f"{module}.{alias.name.value}"


class ImportMap(NamedTuple):
    """Local names bound by imports, mapped to the dotted names they stand for."""

    aliases: Mapping[str, str] = MappingProxyType({})

    def resolve(self, node: Optional[syntax.CSTNode]) -> Optional[str]:
        name = dotted(node)
        if name is None:
            return None
        head, dot, rest = name.partition(".")
        target = self.aliases.get(head)
        if target is None:
            return name
        return target + dot + rest

    def local_name(self, qualified: str) -> Optional[str]:
        """How this file spells ``qualified`` (e.g. ``torch``), or None if it is not imported."""
        for local, target in self.aliases.items():
            if target == qualified:
                return local
        return None


def is_torch_nn(name: Optional[str], *leaves: str) -> bool:
    """``torch.nn.X`` (or ``nn.X`` where ``nn`` was not imported, as in a snippet)."""
    if not name or last(name) not in leaves:
        return False
    module = name.rpartition(".")[0]
    return module in ("torch.nn", "nn") or module.startswith("torch.nn.modules")


_OPS = {
    syntax.Add: lambda a, b: a + b,
    syntax.Subtract: lambda a, b: a - b,
    syntax.Multiply: lambda a, b: a * b,
    syntax.Divide: lambda a, b: a / b,
    syntax.Power: lambda a, b: a**b,
}


def number(node: Optional[syntax.CSTNode],
           constants: Mapping[str, float] = NO_CONSTANTS) -> Optional[float]:
    """The value of a numeric literal expression (``3e-4``, ``-1``, ``1 / 3``, a constant name)."""
    try:
        if isinstance(node, syntax.Integer):
            return float(int(node.value, 0))
        if isinstance(node, syntax.Float):
            return float(node.value)
        if isinstance(node, syntax.Name):
            return constants.get(node.value)
        if isinstance(node, syntax.UnaryOperation) and isinstance(
                node.operator, (syntax.Minus, syntax.Plus)):
            value = number(node.expression, constants)
            if value is None:
                return None
            return -value if isinstance(node.operator, syntax.Minus) else value
        if isinstance(node, syntax.BinaryOperation) and type(node.operator) in _OPS:
            left, right = number(node.left, constants), number(node.right, constants)
            if left is None or right is None:
                return None
            value = _OPS[type(node.operator)](left, right)
            return float(value) if isinstance(value, (int, float)) else None
    except (ValueError, OverflowError, ZeroDivisionError, TypeError, RecursionError):
        return None
    return None


def integer(node: Optional[syntax.CSTNode],
            constants: Mapping[str, float] = NO_CONSTANTS) -> Optional[int]:
    value = number(node, constants)
    if value is None or value != int(value) or abs(value) > 10**6:
        return None
    return int(value)


def range_length(node: Optional[syntax.CSTNode],
                 constants: Mapping[str, float] = NO_CONSTANTS) -> Optional[int]:
    """``len(range(...))`` when every argument is a known integer, else None."""
    if not (isinstance(node, syntax.Call) and dotted(node.func) == "range"):
        return None
    if any(arg.keyword or arg.star for arg in node.args) or not 1 <= len(node.args) <= 3:
        return None
    values = [integer(arg.value, constants) for arg in node.args]
    if any(v is None for v in values) or (len(values) == 3 and values[2] == 0):
        return None
    return len(range(*values))
