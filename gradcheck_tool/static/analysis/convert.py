"""Build the :mod:`.syntax` tree (libcst's shapes) from the stdlib ``ast`` of a file.

One recursive pass over ``ast.parse``'s tree. What ``ast`` drops and the rules read is put
back from the source text: literal spellings (``Integer.value``), ``elif`` against
``else: if``, statements that share a line (``a; b``) or their header (``if x: y``),
the names of keywords, attributes and definitions, the positions of ``else`` and of those
names, and the comment lines above a statement.  Columns are converted from ``ast``'s UTF-8
byte offsets to characters, as libcst counts them.
"""
from __future__ import annotations

import ast
import bisect
import re
from typing import Optional

from gradcheck_tool.static.analysis import syntax as s

_NEWLINE = re.compile(r"\r\n?|\n")
_ELSE = re.compile(r"^[ \t\f]*else[ \t\f]*:", re.MULTILINE)
_FINALLY = re.compile(r"^[ \t\f]*finally[ \t\f]*:", re.MULTILINE)

_BINARY = {ast.Add: s.Add, ast.Sub: s.Subtract, ast.Mult: s.Multiply, ast.Div: s.Divide,
           ast.FloorDiv: s.FloorDivide, ast.Mod: s.Modulo, ast.Pow: s.Power,
           ast.MatMult: s.MatrixMultiply, ast.LShift: s.LeftShift, ast.RShift: s.RightShift,
           ast.BitOr: s.BitOr, ast.BitXor: s.BitXor, ast.BitAnd: s.BitAnd}
_AUGMENTED = {op: getattr(s, kind.__name__ + "Assign") for op, kind in _BINARY.items()}
_UNARY = {ast.USub: s.Minus, ast.UAdd: s.Plus, ast.Not: s.Not, ast.Invert: s.BitInvert}
_COMPARE = {ast.Eq: s.Equal, ast.NotEq: s.NotEqual, ast.Lt: s.LessThan, ast.LtE: s.LessThanEqual,
            ast.Gt: s.GreaterThan, ast.GtE: s.GreaterThanEqual, ast.Is: s.Is, ast.IsNot: s.IsNot,
            ast.In: s.In, ast.NotIn: s.NotIn}
_CONSTANT_NAMES = {True: "True", False: "False", None: "None"}


class Source:
    """The file's text by line, with byte-to-character column conversion and offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
        ends = self.starts[1:] + [len(text)]
        self.lines = [text[a:b] for a, b in zip(self.starts, ends)]
        self._ascii = [line.isascii() for line in self.lines]

    def column(self, line: int, byte: int) -> int:
        if line > len(self.lines) or self._ascii[line - 1]:
            return byte
        return len(self.lines[line - 1].encode("utf-8")[:byte].decode("utf-8", "replace"))

    def offset(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column if line <= len(self.starts) else len(self.text)

    def where(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset) - 1
        return line + 1, offset - self.starts[line]

    def segment(self, pos: tuple[int, int, int, int]) -> str:
        return self.text[self.offset(pos[0], pos[1]):self.offset(pos[2], pos[3])]


class Converter:
    def __init__(self, source: Source) -> None:
        self.src = source

    # -- positions -----------------------------------------------------------------------
    def pos(self, node: ast.AST) -> tuple[int, int, int, int]:
        column = self.src.column
        return (node.lineno, column(node.lineno, node.col_offset),
                node.end_lineno, column(node.end_lineno, node.end_col_offset))

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
        found = re.compile(rf"\b{keyword}\s+({re.escape(value)})\b").search(text, start)
        if found is None:
            return s.Name(value=value, pos=None)
        line, col = self.src.where(found.start(1))
        return self.name_at(value, line, col)

    # -- statements ------------------------------------------------------------------------
    def module(self, tree: ast.Module) -> s.Module:
        body = self.statements(tree.body)
        newline = _NEWLINE.search(self.src.text)
        return s.Module(body=body, default_newline=newline.group() if newline else "\n", source=self.src,
                        pos=(1, 0, len(self.src.lines) or 1, 0))

    def statements(self, nodes: list[ast.stmt]) -> list:
        """A block's statements: consecutive simple statements on one line form one line."""
        out: list = []
        line: list = []
        for node in nodes:
            if isinstance(node, _COMPOUND):
                if line:
                    out.append(self.line(line))
                    line = []
                out.append(self.compound(node))
            else:
                if line and node.lineno != line[-1].end_lineno:
                    out.append(self.line(line))
                    line = []
                line.append(node)
        if line:
            out.append(self.line(line))
        return out

    def line(self, nodes: list[ast.stmt]) -> s.SimpleStatementLine:
        body = [self.small(n) for n in nodes]
        first, last = body[0].pos, body[-1].pos
        return s.SimpleStatementLine(body=body, pos=(first[0], first[1], last[2], last[3]),
                                     leading_lines=self.leading(first[0]))

    def leading(self, line: int) -> tuple:
        """Blank and comment-only lines right above ``line``, top first, as libcst's
        ``EmptyLine``: ``indent`` when the line starts with the statement's indentation,
        ``whitespace`` what follows that indentation before the comment."""
        found = []
        lines = self.src.lines
        statement = lines[line - 1]
        block_indent = statement[:len(statement) - len(statement.lstrip(" \t\f"))]
        row = line - 2
        while row >= 0:
            text = lines[row].rstrip("\r\n")
            stripped = text.lstrip(" \t\f")
            if stripped and not stripped.startswith("#"):
                break
            indent = text.startswith(block_indent)
            space = text[len(block_indent) if indent else 0:len(text) - len(stripped)]
            found.append(s.EmptyLine(indent, s.Text(space),
                                     s.Text(stripped.rstrip()) if stripped else None))
            row -= 1
        return tuple(reversed(found))

    def block(self, nodes: list[ast.stmt]) -> s.CSTNode:
        """An indented block, or a suite when the body sits on the header's line."""
        first = nodes[0]
        line = self.src.lines[first.lineno - 1]
        before = line[:self.src.column(first.lineno, first.col_offset)]
        if before.strip() and not isinstance(first, _COMPOUND):
            suite = self.line(nodes)
            return s.SimpleStatementSuite(body=suite.body, pos=suite.pos)
        body = self.statements(nodes)
        return s.IndentedBlock(body=body, pos=(body[0].pos[0], body[0].pos[1],
                                               body[-1].pos[2], body[-1].pos[3]))

    def keyword_block(self, kind: type, pattern: re.Pattern, after: ast.AST,
                      nodes: list[ast.stmt]) -> s.CSTNode:
        """``else:`` / ``finally:`` and its body; the keyword found between ``after`` and it."""
        body = self.block(nodes)
        end = self.src.offset(*self.pos(after)[2:])
        found = pattern.search(self.src.text, end, self.src.offset(*self.pos(nodes[0])[:2]))
        if found is None:
            start = body.pos[:2]
        else:
            keyword = found.group().lstrip(" \t\f")
            start = self.src.where(found.end() - len(keyword))
        return kind(body=body, pos=(*start, *body.pos[2:]))

    def orelse(self, node: ast.AST, nodes: list[ast.stmt], after: ast.AST) -> Optional[s.CSTNode]:
        if not nodes:
            return None
        if isinstance(node, ast.If) and len(nodes) == 1 and isinstance(nodes[0], ast.If):
            inner = nodes[0]
            line = self.src.lines[inner.lineno - 1]
            if line[self.src.column(inner.lineno, inner.col_offset):].startswith("elif"):
                return self.compound(inner)
        return self.keyword_block(s.Else, _ELSE, after, nodes)

    def compound(self, node: ast.stmt) -> s.CSTNode:
        converted = self._compound(node)
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        converted.leading_lines = self.leading(first)
        return converted

    def _compound(self, node: ast.stmt) -> s.CSTNode:
        pos = self.pos(node)
        if isinstance(node, ast.If):
            return s.If(test=self.expr(node.test), body=self.block(node.body),
                        orelse=self.orelse(node, node.orelse, node.body[-1]), pos=pos)
        if isinstance(node, (ast.For, ast.AsyncFor)):
            return s.For(target=self.expr(node.target), iter=self.expr(node.iter),
                         body=self.block(node.body),
                         orelse=self.orelse(node, node.orelse, node.body[-1]), pos=pos,
                         asynchronous=isinstance(node, ast.AsyncFor) or None)
        if isinstance(node, ast.While):
            return s.While(test=self.expr(node.test), body=self.block(node.body),
                           orelse=self.orelse(node, node.orelse, node.body[-1]), pos=pos)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            items = [self.with_item(i) for i in node.items]
            return s.With(items=items, body=self.block(node.body), pos=pos,
                          asynchronous=isinstance(node, ast.AsyncWith) or None)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return s.FunctionDef(
                name=self.name_after(node.name, node, "def"), params=self.parameters(node.args),
                body=self.block(node.body), decorators=self.decorators(node.decorator_list),
                returns=None if node.returns is None else s.Annotation(
                    annotation=self.expr(node.returns), pos=self.pos(node.returns)),
                pos=pos, asynchronous=isinstance(node, ast.AsyncFunctionDef) or None)
        if isinstance(node, ast.ClassDef):
            return s.ClassDef(
                name=self.name_after(node.name, node, "class"), body=self.block(node.body),
                bases=[self.positional(b) for b in node.bases],
                keywords=[self.keyword(k) for k in node.keywords],
                decorators=self.decorators(node.decorator_list), pos=pos)
        if isinstance(node, _TRY):
            handlers = [s.ExceptHandler(
                body=self.block(h.body), type=None if h.type is None else self.expr(h.type),
                name=None if h.name is None else s.AsName(
                    name=self.name_after(h.name, h, "as"), pos=None), pos=self.pos(h))
                for h in node.handlers]
            last = (node.handlers[-1].body if node.handlers else node.body)[-1]
            orelse = (self.keyword_block(s.Else, _ELSE, last, node.orelse)
                      if node.orelse else None)
            last = node.orelse[-1] if node.orelse else last
            final = (self.keyword_block(s.Finally, _FINALLY, last, node.finalbody)
                     if node.finalbody else None)
            kind = s.Try if isinstance(node, ast.Try) else s.TryStar
            return kind(body=self.block(node.body), handlers=handlers, orelse=orelse,
                        finalbody=final, pos=pos)
        if isinstance(node, ast.Match):
            cases = [s.MatchCase(pattern=None, body=self.block(c.body),
                                 guard=None if c.guard is None else self.expr(c.guard),
                                 pos=self.pos(c.pattern))
                     for c in node.cases]
            return s.Match(subject=self.expr(node.subject), cases=cases, pos=pos)
        raise TypeError(type(node).__name__)

    def with_item(self, item: ast.withitem) -> s.WithItem:
        value = self.expr(item.context_expr)
        if item.optional_vars is None:
            return s.WithItem(item=value, asname=None, pos=value.pos)
        target = self.expr(item.optional_vars)
        end = self.offsets(value.pos)[1]
        target_end = self.offsets(self.pos(item.optional_vars))[1]
        return s.WithItem(item=value, asname=s.AsName(name=target, pos=self.span_of(end, target_end)),
            pos=(*value.pos[:2], *self.src.where(target_end)))

    def decorators(self, nodes: list[ast.expr]) -> list[s.Decorator]:
        out = []
        for node in nodes:
            pos = self.pos(node)
            at = self.src.lines[pos[0] - 1].rfind("@", 0, pos[1])
            out.append(s.Decorator(decorator=self.expr(node),
                                   pos=(pos[0], at if at >= 0 else pos[1], *pos[2:])))
        return out

    def small(self, node: ast.stmt) -> s.CSTNode:
        pos = self.pos(node)
        expr = self.expr
        if isinstance(node, ast.Expr):
            return s.Expr(value=expr(node.value), pos=pos)
        if isinstance(node, ast.Assign):
            targets = [s.AssignTarget(target=expr(t), pos=self.pos(t)) for t in node.targets]
            return s.Assign(targets=targets, value=expr(node.value), pos=pos)
        if isinstance(node, ast.AugAssign):
            return s.AugAssign(target=expr(node.target), value=expr(node.value), pos=pos,
                               operator=_AUGMENTED[type(node.op)]())
        if isinstance(node, ast.AnnAssign):
            return s.AnnAssign(target=expr(node.target), annotation=s.Annotation(
                annotation=expr(node.annotation), pos=self.pos(node.annotation)),
                value=None if node.value is None else expr(node.value), pos=pos)
        if isinstance(node, ast.Return):
            return s.Return(value=None if node.value is None else expr(node.value), pos=pos)
        if isinstance(node, (ast.Pass, ast.Break, ast.Continue)):
            return getattr(s, type(node).__name__)(pos=pos)
        if isinstance(node, ast.Raise):
            return s.Raise(exc=None if node.exc is None else expr(node.exc),
                           cause=None if node.cause is None else self.from_(node.cause, pos),
                           pos=pos)
        if isinstance(node, ast.Assert):
            return s.Assert(test=expr(node.test),
                            msg=None if node.msg is None else expr(node.msg), pos=pos)
        if isinstance(node, ast.Delete):
            targets = [expr(t) for t in node.targets]
            target = targets[0] if len(targets) == 1 else s.Tuple(
                elements=[s.Element(value=t, pos=t.pos) for t in targets],
                pos=(*targets[0].pos[:2], *targets[-1].pos[2:]))
            return s.Del(target=target, pos=pos)
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            names = [s.NameItem(name=s.Name(value=n)) for n in node.names]
            return getattr(s, type(node).__name__)(names=names, pos=pos)
        if isinstance(node, ast.Import):
            return s.Import(names=[self.alias(a) for a in node.names], pos=pos)
        if isinstance(node, ast.ImportFrom):
            if len(node.names) == 1 and node.names[0].name == "*":
                names = s.ImportStar()
            else:
                names = [self.alias(a) for a in node.names]
            module = None
            if node.module is not None:
                start = self.src.offset(*pos[:2])
                found = re.compile(r"from[ \t\f\\\r\n]*\.*[ \t\f]*").match(self.src.text, start)
                module = self.dotted_name(node.module, found.end() if found else None)
            return s.ImportFrom(module=module, names=names, pos=pos,
                                relative=[s.Dot() for _ in range(node.level or 0)])
        if hasattr(ast, "TypeAlias") and isinstance(node, ast.TypeAlias):
            return s.TypeAlias(name=expr(node.name), value=expr(node.value), pos=pos)
        raise TypeError(type(node).__name__)

    def dotted_name(self, dotted: str, start: Optional[int]) -> s.CSTNode:
        """``a.b.c`` as nested Attribute/Name nodes (import statements), starting at offset
        ``start`` of the source (written without spaces around the dots)."""
        def at(a: int, b: int):
            return None if start is None else self.span_of(start + a, start + b)
        parts = dotted.split(".")
        out: s.CSTNode = s.Name(value=parts[0], pos=at(0, len(parts[0])))
        end = len(parts[0])
        for part in parts[1:]:
            attr = s.Name(value=part, pos=at(end + 1, end + 1 + len(part)))
            end += 1 + len(part)
            out = s.Attribute(value=out, attr=attr, pos=at(0, end))
        return out

    def alias(self, node: ast.alias) -> s.ImportAlias:
        pos = self.pos(node)
        start, end = self.offsets(pos)
        name = self.dotted_name(node.name, start)
        asname = None
        if node.asname is not None:
            asname = s.AsName(name=s.Name(value=node.asname, pos=self.span_of(end - len(node.asname), end)),
                              pos=self.span_of(start + len(node.name), end))
        return s.ImportAlias(name=name, asname=asname, pos=pos)

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
    i = 0
    while i < len(text) and text[i] not in "'\"":
        i += 1
    quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else text[i:i + 1]
    j = i + len(quote)
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text.startswith(quote, j):
            return j + len(quote)
        j += 1
    return len(text)


_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.FunctionDef,
             ast.AsyncFunctionDef, ast.ClassDef, ast.Try, ast.Match,
             *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))
_TRY = (ast.Try, *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))


def convert(tree: ast.Module, source: str) -> s.Module:
    """The :mod:`.syntax` tree of a module ``ast.parse`` accepted."""
    return Converter(Source(source)).module(tree)
