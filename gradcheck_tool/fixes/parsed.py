"""A source file parsed once for a codemod: its libcst tree, node positions, lines, and the
edits that findings have claimed so two fixes never touch the same text."""
from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Optional, Union

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, ParentNodeProvider, PositionProvider

from gradcheck_tool.findings import Edit, Position, split_lines


class ParsedFile:
    def __init__(self, source: str) -> None:
        self.source = source
        self.module = cst.parse_module(source)
        wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
        self.positions: Mapping[cst.CSTNode, CodeRange] = wrapper.resolve(PositionProvider)
        self.parents: Mapping[cst.CSTNode, cst.CSTNode] = wrapper.resolve(ParentNodeProvider)
        self.lines: list[str] = split_lines(source)
        self.claimed: list[Edit] = []
        self._offsets = [0]
        for line in self.lines:
            self._offsets.append(self._offsets[-1] + len(line))

    def start(self, node: cst.CSTNode) -> Position:
        """1-based, as findings and edits count (libcst's columns are 0-based)."""
        where = self.positions[node].start
        return Position(where.line, where.column + 1)

    def end(self, node: cst.CSTNode) -> Position:
        where = self.positions[node].end
        return Position(where.line, where.column + 1)

    def offset(self, pos: Position) -> int:
        row = min(max(pos.row, 1), len(self._offsets))
        return self._offsets[row - 1] + pos.column - 1

    def claim(self, edits: Iterable[Edit]) -> bool:
        """Reserve ``edits`` for one finding unless they overlap, or insert at or inside, what
        another finding claimed."""
        edits = tuple(edits)
        spans = [(self.offset(e.location), self.offset(e.end_location)) for e in edits]
        taken = [(self.offset(e.location), self.offset(e.end_location)) for e in self.claimed]
        for x0, x1 in spans:
            for y0, y1 in taken:
                if (x0 < y1 and y0 < x1) or x0 == y0 or (x0 == x1 and y0 <= x0 <= y1) or (
                        y0 == y1 and x0 <= y0 <= x1):
                    return False
        self.claimed.extend(edits)
        return True


def dotted(node: Optional[cst.CSTNode]) -> Optional[str]:
    """``a.b.c`` for a chain of attributes on a name, else None (the libcst twin of
    ``static.analysis.names.dotted``, for codemods on libcst trees)."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def import_aliases(node: Union[cst.Import, cst.ImportFrom]) -> Iterator[tuple[str, str]]:
    """(local name, qualified name) pairs an import statement binds; relative imports and
    ``*`` bind none we can name."""
    if isinstance(node, cst.Import):
        for alias in node.names:
            name = dotted(alias.name)
            if name is None:
                continue
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                yield alias.asname.name.value, name
            else:
                head = name.partition(".")[0]
                yield head, head
        return
    if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
        return
    module = dotted(node.module)
    if module is None:
        return
    for alias in node.names:
        if not isinstance(alias.name, cst.Name):
            continue
        local = alias.name.value
        if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
            local = alias.asname.name.value
        yield local, f"{module}.{alias.name.value}"
