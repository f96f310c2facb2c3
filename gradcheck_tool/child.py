"""The child process that probes one file, started by ``isolation.probe_in_child`` as
``python -c BOOT JOB RESULT MAX_BYTES INTERACTIVE LIFELINE_FD``.

It reads ``(path, options, display_name, optimizer)`` pickled in JOB, caps its own address space
before torch is imported, sends the user's prints to stderr (stdout may carry the parent's report),
and writes ``("ok", findings, probe)`` or ``("error", message)`` to RESULT.  It watches the lifeline
pipe: EOF there means gradhealth is gone, and the child then kills its whole process group.
Whatever the user's code does (raise, sys.exit, hang, crash), the parent decides what to say; the
child prints nothing of its own but progress (and tracebacks with --verbose).
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import traceback

# Imported here, not in the watcher thread: an import there could wait on the main thread's
# import lock (held for seconds while torch loads) exactly when the group must die.
from gradcheck_tool.isolation import TOKEN_VARIABLE, kill_strays


def _cap_memory(max_bytes: int) -> None:
    if max_bytes <= 0:
        return
    try:
        import resource
    except ImportError:  # not POSIX: no cap, the timeout still applies
        return
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def _write(path: str, value: tuple) -> None:
    tmp = f"{path}.part"
    with open(tmp, "wb") as handle:
        pickle.dump(value, handle)
    os.replace(tmp, path)


def _watch(lifeline: int) -> None:
    """Block on the lifeline; its EOF (the parent died, SIGKILL included) ends whatever this probe
    started, in this group or out of it, and then this whole group."""
    def watch():
        try:
            while os.read(lifeline, 1):
                pass
        except OSError:
            pass
        kill_strays(None, os.environ.get(TOKEN_VARIABLE, ""))
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str]) -> int:
    job, result_path, max_bytes, interactive, lifeline = argv
    _watch(int(lifeline))
    sys.dont_write_bytecode = True  # importing the user's file must not leave __pycache__ beside it
    _cap_memory(int(max_bytes))
    with open(job, "rb") as handle:
        path, options, display_name, optimizer = pickle.load(handle)
    sys.argv = [str(path)]  # the file's code sees itself as the script, not the probe's arguments
    os.dup2(2, 1)  # the user's print() goes to stderr
    try:
        from gradcheck_tool.errors import GradhealthError
        from gradcheck_tool.progress import Progress
        from gradcheck_tool.runtime import scan_path

        findings, probe = scan_path(path, options, Progress(display_name, interactive == "1"), display_name, optimizer)
        _write(result_path, ("ok", findings, probe))
    except GradhealthError as err:
        if options.verbose:
            traceback.print_exc()
        _write(result_path, ("error", str(err)))
    except SystemExit as err:
        _write(result_path, ("error", f"{display_name}: the file's code called sys.exit({err.code!r}) during the "
                                      "probe; keep the model's code free of exits"))
    except MemoryError:
        _write(result_path, ("error", f"{display_name}: the probe ran out of memory under the cap; raise "
                                      "--max-memory, or probe a smaller configuration (--model)"))
    except RecursionError as err:
        _write(result_path, ("error", f"{display_name}: the model is nested too deeply for Python's recursion "
                                      f"limit ({err}); probe a shallower configuration with --model"))
    except KeyboardInterrupt:  # the child has its own session: this came from the file's code
        _write(result_path, ("error", f"{display_name}: the file's code raised KeyboardInterrupt during the probe"))
    except BaseException as err:  # noqa: BLE001 - anything else is ours to report, once
        if options.verbose:
            traceback.print_exc()
        from gradcheck_tool.errors import first_line

        _write(result_path, ("error", f"{display_name}: internal error {type(err).__name__}: {first_line(err)} "
                                      "(please report it; --verbose shows where)"))
    return 0
