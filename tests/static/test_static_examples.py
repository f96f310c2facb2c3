"""Every static rule's own GOOD/BAD examples, and the shape every rule must have."""
from __future__ import annotations

import inspect
import re

import pytest

from gradcheck_tool.findings import Severity
from gradcheck_tool.static import STATIC_RULES, check_source

# Codes and names are public API (DESIGN.md, section 3): never renumber.
EXPECTED = {
    "GH201": "missing-gradient-clipping",
    "GH202": "clip-after-step",
    "GH203": "clip-before-backward",
    "GH204": "clip-without-unscale",
    "GH205": "missing-zero-grad",
    "GH206": "unscaled-normal-init",
    "GH207": "deep-saturating-stack",
    "GH208": "high-learning-rate",
    "GH209": "zero-grad-before-step",
    "GH210": "accumulation-without-averaging",
    "GH211": "epoch-scheduler-per-batch",
}

CASES = [
    pytest.param(code, kind, source, id=f"{code}-{kind}-{index}")
    for code, rule in STATIC_RULES.items()
    for kind, examples in (("good", rule.GOOD), ("bad", rule.BAD))
    for index, source in enumerate(examples)
]


@pytest.mark.parametrize(("code", "kind", "source"), CASES)
def test_rule_examples(code: str, kind: str, source: str) -> None:
    findings = check_source(source, "example.py")
    assert not [f for f in findings if f.code == "GH001"], "examples must parse"
    hits = [f for f in findings if f.code == code]
    if kind == "bad":
        assert hits, f"{code} missed its BAD example:\n{source}"
    else:
        assert not hits, f"{code} fired on its GOOD example:\n{source}\n{hits}"


def test_codes_names_and_order_are_the_public_ones() -> None:
    assert list(STATIC_RULES) == sorted(EXPECTED)
    assert {code: rule.NAME for code, rule in STATIC_RULES.items()} == EXPECTED


@pytest.mark.parametrize("rule", list(STATIC_RULES.values()), ids=list(STATIC_RULES))
def test_rule_shape(rule: type) -> None:
    assert rule.CODE in STATIC_RULES and STATIC_RULES[rule.CODE] is rule
    assert re.fullmatch(r"[a-z]+(-[a-z]+)+", rule.NAME)
    assert isinstance(rule.SEVERITY, Severity)
    assert len(rule.GOOD) >= 3 and len(rule.BAD) >= 3
    doc = inspect.getdoc(rule) or ""
    positions = [doc.find(section) for section in
                 ("What it does:", "Why it matters:", "Example:", "Fix:")]
    assert -1 not in positions and positions == sorted(positions), doc
    # The engine skips files matching no rule's trigger: a BAD example must match.
    for source in rule.BAD:
        assert re.search(rule.TRIGGER, source)


def test_findings_are_well_formed() -> None:
    for rule in STATIC_RULES.values():
        for source in rule.BAD:
            findings = check_source(source, "dir/model.py")
            assert findings == sorted(findings, key=lambda f: f.sort_key)
            rows = source.count("\n") + 1
            for finding in findings:
                assert finding.filename == "dir/model.py" and finding.module is None
                assert finding.name == STATIC_RULES[finding.code].NAME
                assert 1 <= finding.location.row <= finding.end_location.row <= rows
                assert finding.location.column >= 1 and finding.end_location.column >= 1
                assert isinstance(finding.evidence, dict) and finding.evidence
                assert finding.fix is not None and finding.fix.message
                assert len(finding.fix.edits) <= 1
