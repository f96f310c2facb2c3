"""Where a node lies: its syntactic range as libcst's ``PositionProvider`` gives it (1-based
lines, 0-based character columns, end exclusive), recorded on each node by :mod:`.convert`."""
from __future__ import annotations

from typing import Optional

from gradcheck_tool.static.analysis.syntax import CodePosition, CodeRange, CSTNode


class Positions:
    """``positions.get(node)``: a node's :class:`CodeRange`, or None where it has none."""

    def get(self, node: CSTNode) -> Optional[CodeRange]:
        where = getattr(node, "pos", None)
        if where is None:
            return None
        return CodeRange(CodePosition(where[0], where[1]), CodePosition(where[2], where[3]))


POSITIONS = Positions()
