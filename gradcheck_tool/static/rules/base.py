"""The shape of a static rule (:class:`StaticRule`) and the small helpers rules share."""
from __future__ import annotations

from typing import Any, ClassVar, Iterator, Mapping, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Applicability, Edit, Finding, Fix, Severity
from gradcheck_tool.static.analysis.context import SourceContext


def example(source: str) -> str:
    """A GOOD/BAD example written indented inside its rule class, as plain source: the common
    indentation of its lines removed, and the blank lines emptied (``textwrap.dedent``, whose
    import compiles regular expressions a hook run never needs)."""
    lines = source.lstrip("\n").splitlines(keepends=True)
    indent = min((len(line) - len(line.lstrip(" ")) for line in lines if line.strip()), default=0)
    return "".join(line[indent:] if line.strip() else line.lstrip(" \t") for line in lines)


def display(message: str) -> Fix:
    return Fix(Applicability.DISPLAY_ONLY, message)


def edit_or_display(message: str, edit: Optional[Edit]) -> Fix:
    """An unsafe one-edit fix where the replacement text is known, else advice."""
    if edit is None:
        return display(message)
    return Fix(Applicability.UNSAFE, message, (edit,))


class StaticRule:
    """A source rule: reads a :class:`SourceContext`, yields findings. Never prints or writes.

    ``TRIGGER`` is a regular expression that any file this rule can fire on must match: the
    rule runs only on files it matches, and a file matching no rule's trigger is parsed
    (for GH001) but not analysed.
    """

    CODE: ClassVar[str]
    NAME: ClassVar[str]
    SEVERITY: ClassVar[Severity]
    TRIGGER: ClassVar[str]
    GOOD: ClassVar[tuple[str, ...]] = ()
    BAD: ClassVar[tuple[str, ...]] = ()

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        raise NotImplementedError

    def finding(self, ctx: SourceContext, node: syntax.CSTNode, message: str, *,
                evidence: Optional[Mapping[str, Any]] = None, fix: Optional[Fix] = None,
                severity: Optional[Severity] = None) -> Finding:
        start, end = ctx.span(node)
        return Finding(
            code=self.CODE, name=self.NAME, severity=severity or self.SEVERITY,
            message=message, filename=ctx.filename, location=start, end_location=end,
            module=None, evidence=dict(evidence or {}), fix=fix,
        )
