"""The static rules' tree (``static.analysis.syntax``, built from the stdlib ``ast``) against the
libcst tree it stands in for: same node types, same fields in the same order, same positions.
The rules were written against libcst, so parity here is what keeps their findings unchanged."""
from __future__ import annotations

import ast
import dataclasses
import sys

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from gradcheck_tool.static import STATIC_RULES
from gradcheck_tool.static.analysis import syntax
from gradcheck_tool.static.analysis.convert import convert

# libcst fields ours leaves out: whitespace, brackets, commas, and the decorators' newline.
_SKIPPED = {"lpar", "rpar", "comma", "leading_lines", "lines_after_decorators", "header", "footer",
            "newline", "semicolon", "equal", "colon", "dot", "operator", "asynchronous",
            "trailing_whitespace", "leading_whitespace", "lbracket", "rbracket", "lbrace",
            "rbrace", "indent", "encoding", "default_indent", "default_newline",
            "has_trailing_newline", "type_parameters", "posonly_ind", "star", "conversion",
            "start", "end", "whitespace_after_star", "relative", "first_colon", "second_colon"}


def _fields(node: cst.CSTNode) -> list[str]:
    return [f.name for f in dataclasses.fields(node)
            if f.name not in _SKIPPED and not f.name.startswith("whitespace")]


def mismatches(source: str) -> list[str]:
    """Where our tree differs from libcst's for ``source``: type, field or position."""
    theirs = cst.parse_module(source)
    positions = MetadataWrapper(theirs, unsafe_skip_copy=True).resolve(PositionProvider)
    ours = convert(ast.parse(source), source)
    found: list[str] = []

    def walk(a, b, path: str) -> None:
        if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
            a = list(a) if isinstance(a, (list, tuple)) else []
            b = list(b) if isinstance(b, (list, tuple)) else []
            if len(a) != len(b):
                found.append(f"{path}: {len(a)} libcst items, {len(b)} ours")
                return
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{i}]")
            return
        if not isinstance(a, cst.CSTNode):
            a = None
        if not isinstance(b, syntax.CSTNode):
            b = None
        if a is None or b is None:
            if (a is None) != (b is None) and not isinstance(a, (cst.ParamStar, cst.ImportStar)):
                found.append(f"{path}: {type(a).__name__} vs {type(b).__name__}")
            return
        if type(a).__name__ != type(b).__name__:
            found.append(f"{path}: {type(a).__name__} vs {type(b).__name__}")
            return
        where = positions.get(a)
        if where is not None and b.pos is not None and (
                where.start.line, where.start.column, where.end.line, where.end.column) != b.pos:
            found.append(f"{path} {type(a).__name__}: libcst {where.start.line}:{where.start.column}-"
                         f"{where.end.line}:{where.end.column}, ours {b.pos}")
        if isinstance(a, (cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString)):
            if a.value != b.value:
                found.append(f"{path}: value {a.value!r} vs {b.value!r}")
            return
        for name in _fields(a):
            if name in type(b).FIELDS:
                walk(getattr(a, name), getattr(b, name), f"{path}.{name}")
            else:
                found.append(f"{path}: libcst's {type(a).__name__}.{name} is missing from ours")
        if isinstance(a, cst.Arg) and a.star != b.star:
            found.append(f"{path}: star {a.star!r} vs {b.star!r}")

    walk(theirs.body, ours.body, "body")
    return found


EDGES = """\
x = 'é' ; y = f(a, *b, k=1, **c)
if a: b(); c()
elif d:
    e = (1,
      2)  # c
else:
    if q: pass
for i, (j, k) in enumerate(z):  # com
    y[1, 2] = y[(1, 2)] + y[1:2, ::3]
    w = True if x else None
    loss.backward()
else:
    pass
while n: n -= 1
try:
    a = [i for i in range(3) if i for j in i]
except (ValueError, KeyError) as err:
    raise RuntimeError() from err
else:
    a = {k: v for k, v in d.items()}
finally:
    del a, b
with torch.no_grad(), ctx() as (a, b):
    s = "a" "b" + f"{x!r:>{w}}" + {**d, 'k': 1}["k"]

@dec(1)
class C(Base, metaclass=M):
    async def f(self, a, /, b=2, *args, c, d=3, **kw) -> int:
        global g
        await x
        yield from (lambda q, *, r=1: q)(1)
        return -a ** 2 and not b or c is not d
"""


def _rule_examples() -> list[str]:
    return [source for rule in STATIC_RULES.values() for source in rule.GOOD + rule.BAD]


@pytest.mark.parametrize("source", [EDGES, "x = 1\r\nif a:\r\n\tb = (1,\n  2)  # c\n\n@d\ndef f(*, a=1): return a\n"]
                         + _rule_examples())
def test_tree_matches_libcst(source: str) -> None:
    assert mismatches(source) == []


def test_nodes_know_their_text_and_comments() -> None:
    source = "import torch\n\n# clip first\n  # (indented)\nclip(model.parameters(), 1.0)  # tail\n"
    module = convert(ast.parse(source), source)
    line = module.body[1]
    assert isinstance(line, syntax.SimpleStatementLine)
    assert [(e.comment.value if e.comment else None, e.indent, e.whitespace.value)
            for e in line.leading_lines] == [
        (None, True, ""), ("# clip first", True, ""), ("# (indented)", True, "  ")]
    call = line.body[0].value
    assert [a.comma is not None for a in call.args] == [True, False]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 parses `type` statements")
def test_syntax_this_python_cannot_parse_is_gh001() -> None:
    from gradcheck_tool.static import check_source
    source = "type Vec = list[float]\nfor b in data:\n    loss.backward()\n    opt.step()\n"
    assert [f.code for f in check_source(source, "t.py")] == ["GH001"]
