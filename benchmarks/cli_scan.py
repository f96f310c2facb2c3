"""``gradhealth scan ARGS --format json`` in a subprocess, as the benchmarks that scan real models run it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple, Optional

ROOT = Path(__file__).resolve().parent.parent


class Scan(NamedTuple):
    code: int  # the exit status
    report: Optional[dict]  # the JSON report; None when stdout held none
    stdout: str
    stderr: str
    wall: float  # seconds, process start to exit


def scan_json(*args: str, cwd: Optional[Path] = None, timeout: float = 900) -> Scan:
    """This checkout's gradhealth (first on ``PYTHONPATH``, whatever the working directory)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", *args, "--format", "json"], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - start
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = None
    return Scan(proc.returncode, report, proc.stdout, proc.stderr, wall)
