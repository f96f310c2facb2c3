"""Probe a file's model in a child process, with a wall-clock timeout and a memory cap.

gradhealth runs other people's model code; a hang, a segfault, an OOM kill or an exit in
that code must become one clear error naming the file and what happened, never a hung or
dead parent, and nothing it started may outlive gradhealth:

* the child runs in its own session and process group, which is killed on every way out of
  ``probe_in_child``: normal end, error, timeout, and a signal to gradhealth (the CLI turns
  SIGTERM/SIGHUP into an exception, so this ``finally`` runs);
* the child holds the read end of a "lifeline" pipe and kills its own group when it reads EOF,
  which happens when gradhealth dies in any way, SIGKILL included;
* the child's stdout and stderr are a private pipe that the parent relays to its stderr, so a
  process the model starts in a new session (a daemon) never holds the caller's pipes
  (pre-commit's, ``subprocess.run``'s); any process still holding the private pipe after the
  child's end is found and killed;
* the job, the result and the child's TMPDIR live in one private temporary directory
  (mode 0700), removed on every way out.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.findings import Finding, ProbeResult
from gradcheck_tool.project import stdlib_first

_GIB = 1024**3
_DRAIN_S = 0.5  # how long the relay waits for the pipe's EOF once the child is gone
TOKEN_VARIABLE = "GRADHEALTH_PROBE"  # in the child's environment, so its descendants can be found


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
            limit = f" (the cap is {cap / _GIB:.3g} GiB: raise it with --max-memory)" if cap else ""
            return f"{display_name}: the probe was killed ({name}): out of memory{limit}, or killed from outside"
        return f"{display_name}: the probe crashed ({name}) in native code while running the model"
    return (f"{display_name}: the probe exited with code {code} before finishing "
            "(os._exit or a crash in the file's code?)")


def child_command(arguments: list[str]) -> list[str]:
    """``python -c`` with the parent's sys.path set explicitly, standard library first and without the
    working directory: a ``random.py`` or ``torch.py`` there must not shadow the real ones in the
    child (``-m`` would put the working directory first); the loader adds the user's project
    folders, after the standard library."""
    # The working directory only where gradhealth itself is imported from (a source checkout).
    home, cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.getcwd()
    path = [p for p in stdlib_first(sys.path) if os.path.abspath(p) != cwd or os.path.abspath(p) == home]
    boot = (f"import sys; sys.path[:] = {path!r}; from gradcheck_tool.child import main; "
            "sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", boot, *arguments]


def probe_in_child(path: Path, options, display_name: str, optimizer=None) -> tuple[list[Finding], ProbeResult]:
    """``runtime.scan_path`` in a child process.  ``options``: api.ScanOptions; ``optimizer``:
    static.analysis.optim.OptimizerCall or None."""
    cap = options.max_memory if options.max_memory is not None else default_memory_cap()
    if not str(options.device).startswith("cpu"):
        cap = None  # CUDA maps far more address space than it uses: RLIMIT_AS would break it
    with tempfile.TemporaryDirectory(prefix="gradhealth-") as tmp:
        job, result_path, child_tmp = Path(tmp) / "job.pickle", Path(tmp) / "result.pickle", Path(tmp) / "tmp"
        child_tmp.mkdir()
        job.write_bytes(pickle.dumps((path, options, display_name, optimizer)))
        arguments = [str(job), str(result_path), str(cap or 0), str(int(sys.stderr.isatty()))]
        env = {**os.environ, "TMPDIR": str(child_tmp), TOKEN_VARIABLE: Path(tmp).name}
        returncode = _run_child(arguments, env, options.timeout, display_name)
        if not result_path.exists():
            raise GradhealthError(_describe_exit(returncode, display_name, cap))
        with open(result_path, "rb") as handle:
            result = pickle.load(handle)  # written by our own child
    if result[0] == "error":
        message = result[1]
        raise GradhealthError(message if display_name in message else f"{display_name}: {message}")
    return result[1], result[2]


def _run_child(arguments: list[str], env: dict[str, str], timeout: Optional[float], display_name: str) -> int:
    """Run the child (``arguments`` and the lifeline's fd) to its end, or kill it at ``timeout``; its
    output relayed to our stderr.  Everything in its group is killed before this returns or raises."""
    lifeline_read, lifeline_write = os.pipe()
    output_read, output_write = os.pipe()
    relay = _Relay(output_read, env[TOKEN_VARIABLE])
    child = None
    try:
        child = subprocess.Popen(child_command([*arguments, str(lifeline_read)]), stdin=subprocess.DEVNULL,
                                 stdout=output_write, stderr=output_write, env=env, pass_fds=(lifeline_read,),
                                 start_new_session=True)
        for fd in (output_write, lifeline_read):  # the child's ends: ours would keep EOF from coming
            os.close(fd)
        output_write = lifeline_read = -1
        relay.start()
        if not _wait(child, None if timeout is None else time.monotonic() + timeout):
            raise GradhealthError(f"{display_name}: the probe did not finish within {timeout:g}s; the model "
                                  "may hang (an input() call, a blocking data loader), or needs --timeout")
    finally:  # whatever happened (a signal to us included), nothing the child started survives
        if child is not None:
            _kill_group(child.pid)
            child.wait()
        for fd in (lifeline_read, lifeline_write, output_write):
            if fd >= 0:
                os.close(fd)
        relay.finish()
    return child.returncode


def _wait(child: subprocess.Popen, deadline: Optional[float]) -> bool:
    """True once the child has exited, without reaping it: its group id stays valid for the kill."""
    while True:
        if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Relay(threading.Thread):
    """Copies the child's output to our stderr until EOF; at the end, kills whatever still holds the
    pipe (a process the model started in a session of its own) instead of waiting for it."""

    def __init__(self, fd: int, token: str):
        super().__init__(daemon=True)
        self.fd, self.token, self.stopping = fd, token, threading.Event()

    def run(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                if self.stopping.is_set():
                    return
                continue
            data = os.read(self.fd, 65536)
            if not data:
                return
            try:
                os.write(sys.stderr.fileno(), data)
            except (OSError, ValueError):  # our stderr is gone: keep draining, so the child never blocks
                pass

    def finish(self) -> None:
        if self.ident is None:  # never started: the child did not start either
            os.close(self.fd)
            return
        if self.is_alive():
            self.join(_DRAIN_S)
        kill_strays(self.fd if self.is_alive() else None, self.token)
        if self.is_alive():
            self.join(_DRAIN_S)
        self.stopping.set()
        self.join()
        os.close(self.fd)


def kill_strays(fd: Optional[int], token: str) -> None:
    """SIGKILL every other process that has our ``GRADHEALTH_PROBE`` token in its environment (a
    daemon that left the group), or the pipe of ``fd`` open (one that also cleared its environment).
    Linux /proc; elsewhere a no-op: such a process holds only this private pipe, never the caller's."""
    if not token:
        return
    pipe = f"pipe:[{os.fstat(fd).st_ino}]" if fd is not None else None
    tag = f"{TOKEN_VARIABLE}={token}".encode()
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                ours = tag in handle.read().split(b"\0")
            if not ours and pipe is not None:
                ours = any(os.readlink(f"/proc/{pid}/fd/{e}") == pipe for e in os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        if ours:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
