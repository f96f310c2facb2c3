"""The top-level handler of the ``gradhealth`` command: whatever happens, the exit code is the scan's
(0 or 1) or 2 with exactly one ``gradhealth: error:`` line naming the cause and the remedy, and the
traceback only under ``--verbose``.  Click's usage errors, a full disk, a closed pipe, Ctrl-C,
SIGTERM and SIGHUP, and our own bugs all end that way; the signals are raised as exceptions where
gradhealth is, so every ``finally`` (the probe's child killed, temporary files removed) runs first.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from typing import Iterator, NoReturn

import click

from gradcheck_tool.errors import GradhealthError, first_line, one_line


def say(message: str) -> None:
    """A note on stderr: always one line, whatever a file name or a message holds."""
    click.echo(f"gradhealth: {one_line(message)}", err=True)


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
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    saved = {s: signal.signal(s, handler) for s in wanted}
    try:
        yield
    finally:
        for s, previous in saved.items():
            signal.signal(s, previous)


class Gradhealth(click.Group):
    """The top-level handler: whatever happens, exit 0/1 from the scan, or 2 with exactly one
    ``gradhealth: error:`` line naming the cause and the remedy (with the traceback under --verbose)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        verbose = "-v" in args or "--verbose" in args
        try:
            with _signals_raise():
                try:
                    code = super().main(args, prog_name or "gradhealth", complete_var, standalone_mode=False,
                                        **extra)
                except SystemExit as done:  # the commands' own exit codes
                    code = done.code
                sys.stdout.flush()  # a full disk or a closed pipe surfaces here, inside the handler
        except click.exceptions.Exit as err:
            code = err.exit_code
        except click.ClickException as err:
            ctx = getattr(err, "ctx", None)
            if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:  # bare `gradhealth`: the help
                click.echo(ctx.get_help())
                sys.exit(0)
            hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
            fail(f"{err.format_message().rstrip('.')}{hint}")
        except BaseException as err:  # noqa: BLE001 - the one place every other failure becomes one line
            if verbose and not isinstance(err, (KeyboardInterrupt, Interrupted, click.Abort)):
                import traceback

                traceback.print_exc()
            fail(_describe(err))
        sys.exit(code or 0)


def _describe(err: BaseException) -> str:
    if isinstance(err, GradhealthError):
        return str(err)
    if isinstance(err, (KeyboardInterrupt, click.Abort)):
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


