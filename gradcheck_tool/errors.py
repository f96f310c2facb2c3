"""The one error type the tool raises for "could not do its job" (exit code 2)."""


class GradhealthError(Exception):
    """A failure the user can act on. ``str(err)`` is one line: the cause and the remedy."""
