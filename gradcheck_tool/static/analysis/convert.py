"""Build the :mod:`.syntax` tree (libcst's shapes) from the stdlib ``ast`` of a file: the
statements here, the expressions in :mod:`.expressions`.

One recursive pass over ``ast.parse``'s tree. What ``ast`` drops and the rules read is put
back from the source text: literal spellings (``Integer.value``), ``elif`` against
``else: if``, statements that share a line (``a; b``) or their header (``if x: y``),
the names of keywords, attributes and definitions, the positions of ``else`` and of those
names, and the comment lines above a statement.  Columns are converted from ``ast``'s UTF-8
byte offsets to characters, as libcst counts them.
"""
from __future__ import annotations

import ast
import re
from typing import Optional

from gradcheck_tool.static.analysis import syntax as s
from gradcheck_tool.findings import newline_of
from gradcheck_tool.static.analysis.expressions import AUGMENTED, Expressions, Source

_ELSE = re.compile(r"^[ \t\f]*else[ \t\f]*:", re.MULTILINE)
_FINALLY = re.compile(r"^[ \t\f]*finally[ \t\f]*:", re.MULTILINE)


class Converter(Expressions):
    """Statements, blocks and the module; expressions come from :class:`Expressions`."""

    # -- statements ------------------------------------------------------------------------
    def module(self, tree: ast.Module) -> s.Module:
        body = self.statements(tree.body)
        return s.Module(body=body, default_newline=newline_of(self.src.text), source=self.src,
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
                               operator=AUGMENTED[type(node.op)]())
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

_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.FunctionDef,
             ast.AsyncFunctionDef, ast.ClassDef, ast.Try, ast.Match,
             *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))
_TRY = (ast.Try, *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))


def convert(tree: ast.Module, source: str) -> s.Module:
    """The :mod:`.syntax` tree of a module ``ast.parse`` accepted."""
    return Converter(Source(source)).module(tree)
