"""Progress on stderr, shown only once a probe has taken more than a moment."""
from __future__ import annotations

import sys
import time


class Progress:
    DELAY_S = 1.0

    def __init__(self, filename: str):
        self.filename = filename
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, unit: str = "batch") -> None:
        if time.perf_counter() - self.start < self.DELAY_S:
            return
        end = "\n" if done == total or not sys.stderr.isatty() else "\r"
        sys.stderr.write(f"gradhealth: probing {self.filename}: {unit} {done}/{total}{end}")
        sys.stderr.flush()
