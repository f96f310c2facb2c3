"""The parsed file and everything derived from it (:class:`SourceContext`), shared by every rule and fix."""
from __future__ import annotations

from functools import cached_property
from typing import Optional

from gradcheck_tool.findings import Edit, Position, split_lines
from gradcheck_tool.static.analysis.events import Iteration, training_iterations
from gradcheck_tool.static.analysis.facts import FileFacts, Site
from gradcheck_tool.static.analysis import syntax
from gradcheck_tool.static.analysis.positions import POSITIONS, Positions


class SourceContext:
    """One parsed file and everything derived from it, shared read-only by all rules."""

    def __init__(self, filename: str, source: str, module: syntax.Module, facts: FileFacts) -> None:
        self.filename = filename
        self.source = source
        self.module = module
        self.facts = facts

    @cached_property
    def iterations(self) -> tuple[Iteration, ...]:
        """The training loops' events, read when a rule first asks (a model file's rules do not)."""
        return training_iterations(self.facts, self.module)

    @property
    def positions(self) -> Positions:
        return POSITIONS

    @cached_property
    def lines(self) -> tuple[str, ...]:
        return tuple(split_lines(self.source))

    def span(self, node: syntax.CSTNode) -> tuple[Optional[Position], Optional[Position]]:
        """1-based, end-exclusive (ruff's convention): node columns are 0-based."""
        where = self.positions.get(node)
        if where is None:
            return None, None
        return (Position(where.start.line, where.start.column + 1),
                Position(where.end.line, where.end.column + 1))

    def line(self, node: syntax.CSTNode) -> Optional[int]:
        start, _ = self.span(node)
        return start.row if start else None

    def code(self, node: syntax.CSTNode) -> str:
        return self.module.code_for_node(node).strip()

    def indent(self, statement: Optional[syntax.CSTNode]) -> Optional[str]:
        where = self.positions.get(statement) if statement is not None else None
        if where is None or where.start.line > len(self.lines):
            return None
        prefix = self.lines[where.start.line - 1][: where.start.column]
        return prefix if not prefix.strip() else None

    def insert_lines(self, site: Site, text: str, *, after: bool = False) -> Optional[Edit]:
        """An edit putting ``text`` (one or more lines) on its own lines before/after the
        statement that holds ``site``, at its indentation; None where that is unclear."""
        statement = site.statement
        if not standalone(site):
            return None
        indent = self.indent(statement)
        where = self.positions.get(statement)
        if indent is None or where is None:
            return None
        row = where.end.line + 1 if after else where.start.line
        if after and not self.lines[-1].endswith(("\n", "\r")) and row > len(self.lines):
            return None
        body = "".join(f"{indent}{line}\n" for line in text.splitlines())
        return Edit(content=body, location=Position(row, 1), end_location=Position(row, 1))

    def replace(self, node: syntax.CSTNode, text: str) -> Optional[Edit]:
        start, end = self.span(node)
        if start is None or end is None:
            return None
        return Edit(content=text, location=start, end_location=end)


def standalone(site: Site) -> bool:
    """Whether the site is the whole statement on its line (so lines can go around it)."""
    statement = site.statement
    if statement is None or len(statement.body) != 1:
        return False
    only = statement.body[0]
    return only is site.node or (isinstance(only, syntax.Expr) and only.value is site.node)
