"""The top-level handler of the ``gradhealth`` command: whatever happens, the exit code is the scan's
(0 or 1) or 2 with exactly one ``gradhealth: error:`` line naming the cause and the remedy, and the
traceback only under ``--verbose``.  Usage errors (turned into that line by :mod:`.cli`), a full
disk, a closed pipe, Ctrl-C, SIGTERM and SIGHUP, and our own bugs all end that way; the signals are
raised as exceptions where gradhealth is, so every ``finally`` (the probe's child killed, temporary
files removed) runs first.  No click here: the hook's fast path (:mod:`.entry`) runs without it.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from typing import Callable, Iterator, NoReturn, Optional

from gradcheck_tool.errors import GradhealthError, first_line, one_line


def say(message: str) -> None:
    """A note on stderr: always one line, whatever a file name or a message holds."""
    sys.stderr.write(f"gradhealth: {one_line(message)}\n")
    sys.stderr.flush()


def fail(message: str) -> NoReturn:
    say(f"error: {message}")
    sys.exit(2)


class Interrupted(BaseException):
    """SIGTERM or SIGHUP, raised where gradhealth is, so every ``finally`` runs (the probe's child
    and its group killed, temporary files removed) before the one error line."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    def handler(signum, frame):
        raise Interrupted(signum)

    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    try:
        saved = {s: signal.signal(s, handler) for s in wanted}
    except ValueError:  # not the main thread (an in-process caller's worker): signals stay as they are
        saved = None
    if saved is None:
        yield
        return
    try:
        yield
    finally:
        for s, previous in saved.items():
            signal.signal(s, previous)


def guarded(body: Callable[[], Optional[int]], verbose: bool = False) -> NoReturn:
    """Run ``body`` (the parsed command) and exit with its status: its return value or its
    ``sys.exit`` code (0, 1 or 2); any other end is one ``gradhealth: error:`` line and exit 2,
    with the traceback under ``verbose``.  SIGTERM and SIGHUP are raised inside ``body``."""
    try:
        with _signals_raise():
            try:
                code = body()
            except SystemExit as done:  # the commands' own exit codes
                code = done.code
            sys.stdout.flush()  # a full disk or a closed pipe surfaces here, inside the handler
    except BaseException as err:  # noqa: BLE001 - the one place every other failure becomes one line
        if verbose and not isinstance(err, (KeyboardInterrupt, Interrupted)):
            import traceback

            traceback.print_exc()
        fail(_describe(err))
    sys.exit(code or 0)


def _describe(err: BaseException) -> str:
    if isinstance(err, GradhealthError):
        return str(err)
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (SIGINT); the probe and everything it started were stopped"
    if isinstance(err, Interrupted):
        return f"interrupted ({err}); the probe and everything it started were stopped"
    if isinstance(err, OSError) and err.filename is None:  # writing the report to stdout failed
        with contextlib.suppress(OSError):  # what is still buffered must not fail again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if err.errno == errno.EPIPE:
            return "the report's reader closed stdout before the end"
        return f"cannot write the report to stdout ({err.strerror or first_line(err)}); use -o FILE"
    if isinstance(err, OSError):
        return f"{err.filename}: {err.strerror or first_line(err)}; check the path, its permissions and free space"
    if isinstance(err, RecursionError):
        return f"{first_line(err)}: the input is nested too deeply; scan a smaller file, or report it"
    return (f"internal error {type(err).__name__}: {first_line(err)} (please report it; --verbose shows "
            "the traceback)")


