"""The shape every runtime rule has: a code, a name, a default severity, GOOD/BAD examples
(synthetic probe records, so their tests need no model), and ``check(record)``.

A rule's docstring is its user documentation (What it does / Why it matters /
Example / Fix): ``gradhealth rule GH102`` prints it and SARIF carries it (see registry).
Rules never print, write files or touch torch.
"""
from __future__ import annotations

from typing import Any, ClassVar, Iterator, Mapping, Optional

from gradcheck_tool.findings import Applicability, Finding, Fix, Severity
from gradcheck_tool.probe.record import ProbeRecord


class RuntimeRule:
    CODE: ClassVar[str]
    NAME: ClassVar[str]
    SEVERITY: ClassVar[Severity]
    AT_OPTIMIZER: ClassVar[bool] = False  # about the file's optimizer: reported at its constructor call
    GOOD: ClassVar[tuple[ProbeRecord, ...]] = ()
    BAD: ClassVar[tuple[ProbeRecord, ...]] = ()
    # A rule whose signal is a number says what it is (METRIC, in words) and how to read it
    # from a record (measure); the fix engine verifies a fix by that number moving the way
    # BETTER says (-1: lower is healthier, +1: higher), knowing nothing else of the rule.
    METRIC: ClassVar[Optional[str]] = None
    BETTER: ClassVar[int] = -1

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        raise NotImplementedError

    @classmethod
    def measure(cls, record: ProbeRecord, module: Optional[str]) -> Optional[float]:
        """This rule's signal on ``record`` (at ``module`` for a per-layer rule); None: not measured."""
        return None

    def finding(
        self,
        message: str,
        *,
        module: Optional[str] = None,
        evidence: Optional[Mapping[str, Any]] = None,
        fix: Optional[str] = None,
        severity: Optional[Severity] = None,
    ) -> Finding:
        return Finding(
            code=self.CODE,
            name=self.NAME,
            severity=severity or self.SEVERITY,
            message=message,
            module=module,
            evidence=dict(evidence or {}),
            fix=Fix(Applicability.DISPLAY_ONLY, fix) if fix else None,
        )
