"""Probe a file's model in a child process, with a wall-clock timeout and a memory cap.

gradhealth runs other people's model code; a hang, a segfault, an OOM kill or an exit in
that code must become one clear error naming the file and what happened, never a hung or
dead parent.  The child runs in its own session, so a timeout kills everything it started
(data-loader workers included).
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.findings import Finding, ProbeResult

_GIB = 1024**3


def default_memory_cap() -> Optional[int]:
    """80% of physical memory: the child fails cleanly before the machine starts swapping."""
    try:
        return int(0.8 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _describe_exit(code: int, display_name: str, cap: Optional[int]) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        if -code == signal.SIGKILL:
            limit = f" (the cap is {cap / _GIB:.1f} GiB: --max-memory)" if cap else ""
            return f"{display_name}: the probe was killed ({name}): out of memory{limit}, or killed from outside"
        return f"{display_name}: the probe crashed ({name}) in native code while running the model"
    return (f"{display_name}: the probe exited with code {code} before finishing "
            "(os._exit or a crash in the file's code?)")


def probe_in_child(path: Path, options, display_name: str, optimizer=None) -> tuple[list[Finding], ProbeResult]:
    """``runtime.scan_path`` in a child process.  ``options``: api.ScanOptions; ``optimizer``:
    static.optim.OptimizerCall or None."""
    cap = options.max_memory if options.max_memory is not None else default_memory_cap()
    if not str(options.device).startswith("cpu"):
        cap = None  # CUDA maps far more address space than it uses: RLIMIT_AS would break it
    with tempfile.TemporaryDirectory(prefix="gradhealth-") as tmp:
        result_path = Path(tmp) / "result.pickle"
        command = [sys.executable, "-m", "gradcheck_tool.child", str(result_path), str(cap or 0)]
        child = subprocess.Popen(command, stdin=subprocess.PIPE, start_new_session=True)
        try:
            child.communicate(pickle.dumps((path, options, display_name, optimizer)), timeout=options.timeout or None)
        except subprocess.TimeoutExpired:
            _kill(child)
            raise GradhealthError(f"{display_name}: the probe did not finish within {options.timeout:g}s; the model "
                                  "may hang (an input() call, a blocking data loader), or needs --timeout") from None
        except BaseException:  # Ctrl-C: the child is in its own session and did not get it
            _kill(child)
            raise
        if not result_path.exists():
            raise GradhealthError(_describe_exit(child.returncode, display_name, cap))
        with open(result_path, "rb") as handle:
            result = pickle.load(handle)  # written by our own child
    if result[0] == "error":
        message = result[1]
        raise GradhealthError(message if display_name in message else f"{display_name}: {message}")
    return result[1], result[2]


def _kill(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()
