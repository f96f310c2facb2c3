"""Expressions of the :mod:`.syntax` tree, built from ``ast`` (the statements are in
:mod:`.convert`), and the source-text helpers both use: character columns from ``ast``'s
UTF-8 byte offsets, offsets, and libcst's ranges (a wrapper node counts its child's
parentheses; ``as``/``for``/``from`` parts start where the previous part ends).
"""
from __future__ import annotations

import ast
import bisect
import re
from typing import Optional

from gradcheck_tool.findings import LINE_BREAK
from gradcheck_tool.static.analysis import syntax as s


_BINARY = {ast.Add: s.Add, ast.Sub: s.Subtract, ast.Mult: s.Multiply, ast.Div: s.Divide,
           ast.FloorDiv: s.FloorDivide, ast.Mod: s.Modulo, ast.Pow: s.Power,
           ast.MatMult: s.MatrixMultiply, ast.LShift: s.LeftShift, ast.RShift: s.RightShift,
           ast.BitOr: s.BitOr, ast.BitXor: s.BitXor, ast.BitAnd: s.BitAnd}
AUGMENTED = {op: getattr(s, kind.__name__ + "Assign") for op, kind in _BINARY.items()}
_UNARY = {ast.USub: s.Minus, ast.UAdd: s.Plus, ast.Not: s.Not, ast.Invert: s.BitInvert}
_COMPARE = {ast.Eq: s.Equal, ast.NotEq: s.NotEqual, ast.Lt: s.LessThan, ast.LtE: s.LessThanEqual,
            ast.Gt: s.GreaterThan, ast.GtE: s.GreaterThanEqual, ast.Is: s.Is, ast.IsNot: s.IsNot,
            ast.In: s.In, ast.NotIn: s.NotIn}
_CONSTANT_NAMES = {True: "True", False: "False", None: "None"}
_QUOTE = re.compile(r"\"\"\"|'''|['\"]")  # a string's opening quote, triple first
_KEYWORD_SPACE = {word: re.compile(rf"\b{word}\s+") for word in ("def", "class", "as")}
_WORD = re.compile(r"\w")


def _word_at(text: str, at: int, word: str) -> bool:
    """``word`` is written at ``at`` as a whole word (no word character follows it)."""
    return text.startswith(word, at) and not _WORD.match(text, at + len(word))


class Source:
    """The file's text by line, with byte-to-character column conversion and offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in LINE_BREAK.finditer(text))]
        ends = self.starts[1:] + [len(text)]
        self.lines = [text[a:b] for a, b in zip(self.starts, ends)]
        self.ascii = [line.isascii() for line in self.lines]

    def column(self, line: int, byte: int) -> int:
        if line > len(self.lines) or self.ascii[line - 1]:
            return byte
        return len(self.lines[line - 1].encode("utf-8")[:byte].decode("utf-8", "replace"))

    def offset(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column if line <= len(self.starts) else len(self.text)

    def where(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset) - 1
        return line + 1, offset - self.starts[line]

    def segment(self, pos: tuple[int, int, int, int]) -> str:
        return self.text[self.offset(pos[0], pos[1]):self.offset(pos[2], pos[3])]


class Expressions:
    """Positions and expressions; :class:`~.convert.Converter` adds the statements."""

    def __init__(self, source: Source) -> None:
        self.src = source

    # -- positions -----------------------------------------------------------------------
    def pos(self, node: ast.AST) -> tuple[int, int, int, int]:
        first, last = node.lineno, node.end_lineno
        ascii_lines = self.src.ascii
        if last <= len(ascii_lines) and ascii_lines[first - 1] and ascii_lines[last - 1]:
            return first, node.col_offset, last, node.end_col_offset  # bytes are characters
        column = self.src.column
        return first, column(first, node.col_offset), last, column(last, node.end_col_offset)

    def starred(self, pos: tuple[int, int, int, int], star: str) -> tuple[int, int, int, int]:
        """``pos`` grown back over the ``*``/``**`` written before it."""
        start, end = self.offsets(pos)
        found = self.src.text.rfind(star, 0, start)
        return self.span_of(found, end) if found >= 0 and not self.src.text[found + len(star):start].strip() else pos

    def offsets(self, pos: tuple[int, int, int, int]) -> tuple[int, int]:
        return self.src.offset(pos[0], pos[1]), self.src.offset(pos[2], pos[3])

    def span_of(self, start: int, end: int) -> tuple[int, int, int, int]:
        return (*self.src.where(start), *self.src.where(end))

    def widen(self, pos: tuple[int, int, int, int], lo: int, hi: int) -> tuple[int, int, int, int]:
        """``pos`` grown over the parentheses around it inside [lo, hi): libcst counts an
        expression's own parentheses in the range of the node that wraps it."""
        text = self.src.text
        start, end = self.offsets(pos)
        grown = False
        while True:
            i, j = start - 1, end
            while i >= lo and text[i] in " \t\f\r\n\\":
                i -= 1
            while j < hi and text[j] in " \t\f\r\n\\":
                j += 1
            if i < lo or j >= hi or text[i] != "(" or text[j] != ")":
                return self.span_of(start, end) if grown else pos
            start, end, grown = i, j + 1, True

    def keyword_start(self, word: str, lo: int, hi: int) -> Optional[int]:
        """Where the last ``word`` keyword in [lo, hi) starts."""
        found = None
        for match in re.finditer(rf"\b{word}\b", self.src.text[lo:hi]):
            found = lo + match.start()
        return found

    def name_at(self, value: str, line: int, start: int) -> s.Name:
        return s.Name(value=value, pos=(line, start, line, start + len(value)))

    def name_after(self, value: str, node: ast.AST, keyword: str) -> s.Name:
        """A definition's name: the first ``value`` after ``keyword`` from the node's start."""
        text, start = self.src.text, self.src.offset(*self.pos(node)[:2])
        after = _KEYWORD_SPACE[keyword]  # one pattern per keyword: not one compiled per name
        found = after.search(text, start)
        while found is not None and not _word_at(text, found.end(), value):
            found = after.search(text, found.end())
        if found is None:
            return s.Name(value=value, pos=None)
        line, col = self.src.where(found.end())
        return self.name_at(value, line, col)

    # -- parameters and arguments ------------------------------------------------------------
    def param(self, node: ast.arg, default: Optional[ast.expr], star: str = "") -> s.Param:
        pos = self.pos(node)
        name = self.name_at(node.arg, pos[0], pos[1])
        if star:
            pos = self.starred(pos, star)
        return s.Param(name=name,
                       annotation=None if node.annotation is None else s.Annotation(
                           annotation=self.expr(node.annotation), pos=self.pos(node.annotation)),
                       default=None if default is None else self.expr(default), star=star,
                       pos=pos)

    def parameters(self, args: ast.arguments) -> s.Parameters:
        positional = [*args.posonlyargs, *args.args]
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        converted = [self.param(a, d) for a, d in zip(positional, defaults)]
        cut = len(args.posonlyargs)
        star_arg = (self.param(args.vararg, None, "*") if args.vararg is not None
                    else s.ParamStar() if args.kwonlyargs else None)
        return s.Parameters(
            posonly_params=converted[:cut], params=converted[cut:], star_arg=star_arg,
            kwonly_params=[self.param(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults)],
            star_kwarg=None if args.kwarg is None else self.param(args.kwarg, None, "**"))

    def positional(self, node: ast.expr) -> s.Arg:
        if isinstance(node, ast.Starred):
            return s.Arg(value=self.expr(node.value), keyword=None, star="*", pos=self.pos(node))
        value = self.expr(node)
        return s.Arg(value=value, keyword=None, pos=value.pos)

    def keyword(self, node: ast.keyword) -> s.Arg:
        pos = self.pos(node)
        if node.arg is None:
            return s.Arg(value=self.expr(node.value), keyword=None, star="**", pos=pos)
        return s.Arg(value=self.expr(node.value), keyword=self.name_at(node.arg, pos[0], pos[1]),
                     pos=pos)

    def arguments(self, args: list[ast.expr], keywords: list[ast.keyword]) -> list[s.Arg]:
        converted = [self.positional(a) for a in args] + [self.keyword(k) for k in keywords]
        if keywords and args:
            converted.sort(key=lambda a: a.pos[:2])
        for arg in converted:  # the trailing comma, where it is on the argument's last line
            if self.src.lines[arg.pos[2] - 1][arg.pos[3]:].lstrip(" \t\f").startswith(","):
                arg.comma = s.Comma()
        return converted

    # -- expressions ---------------------------------------------------------------------------
    def _span(self, first: ast.AST, last: Optional[ast.AST]) -> tuple[int, int, int, int]:
        a = self.pos(first)
        return a if last is None else (*a[:2], *self.pos(last)[2:])

    def expr(self, node: ast.expr) -> s.CSTNode:
        pos = self.pos(node)
        kind = type(node)
        expr = self.expr
        if kind is ast.Name:
            return s.Name(value=node.id, pos=pos)
        if kind is ast.Attribute:
            value = expr(node.value)
            end = pos[3]
            return s.Attribute(value=value, pos=pos, attr=s.Name(
                value=node.attr, pos=(pos[2], end - len(node.attr), pos[2], end)))
        if kind is ast.Call:
            return s.Call(func=expr(node.func), args=self.arguments(node.args, node.keywords),
                          pos=pos)
        if kind is ast.Constant:
            return self.constant(node, pos)
        if kind is ast.BinOp:
            return s.BinaryOperation(left=expr(node.left), right=expr(node.right), pos=pos,
                                     operator=_BINARY[type(node.op)]())
        if kind is ast.UnaryOp:
            return s.UnaryOperation(expression=expr(node.operand), pos=pos,
                                    operator=_UNARY[type(node.op)]())
        if kind is ast.BoolOp:
            operator = s.And if isinstance(node.op, ast.And) else s.Or
            values = [expr(v) for v in node.values]
            out = values[0]
            for value in values[1:]:
                out = s.BooleanOperation(left=out, right=value, operator=operator(),
                                         pos=(*out.pos[:2], *value.pos[2:]))
            return out
        if kind is ast.Compare:
            left = expr(node.left)
            lo, hi = self.offsets(pos)
            previous = self.offsets(self.widen(left.pos, lo, hi))[1]
            targets = []
            for op, comparator in zip(node.ops, node.comparators):
                value = expr(comparator)
                end = self.offsets(self.widen(value.pos, previous, hi))[1]
                targets.append(s.ComparisonTarget(comparator=value, operator=_COMPARE[type(op)](),
                                                  pos=self.span_of(previous, end)))
                previous = end
            return s.Comparison(left=left, comparisons=targets, pos=pos)
        if kind is ast.Subscript:
            value = expr(node.value)
            lo = self.src.text.index("[", self.offsets(value.pos)[1]) + 1
            return s.Subscript(value=value, slice=self.subscript(node.slice, lo, self.offsets(pos)[1] - 1),
                               pos=pos)
        if kind in (ast.Tuple, ast.List, ast.Set):
            lo, hi = self.offsets(pos)
            if kind is not ast.Tuple or self.src.text[lo] == "(" and node.elts and (
                    (node.elts[0].lineno, node.elts[0].col_offset) != (node.lineno, node.col_offset)):
                lo, hi = lo + 1, hi - 1
            elements = [self.element(e, lo, hi) for e in node.elts]
            if kind is ast.Tuple:
                pos = self.unparenthesized(pos, elements)
            return getattr(s, kind.__name__)(elements=elements, pos=pos)
        if kind is ast.Dict:
            elements = [s.StarredDictElement(value=expr(v), pos=self.starred(self.pos(v), "**")) if k is None
                        else s.DictElement(key=expr(k), value=expr(v),
                                           pos=(*self.pos(k)[:2], *self.pos(v)[2:]))
                        for k, v in zip(node.keys, node.values)]
            return s.Dict(elements=elements, pos=pos)
        if kind in (ast.ListComp, ast.SetComp, ast.GeneratorExp):
            elt = expr(node.elt)
            lo, hi = self.offsets(pos)
            for_in = self.comprehension(node.generators, self.offsets(self.widen(elt.pos, lo, hi))[1], hi)
            return getattr(s, {ast.ListComp: "ListComp", ast.SetComp: "SetComp",
                               ast.GeneratorExp: "GeneratorExp"}[kind])(elt=elt, for_in=for_in, pos=pos)
        if kind is ast.DictComp:
            value = expr(node.value)
            lo, hi = self.offsets(pos)
            for_in = self.comprehension(node.generators, self.offsets(self.widen(value.pos, lo, hi))[1], hi)
            return s.DictComp(key=expr(node.key), value=value, for_in=for_in, pos=pos)
        if kind is ast.Lambda:
            return s.Lambda(params=self.parameters(node.args), body=expr(node.body), pos=pos)
        if kind is ast.IfExp:
            return s.IfExp(test=expr(node.test), body=expr(node.body), orelse=expr(node.orelse),
                           pos=pos)
        if kind is ast.NamedExpr:
            return s.NamedExpr(target=expr(node.target), value=expr(node.value), pos=pos)
        if kind is ast.Await:
            return s.Await(expression=expr(node.value), pos=pos)
        if kind is ast.Yield:
            return s.Yield(value=None if node.value is None else expr(node.value), pos=pos)
        if kind is ast.YieldFrom:
            return s.Yield(value=self.from_(node.value, pos), pos=pos)
        if kind is ast.Starred:
            return s.StarredElement(value=expr(node.value), pos=pos)
        if kind is ast.JoinedStr:
            parts = [s.FormattedStringExpression(
                expression=expr(v.value),
                format_spec=None if v.format_spec is None else expr(v.format_spec).parts,
                pos=None) if isinstance(v, ast.FormattedValue)
                else s.FormattedStringText(value=v.value) for v in node.values]
            return s.FormattedString(parts=parts, pos=pos)
        if kind is ast.FormattedValue:
            return s.FormattedStringExpression(expression=expr(node.value), format_spec=None,
                                               pos=None)
        if kind is ast.Slice:
            return s.Slice(lower=None if node.lower is None else expr(node.lower),
                           upper=None if node.upper is None else expr(node.upper),
                           step=None if node.step is None else expr(node.step), pos=pos)
        raise TypeError(kind.__name__)

    def from_(self, node: ast.expr, around: tuple[int, int, int, int]) -> s.From:
        item = self.expr(node)
        lo, hi = self.offsets(around)
        start = self.offsets(item.pos)[0]
        keyword = self.keyword_start("from", lo, start)
        end = self.offsets(self.widen(item.pos, lo, hi))[1]
        return s.From(item=item, pos=self.span_of(keyword if keyword is not None else start, end))

    def unparenthesized(self, pos: tuple[int, int, int, int], elements: list) -> tuple:
        """libcst's range of a tuple leaves out its parentheses; ``ast``'s includes them."""
        if not elements:
            return pos
        text = self.src.segment(pos)
        first = elements[0].pos
        if text.startswith("(") and text.endswith(")") and (first[0], first[1]) != pos[:2]:
            return (*first[:2], *elements[-1].pos[2:])
        return pos

    def element(self, node: ast.expr, lo: int, hi: int) -> s.CSTNode:
        if isinstance(node, ast.Starred):
            return s.StarredElement(value=self.expr(node.value), pos=self.pos(node))
        value = self.expr(node)
        return s.Element(value=value, pos=self.widen(value.pos, lo, hi))

    def subscript(self, node: ast.expr, lo: int, hi: int) -> list[s.SubscriptElement]:
        if isinstance(node, ast.Tuple) and node.elts:
            pos = self.pos(node)
            if not self.src.segment(pos).startswith("("):
                return [self.subscript_element(e, lo, hi) for e in node.elts]
        return [self.subscript_element(node, lo, hi)]

    def subscript_element(self, node: ast.expr, lo: int, hi: int) -> s.SubscriptElement:
        if isinstance(node, ast.Slice):
            inner = self.expr(node)
        elif isinstance(node, ast.Starred):
            inner = s.Index(value=self.expr(node.value), star="*", pos=self.pos(node))
        else:
            value = self.expr(node)
            inner = s.Index(value=value, pos=self.widen(value.pos, lo, hi))
        return s.SubscriptElement(slice=inner, pos=inner.pos)

    def comprehension(self, generators: list[ast.comprehension], after: int, hi: int) -> s.CompFor:
        """The ``for ... in ... if ...`` chain; libcst starts each part where the previous
        one ends (``after``: the end of the element), whitespace included."""
        parts = []
        for generator in generators:
            target, iterable = self.expr(generator.target), self.expr(generator.iter)
            start, end = after, self.offsets(self.widen(iterable.pos, after, hi))[1]
            ifs = []
            for test in generator.ifs:
                value = self.expr(test)
                test_end = self.offsets(self.widen(value.pos, end, hi))[1]
                ifs.append(s.CompIf(test=value, pos=self.span_of(end, test_end)))
                end = test_end
            parts.append((generator, target, iterable, ifs, start))
            after = end
        inner = None
        for generator, target, iterable, ifs, start in reversed(parts):
            inner = s.CompFor(target=target, iter=iterable, ifs=ifs, inner_for_in=inner,
                              asynchronous=bool(generator.is_async) or None,
                              pos=self.span_of(start, after))
        return inner

    def constant(self, node: ast.Constant, pos: tuple[int, int, int, int]) -> s.CSTNode:
        value = node.value
        if value is None or value is True or value is False:
            return s.Name(value=_CONSTANT_NAMES[value], pos=pos)
        if value is ...:
            return s.Ellipsis(pos=pos)
        text = self.src.segment(pos)
        if isinstance(value, int):
            return s.Integer(value=text, pos=pos)
        if isinstance(value, float):
            return s.Float(value=text, pos=pos)
        if isinstance(value, complex):
            return s.Imaginary(value=text, pos=pos)
        first = _first_string(text)
        if first < len(text.rstrip()):  # "a" "b": libcst keeps the parts apart
            start, end = self.offsets(pos)
            rest = len(text) - len(text[first:].lstrip())
            return s.ConcatenatedString(
                left=s.SimpleString(value=text[:first], evaluated_value=None,
                                    pos=self.span_of(start, start + first)),
                right=s.SimpleString(value=text[rest:], evaluated_value=None,
                                     pos=self.span_of(start + rest, end)),
                evaluated_value=value, pos=pos)
        return s.SimpleString(value=text, evaluated_value=value, pos=pos)



def _first_string(text: str) -> int:
    """Where the first string token of ``text`` ends (implicit concatenation has more)."""
    opening = _QUOTE.search(text)
    if opening is None:
        return len(text)
    quote, start = opening.group(), opening.end()
    j = start
    while (j := text.find(quote, j)) >= 0:
        k = j
        while k > start and text[k - 1] == "\\":
            k -= 1
        if (j - k) % 2 == 0:  # not escaped (in raw strings too, a backslash keeps its quote)
            return j + len(quote)
        j += 1
    return len(text)
