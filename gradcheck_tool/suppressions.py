"""In-source suppressions, read from comments without parsing the file.

    x = step()  # gradhealth: ignore[GH201]        this line
    # gradhealth: ignore[missing-zero-grad]         a comment-only line covers the next line too
    x = step()  # noqa: GH201, GH205                flake8/ruff's form, GH codes only
    # gradhealth: ignore-file[GH206]                anywhere: the whole file (no brackets: every rule)

``# gradhealth: ignore`` with no brackets silences every rule on its line.  A bare
``# noqa`` is left to the other linters it was written for.  Comments are found with
``tokenize`` so text inside strings never counts; a file that does not tokenize falls
back to a line scan.
"""
from __future__ import annotations

import io
import re
import tokenize
from types import MappingProxyType
from typing import Iterator, Mapping, NamedTuple, Optional

from gradcheck_tool.findings import Finding

# Patterns, compiled by `re` on first use (its cache): most files hold no directive at all.
_DIRECTIVE = r"(?i)#\s*gradhealth:\s*ignore(?P<file>-file)?\b(?:\[(?P<codes>[^\]]*)\])?"
_NOQA = r"(?i)#\s*noqa:\s*(?P<codes>[A-Za-z0-9_\-]+(?:[\s,]+[A-Za-z0-9_\-]+)*)"
ALL = "*"


def _selectors(text: Optional[str]) -> set[str]:
    if text is None:
        return {ALL}
    return {part.strip() for part in re.split(r"[\s,]+", text) if part.strip()}


class Suppressions(NamedTuple):
    lines: Mapping[int, frozenset[str]] = MappingProxyType({})
    file: frozenset[str] = frozenset()

    def covers(self, finding: Finding) -> bool:
        """A selector names the finding as ``--select`` would: ``*``/``ALL``, its rule's name, or a
        prefix of its code (``GH2``, ``GH201``); an unknown one matches nothing."""
        row = finding.location.row if finding.location else None
        for selectors in (self.file, self.lines.get(row, frozenset()) if row else frozenset()):
            if any(_selects(s, finding) for s in selectors):
                return True
        return False


def _selects(selector: str, finding: Finding) -> bool:
    upper = selector.upper()
    return (selector == ALL or upper == "ALL" or selector.lower() == finding.name
            or (upper.startswith("GH") and finding.code.startswith(upper)))


def _comments(source: str) -> Iterator[tuple[int, str, bool]]:
    """(row, comment text, whether the line holds nothing but the comment)."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.string, not tok.line[: tok.start[1]].strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        for row, line in enumerate(source.splitlines(), start=1):
            if "#" in line:
                index = line.index("#")
                yield row, line[index:], not line[:index].strip()


def parse(source: str) -> Suppressions:
    if "gradhealth:" not in source and "noqa" not in source.lower():
        return Suppressions()
    lines: dict[int, set[str]] = {}
    whole_file: set[str] = set()
    for row, comment, alone in _comments(source):
        found: set[str] = set()
        for match in re.finditer(_DIRECTIVE, comment):
            if match.group("file"):
                whole_file |= _selectors(match.group("codes"))
            else:
                found |= _selectors(match.group("codes"))
        for match in re.finditer(_NOQA, comment):
            found |= {c for c in _selectors(match.group("codes")) if c.upper().startswith("GH")}
        if found:
            lines.setdefault(row, set()).update(found)
            if alone:  # a comment on its own line speaks for the line below
                lines.setdefault(row + 1, set()).update(found)
    return Suppressions({row: frozenset(codes) for row, codes in lines.items()}, frozenset(whole_file))
