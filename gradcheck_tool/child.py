"""The child process that probes one file: ``python -m gradcheck_tool.child RESULT_FILE [MAX_BYTES]``.

It reads ``(path, options, display_name, optimizer)`` pickled on stdin, caps its own address space
before torch is imported, sends the user's prints to stderr (stdout may carry the parent's
report), and writes ``("ok", findings, probe)`` or ``("error", message)`` to RESULT_FILE.
Whatever the user's code does (raise, sys.exit, hang, crash), the parent decides what to say.
"""
from __future__ import annotations

import os
import pickle
import sys
import traceback


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


def main(argv: list[str]) -> int:
    result_path = argv[0]
    sys.dont_write_bytecode = True  # importing the user's file must not leave __pycache__ beside it
    _cap_memory(int(argv[1]) if len(argv) > 1 else 0)
    path, options, display_name, optimizer = pickle.load(sys.stdin.buffer)
    os.dup2(2, 1)  # the user's print() goes to stderr
    try:
        from gradcheck_tool.errors import GradhealthError
        from gradcheck_tool.progress import Progress
        from gradcheck_tool.runtime import scan_path

        findings, probe = scan_path(path, options, Progress(display_name), display_name, optimizer)
        _write(result_path, ("ok", findings, probe))
    except GradhealthError as err:
        if options.verbose:
            traceback.print_exc()
        _write(result_path, ("error", str(err)))
    except SystemExit as err:
        _write(result_path, ("error", f"{display_name}: the file's code called sys.exit({err.code}) during the probe"))
    except MemoryError:
        _write(result_path, ("error", f"{display_name}: the probe ran out of memory; raise --max-memory or probe "
                                      "a smaller configuration (--model)"))
    except BaseException as err:  # noqa: BLE001 - anything else is ours to report, once
        traceback.print_exc()
        _write(result_path, ("error", f"{display_name}: internal error {type(err).__name__}: {err}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
