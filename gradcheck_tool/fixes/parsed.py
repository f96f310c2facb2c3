"""A source file parsed once for a codemod: its libcst tree, node positions, lines, and the
edits that findings have claimed so two fixes never touch the same text."""
from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Optional, Union

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, ParentNodeProvider, PositionProvider

from gradcheck_tool.findings import Edit, Position, split_lines
from gradcheck_tool.static.analysis import names


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
    """``names.dotted`` on a libcst tree."""
    return names.dotted(node, cst)


def import_aliases(node: Union[cst.Import, cst.ImportFrom]) -> Iterator[tuple[str, str]]:
    """``names.import_aliases`` on a libcst tree: relative imports and ``*`` bind none we can name."""
    return names.import_aliases(node, cst)
