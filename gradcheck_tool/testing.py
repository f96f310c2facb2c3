"""Guard a model's trainability in a test suite: ``assert_trainable`` and the pytest plugin.

    from gradcheck_tool.testing import assert_trainable

    def test_model_trains():
        assert_trainable(MyModel(), torch.randn(8, 32))

The plugin (registered through the ``pytest11`` entry point, so installing gradhealth is enough)
adds the ``gradhealth`` fixture, whose ``assert_trainable`` uses the ``gradhealth_fail_on`` ini
option (default ``warning``) as its threshold.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from tabulate import tabulate

from gradcheck_tool.findings import Finding, Report, Severity


def findings_table(findings: list[Finding]) -> str:
    rows = [[f.severity.value, f"{f.code} {f.name}", f.module or "", f.message, f.fix.message if f.fix else ""]
            for f in findings]
    return tabulate(rows, headers=["severity", "rule", "module", "finding", "fix"], tablefmt="simple",
                    maxcolwidths=[None, None, 24, 60, 50], disable_numparse=True)


def assert_trainable(model: Any, inputs: Any, loss_fn: Optional[Callable[[Any, Any], Any]] = None, *,
                     fail_on: str = "warning", **scan_options: Any) -> Report:
    """Probe ``model`` on ``inputs`` with ``gradcheck_tool.scan`` (same arguments: ``probes``, ``seed``,
    ``select``, ``optimizer``, ``train_steps``) and raise AssertionError, whose message is the table of
    findings, if any is at or above ``fail_on`` ("error", "warning" or "info").  Returns the Report."""
    from gradcheck_tool.api import scan

    try:
        threshold = Severity(fail_on)
    except ValueError:
        raise ValueError(f"fail_on must be one of error, warning, info; got {fail_on!r}") from None
    report = scan(model, inputs, loss_fn, **scan_options)
    failing = [f for f in report.findings if f.severity.at_least(threshold)]
    if failing:
        model_name = type(model).__name__
        raise AssertionError(f"gradhealth: {model_name} has {len(failing)} finding(s) at or above {fail_on}:\n"
                             + findings_table(failing))
    return report


try:
    import pytest
except ImportError:  # pragma: no cover - assert_trainable works without pytest
    pytest = None

if pytest is not None:

    class Gradhealth:
        """What the ``gradhealth`` fixture gives a test."""

        def __init__(self, fail_on: str):
            self.fail_on = fail_on

        def assert_trainable(self, model: Any, inputs: Any, loss_fn=None, **options: Any) -> Report:
            return assert_trainable(model, inputs, loss_fn, **{"fail_on": self.fail_on, **options})

        def scan(self, model: Any, inputs: Any, loss_fn=None, **options: Any) -> Report:
            from gradcheck_tool.api import scan

            return scan(model, inputs, loss_fn, **options)

    def pytest_addoption(parser) -> None:
        parser.addini("gradhealth_fail_on", "lowest severity that fails gradhealth.assert_trainable "
                      "(error, warning, info)", default="warning")

    @pytest.fixture
    def gradhealth(request) -> Gradhealth:
        """gradhealth's assert_trainable and scan, with the project's gradhealth_fail_on threshold."""
        return Gradhealth(request.config.getini("gradhealth_fail_on"))
