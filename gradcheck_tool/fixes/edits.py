"""Edits as text operations: apply them, tell whether they overlap or delete a comment, make a diff."""
from __future__ import annotations

import dataclasses
import difflib
import io
import tokenize
from typing import Iterable, Sequence

from gradcheck_tool.findings import LINE_BREAK, Edit, Position, split_lines

NO_NEWLINE = "\\ No newline at end of file\n"


def with_newline(edits: Iterable[Edit], newline: str) -> tuple[Edit, ...]:
    """The edits with every line break in their text written as the file writes its own."""
    return tuple(dataclasses.replace(e, content=LINE_BREAK.sub(newline, e.content)) for e in edits)


def _offsets(source: str) -> list[int]:
    """Start offset of each 1-based row (index 0 unused); rows as ``split_lines`` counts them."""
    starts = [0, 0]
    for line in split_lines(source):
        starts.append(starts[-1] + len(line))
    return starts


def offset(source: str, pos: Position, starts: list[int] | None = None) -> int:
    starts = starts or _offsets(source)
    row = min(max(pos.row, 1), len(starts) - 1)
    return min(starts[row] + pos.column - 1, len(source))


def span(source: str, edit: Edit, starts: list[int]) -> tuple[int, int]:
    return offset(source, edit.location, starts), offset(source, edit.end_location, starts)


def apply(source: str, edits: Sequence[Edit]) -> str:
    """Apply non-overlapping edits (1-based rows/columns, end-exclusive) in one pass."""
    starts = _offsets(source)
    spans = sorted(((*span(source, e, starts), e.content) for e in edits), reverse=True)
    out = source
    previous_start = len(source) + 1
    for start, end, content in spans:
        if end > previous_start:
            raise ValueError("overlapping edits")
        out = out[:start] + content + out[end:]
        previous_start = start
    return out


def overlaps(source: str, a: Iterable[Edit], b: Iterable[Edit]) -> bool:
    starts = _offsets(source)
    sa = [span(source, e, starts) for e in a]
    return any(x0 < y1 and y0 < x1 or (x0 == x1 == y0 == y1)
               for x0, x1 in sa for y0, y1 in (span(source, e, starts) for e in b))


def deletes_comment(source: str, edits: Iterable[Edit]) -> bool:
    """Whether an edit removes a comment that its replacement text does not keep."""
    starts = _offsets(source)
    comments: list[tuple[int, str]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments.append((starts[tok.start[0]] + tok.start[1], tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return True  # cannot tell: treat as unsafe
    for edit in edits:
        start, end = span(source, edit, starts)
        if any(start <= at < end and text not in edit.content for at, text in comments):
            return True
    return False


def unified_diff(original: str, fixed: str, filename: str) -> str:
    """A diff ``git apply`` and ``patch`` accept: a last line without a line break is marked
    ``\\ No newline at end of file``, and rows are the file's own (CR-only files included)."""
    out = []
    for line in difflib.unified_diff(split_lines(original), split_lines(fixed),
                                     fromfile=f"a/{filename}", tofile=f"b/{filename}"):
        if line.endswith(("\n", "\r")):
            out.append(line)
        else:
            out.append(line + "\n" + NO_NEWLINE)
    return "".join(out)
