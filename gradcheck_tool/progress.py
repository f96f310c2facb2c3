"""Progress on stderr, shown only once a probe has taken more than a moment.

On a terminal one line is rewritten in place (``\\r``), at most every ``INTERVAL_S``.  Elsewhere
(a CI log, pre-commit, a pipe) each stage gets one line, when it ends: a log must not fill
with thousands of counters.
"""
from __future__ import annotations

import sys
import time
from typing import Optional

from gradcheck_tool.errors import one_line


class Progress:
    DELAY_S = 1.0
    INTERVAL_S = 0.2

    def __init__(self, filename: str, interactive: Optional[bool] = None):
        self.filename = one_line(filename)
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.start = time.perf_counter()
        self.shown = 0.0

    def __call__(self, done: int, total: int, unit: str = "batch") -> None:
        now = time.perf_counter()
        if now - self.start < self.DELAY_S:
            return
        last = done == total
        if not last and (not self.interactive or now - self.shown < self.INTERVAL_S):
            return
        self.shown = now
        end = "\n" if last or not self.interactive else "\r"
        sys.stderr.write(f"gradhealth: probing {self.filename}: {unit} {done}/{total}{end}")
        sys.stderr.flush()
