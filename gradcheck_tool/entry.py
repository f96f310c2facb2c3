"""The ``gradhealth`` process (its console script and ``python -m gradcheck_tool``): the CLI of
:mod:`.cli` between a start and an exit tuned for a short-lived command.

- Fewer garbage collections: a hook run allocates tens of thousands of acyclic objects (its
  imports, the syntax tree), all freed by reference counting, and CPython's default threshold
  of 700 allocations runs ~50 young-generation collections over a 500-line file (5-10% of the run).
- No interpreter teardown: freeing every module and object of a process about to end costs a
  one-file hook run ~15 ms, a tenth of it (mypy exits the same way).  atexit handlers still run
  and stdout/stderr are flushed first; everything the scan opens (report files, the probe's
  child, temporary files) is closed in its own ``finally``.

- The pre-commit hook's own command line, ``scan --static-only [--force-exclude] PATH...`` (flags
  only, in any order, no other option), runs :func:`.command.run` directly: importing click costs
  about as much as pyflakes' whole run over a 500-line file, and these arguments need no parser.
  Any other command line, including every option with a value, goes through click (:mod:`.cli`).

Only the process entry does this: ``cli.main`` called in-process (click's CliRunner, the pytest
plugin) exits normally and leaves the collector alone.
"""
from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
from typing import NoReturn, Optional

GC_THRESHOLD = 50_000  # allocations between young-generation collections (CPython's default: 700)


def run() -> NoReturn:
    """``gradhealth ARGS``: exits with the CLI's status (0, 1 or 2)."""
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    hook = hook_scan(sys.argv[1:])
    try:
        if hook is None:
            from gradcheck_tool.cli import main

            main()
        else:
            from gradcheck_tool import command, toplevel

            toplevel.guarded(lambda: command.run(**hook))
        code = 0
    except SystemExit as done:
        code = done.code
    if not isinstance(code, int):  # not an exit status: let Python print it
        raise SystemExit(code)
    atexit._run_exitfuncs()
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


HOOK_FLAGS = frozenset({"--static-only", "--force-exclude"})


def hook_scan(args: list[str]) -> Optional[dict]:
    """:func:`.command.run`'s arguments when ``args`` is the hook's ``scan --static-only
    [--force-exclude] PATH...``; None for any other command line (click parses it)."""
    if not args or args[0] != "scan":
        return None
    flags = {arg for arg in args[1:] if arg.startswith("-")}
    paths = tuple(arg for arg in args[1:] if not arg.startswith("-"))
    if "--static-only" not in flags or not flags <= HOOK_FLAGS or not paths:
        return None
    return {"paths": paths, "static_only": True, "force_exclude": "--force-exclude" in flags}
