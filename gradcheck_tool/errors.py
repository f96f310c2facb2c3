"""The one error type the tool raises for "could not do its job" (exit code 2)."""


class GradhealthError(Exception):
    """A failure the user can act on. ``str(err)`` is one line: the cause and the remedy."""


def first_line(err: BaseException, empty: str = "") -> str:
    """The first line of an exception's message, or ``empty`` when it has none."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else empty
