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


def module_imports(module: cst.Module) -> dict[str, str]:
    """Module-level import bindings: alias -> qualified name (``nn`` -> ``torch.nn``)."""
    found: dict[str, str] = {}

    class Visitor(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_Import(self, node: cst.Import) -> None:
            for local, full in import_aliases(node):
                if local == full:  # `import torch.nn` binds `torch`, unless an alias already took it
                    found.setdefault(local, full)
                else:
                    found[local] = full

        def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
            found.update(import_aliases(node))

    module.visit(Visitor())
    return found


def spelling(imports: Mapping[str, str], qualified: str) -> Optional[str]:
    """How a file with these ``imports`` (``module_imports``) spells ``qualified`` (``torch.nn``,
    ``torch.nn.init``): its shortest alias path, or None when it imports none of it."""
    options = []
    for alias, full in imports.items():
        if qualified == full:
            options.append(alias)
        elif qualified.startswith(full + "."):
            options.append(alias + qualified[len(full):])
    return min(options, key=lambda s: (s.count("."), len(s))) if options else None
