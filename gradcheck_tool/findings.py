"""Frozen records shared by every stage: what a rule found and how to fix it.

Rows and columns are 1-based and end-exclusive (ruff's convention), so a
finding can be pasted into an editor's "go to line:column" as it is.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the only line endings (Python's tokenizer, libcst)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def split_lines(source: str) -> list[str]:
    """The rows positions count, with their endings.  Rows end at \\r\\n, \\r or \\n only, as
    for Python's tokenizer and libcst; str.splitlines would also split at \\x0c, \\x85 or
    \\u2028 and shift every later position."""
    return _LINE.findall(source)


def newline_of(source: str) -> str:
    """The file's line ending (its first one: LF, CRLF or CR); LF for a one-line file."""
    found = LINE_BREAK.search(source)
    return found.group() if found else "\n"


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]

    def at_least(self, other: "Severity") -> bool:
        return self.rank >= other.rank


class Applicability(str, enum.Enum):
    SAFE = "safe"  # keeps meaning
    UNSAFE = "unsafe"  # changes training behaviour; needs --unsafe-fixes
    DISPLAY_ONLY = "displayonly"  # advice only


@dataclass(frozen=True)
class Position:
    """A 1-based row and column."""

    row: int
    column: int


@dataclass(frozen=True)
class Span:
    """Where something lives in a source file."""

    filename: str
    start: Position
    end: Position


@dataclass(frozen=True)
class Edit:
    """Replace the text from ``location`` up to ``end_location`` (exclusive) by ``content``."""

    content: str
    location: Position
    end_location: Position


@dataclass(frozen=True)
class Fix:
    """How to fix a finding: the edits and whether applying them keeps the code's meaning."""

    applicability: Applicability
    message: str
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True)
class Finding:
    """What a rule found: its code, severity, message, where, the numbers behind it, a fix."""

    code: str
    name: str
    severity: Severity
    message: str
    filename: Optional[str] = None
    location: Optional[Position] = None
    end_location: Optional[Position] = None
    module: Optional[str] = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    fix: Optional[Fix] = None

    @property
    def sort_key(self) -> tuple:
        loc = self.location or Position(0, 0)
        return (self.filename or "", loc.row, loc.column, self.code, self.module or "")


class ProbeStatus(str, enum.Enum):
    OK = "ok"
    SKIPPED = "skipped"  # the file defines no model: only static checks apply
    FAILED = "failed"


@dataclass(frozen=True)
class ProbeResult:
    """One file's probe: its status and, when it ran, the measured record."""

    filename: str
    status: ProbeStatus
    reason: str = ""
    record: Optional[Any] = None  # gradcheck_tool.probe.record.ProbeRecord


@dataclass(frozen=True)
class Report:
    """Every finding and probe of one run, and how many files it read."""

    findings: tuple[Finding, ...] = ()
    probes: tuple[ProbeResult, ...] = ()
    files: int = 0
    root: Optional[str] = None  # absolute project root; SARIF URIs are relative to it

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def worst_at_least(self, threshold: Severity) -> bool:
        return any(f.severity.at_least(threshold) for f in self.findings)
