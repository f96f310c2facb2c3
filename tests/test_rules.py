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
        "GH107": "probabilities-into-logit-loss", "GH108": "broadcast-loss-target",
        "GH113": "unregistered-parameters",
        "GH110": "dead-units", "GH111": "saturated-activations", "GH112": "gradient-free-parameters",
        "GH120": "init-scale-mismatch", "GH130": "exploding-through-time", "GH131": "vanishing-through-time",
        "GH140": "loss-divergence", "GH141": "update-ratio-too-large", "GH142": "update-ratio-too-small",
        "GH143": "weight-norm-growth", "GH144": "lr-above-edge-of-stability",
        "GH150": "fp16-overflow-risk", "GH151": "fp16-underflow-risk",
        "GH114": "attention-entropy-collapse", "GH121": "symmetric-init", "GH132": "short-recurrent-memory",
    }
    assert {c: r.NAME for c, r in RULES.items()} == expected


def test_select_limits_rules():
    from gradcheck_tool.rules import examples

    record = examples.mlp(forward_gain=5.7, backward_gain=5.7, init="normal1")
    assert {f.code for f in run_rules(record)} == {"GH101", "GH105", "GH120"}
    assert {f.code for f in run_rules(record, ["GH105"])} == {"GH105"}


def test_gh112_unused_parameter_is_information_a_cut_one_a_warning():
    from gradcheck_tool.findings import Severity
    from gradcheck_tool.probe.record import ParamStats
    from gradcheck_tool.rules import examples
    from gradcheck_tool.rules.parameters import GradientFreeParameters

    def severity(use):
        record = examples.with_params(examples.mlp(), ParamStats("aux.weight", "aux", (8, 8), 1.0, None, use=use))
        (finding,) = GradientFreeParameters().check(record)
        return finding.severity, finding.evidence["gradient"]

    assert severity("unused") == (Severity.INFO, "unused")
    assert severity("used") == (Severity.INFO, "unused")  # it ran, but its output does not reach the loss
    assert severity("cut") == (Severity.WARNING, "cut")
    assert severity(None) == (Severity.WARNING, "cut")  # not recorded: the cautious reading


def test_residual_batchnorm_growth_is_information_until_the_files_optimizer_diverges():
    import dataclasses
    import math

    from gradcheck_tool.findings import Severity
    from gradcheck_tool.rules import examples
    from gradcheck_tool.rules.depth import ExplodingGradients

    (info,) = ExplodingGradients().check(examples.residual_bn())
    assert info.severity is Severity.INFO
    assert "zero_init_residual=True" in info.fix.message and "warm" in info.fix.message
    assert len(info.evidence["residual_bn_branches"]) == 16 and info.evidence["unstable_steps"] is False
    (warning,) = ExplodingGradients().check(examples.residual_bn(losses=(2.3, 40.0, math.inf)))
    assert warning.severity is Severity.WARNING and warning.evidence["unstable_steps"] is True
    # With no residual sums (a plain BatchNorm stack, Yang et al. 2019): normalised weights tune their
    # own rate, so 2.2 decades (MobileNetV1's depth) is information, 4.5 decades a warning.
    def plain(gain):
        base = examples.residual_bn(backward_gain=gain)
        return dataclasses.replace(base, layers=tuple(dataclasses.replace(layer, residual_sum=None)
                                                      for layer in base.layers))

    (mild,) = ExplodingGradients().check(plain(1.4))
    assert mild.severity is Severity.INFO and "zero_init_residual" not in mild.fix.message
    (steep,) = ExplodingGradients().check(plain(2.0))
    assert steep.severity is Severity.WARNING


def test_depth_rules_state_the_direction_their_numbers_show():
    from gradcheck_tool.rules import examples
    from gradcheck_tool.rules.activations import CollapsingActivations, ExplodingActivations

    collapse = examples.mlp(depth=20, forward_gain=0.5)
    assert not list(ExplodingActivations().check(collapse))
    (finding,) = CollapsingActivations().check(collapse)
    assert "shrink" in finding.message and finding.evidence["last_value"] < finding.evidence["first_value"]


def test_a_step_between_two_plateaus_is_not_a_trend():
    import dataclasses

    from gradcheck_tool.rules import examples, run_rules

    base = examples.mlp(depth=12)
    layers = tuple(dataclasses.replace(layer, grad_norm=1.0 if i < 12 else 1e-3, out_rms=1.0)
                   for i, layer in enumerate(base.layers))
    assert not [f for f in run_rules(dataclasses.replace(base, layers=layers)) if f.code.startswith("GH10")]


def test_encoder_and_decoder_are_fitted_as_two_stacks():
    import dataclasses

    from gradcheck_tool.rules import examples
    from gradcheck_tool.rules.signals import backward_trend, stacks

    base = examples.mlp(depth=12)
    layers = tuple(dataclasses.replace(layer, name=f"{'encoder' if i < 12 else 'decoder'}.layers.{i}",
                                       grad_norm=0.9 ** (i % 12) * (1e-2 if i < 12 else 1.0))
                   for i, layer in enumerate(base.layers))
    record = dataclasses.replace(base, layers=layers)
    assert [len(s) for s in stacks(record)] == [12, 12]
    assert abs(backward_trend(record).total) < 1  # each stack drifts 0.5 decades; the jump between is no trend
