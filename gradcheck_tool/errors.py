"""The one error type the tool raises for "could not do its job" (exit code 2), and the text helpers
that keep every message on one line."""
from __future__ import annotations

import re


class GradhealthError(Exception):
    """A failure the user can act on. ``str(err)`` is one line: the cause and the remedy."""


def message_of(err: BaseException) -> str:
    """``str(err)``, even for an exception whose ``__str__`` raises (user code can define one)."""
    try:
        return str(err)
    except BaseException:  # noqa: BLE001 - whatever it raised, the message is what is missing
        return f"<{type(err).__name__} whose message cannot be printed>"


def first_line(err: BaseException, empty: str = "") -> str:
    """The first line of an exception's message, or ``empty`` when it has none."""
    lines = message_of(err).strip().splitlines()
    return lines[0] if lines else empty


_CONTROL = r"[\x00-\x1f\x7f\x85\u2028\u2029]"  # compiled by `re` on first use: most runs print no message


def one_line(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``): a message printed as one
    line stays one line, whatever a file name or a user's exception put in it.  A newline in a file
    name must not start a new line that CI reads as a command (GitHub's ``::error``)."""
    return re.sub(_CONTROL, lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


_OOM = ("can't allocate memory", "out of memory", "cannot allocate memory")


def out_of_memory(err: BaseException) -> bool:
    """torch's allocator failures (CPU and CUDA) and Python's own MemoryError."""
    return isinstance(err, MemoryError) or any(s in message_of(err).lower() for s in _OOM)
