"""Every runtime rule's GOOD/BAD examples, and the documentation shape `gradhealth rule` prints."""
import pytest

from gradcheck_tool.registry import documentation
from gradcheck_tool.rules import RULES, run_rules

CASES = [(code, kind, i) for code, rule in RULES.items() for kind in ("GOOD", "BAD")
         for i in range(len(getattr(rule, kind)))]


@pytest.mark.parametrize("code,kind,index", CASES, ids=[f"{c}-{k}-{i}" for c, k, i in CASES])
def test_rule_examples(code, kind, index):
    rule = RULES[code]
    record = getattr(rule, kind)[index]
    hits = [f for f in rule().check(record) if f.code == code]
    if kind == "GOOD":
        assert hits == []
    else:
        assert hits, f"{code} did not fire on its BAD example {index}"
        for finding in hits:
            assert finding.name == rule.NAME and finding.message and finding.evidence
            assert finding.fix is not None and finding.fix.message


@pytest.mark.parametrize("code", list(RULES))
def test_rule_shape_and_docs(code):
    rule = RULES[code]
    assert rule.CODE == code and code.startswith("GH1")
    assert rule.NAME == rule.NAME.lower() and " " not in rule.NAME
    assert rule.GOOD and rule.BAD
    doc = documentation(rule)
    for heading in ("What it does:", "Why it matters:", "Example:", "Fix:"):
        assert heading in doc, f"{code} docstring lacks {heading!r}"


def test_codes_and_names_match_design():
    expected = {
        "GH101": "exploding-gradients", "GH102": "vanishing-gradients", "GH103": "non-finite-gradients",
        "GH104": "non-finite-activations", "GH105": "exploding-activations", "GH106": "collapsing-activations",
        "GH110": "dead-units", "GH111": "saturated-activations", "GH112": "gradient-free-parameters",
        "GH120": "init-scale-mismatch", "GH130": "exploding-through-time", "GH131": "vanishing-through-time",
        "GH140": "loss-divergence", "GH141": "update-ratio-too-large", "GH142": "update-ratio-too-small",
        "GH143": "weight-norm-growth", "GH144": "lr-above-edge-of-stability",
        "GH150": "fp16-overflow-risk", "GH151": "fp16-underflow-risk",
    }
    assert {c: r.NAME for c, r in RULES.items()} == expected


def test_select_limits_rules():
    from gradcheck_tool.rules import examples

    record = examples.mlp(forward_gain=5.7, backward_gain=5.7, init="normal1")
    assert {f.code for f in run_rules(record)} == {"GH101", "GH105", "GH120"}
    assert {f.code for f in run_rules(record, ["GH105"])} == {"GH105"}
