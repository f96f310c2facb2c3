"""The fixture zoo end to end: each pathology is found, healthy models (transformers included) are quiet."""
from pathlib import Path

import pytest

from gradcheck_tool.api import ScanOptions
from gradcheck_tool.runtime import scan_path
from gradcheck_tool.findings import ProbeStatus, Severity

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

# Codes at warning or above that each file must produce, exactly.
EXPECTED = {
    "healthy_mlp.py": set(),
    "healthy_deep_kaiming.py": set(),
    "healthy_bn_cnn.py": set(),
    "healthy_lstm_lm.py": set(),
    "healthy_transformer.py": set(),
    "hf_gpt2.py": set(),
    "hf_bert.py": set(),
    "exploding_normal_init.py": {"GH101", "GH105", "GH120"},
    # The gradient's decay toward the input is the backward image of the forward collapse (their
    # product is flat: a uniform rescaling), so the trap is reported once, as the collapse.
    "collapsing_glorot_relu.py": {"GH106", "GH120"},
    "exploding_bn_stack.py": {"GH101"},
    "dead_relu.py": {"GH110"},
    "saturated_tanh.py": {"GH111"},
    "nan_forward.py": {"GH104"},
    "nan_backward.py": {"GH103"},
    "unused_layer.py": set(),  # GH112 as information: the layer is never called
    "detached_branch.py": {"GH112"},
    "rnn_exploding.py": {"GH130"},
    # Output/loss mismatch (GH107, GH108) and unregistered layers (GH113), each with its healthy twin.
    "softmax_cross_entropy.py": {"GH107"},
    "softmax_cross_entropy_100.py": {"GH107"},
    "softmax_nll.py": {"GH107"},
    "sigmoid_bce_with_logits.py": {"GH107"},
    "healthy_log_softmax_nll.py": set(),
    "healthy_sigmoid_bce.py": set(),
    "broadcast_mse_target.py": {"GH108"},
    "healthy_regression.py": set(),
    "layers_in_list.py": {"GH113"},
    "heads_in_dict.py": {"GH113"},
    "healthy_module_list.py": set(),
    "lstm_forget_bias.py": {"GH131"},
    # Issue 10: symmetric init, attention entropy collapse, short recurrent memory, and their healthy twins.
    "symmetric_constant_init.py": {"GH121"},
    "symmetric_conv_fill.py": {"GH121"},
    "healthy_zero_init_branches.py": set(),
    "attention_unscaled.py": {"GH114"},
    "attention_mha_scaled_embedding.py": {"GH114"},
    "rnn_long_sequence.py": {"GH132"},
    "healthy_gru.py": set(),
}


def _scan(path: Path):
    return scan_path(path, ScanOptions(), display_name=path.name)


def test_every_fixture_has_an_expectation():
    assert {p.name for p in FIXTURES.glob("*.py")} - {"no_model.py"} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_verdict(name):
    if name.startswith("hf_"):
        pytest.importorskip("transformers")
    findings, probe = _scan(FIXTURES / name)
    assert probe.status is ProbeStatus.OK
    loud = {f.code for f in findings if f.severity.at_least(Severity.WARNING)}
    assert loud == EXPECTED[name], [f.message for f in findings]
    for finding in findings:
        assert finding.filename == name and finding.location is not None and finding.location.row >= 1


def test_example_deep_sigmoid_is_vanishing_and_points_at_the_layer_line():
    path = ROOT / "examples" / "deep_sigmoid.py"
    findings, _ = _scan(path)
    (finding,) = [f for f in findings if f.severity.at_least(Severity.WARNING)]
    assert finding.code == "GH102" and finding.severity is Severity.ERROR
    line = path.read_text().splitlines()[finding.location.row - 1]
    assert "nn.Linear(width, width)" in line[finding.location.column - 1:]
    assert finding.evidence["total_decades"] > 4


def test_runtime_findings_point_at_the_construction_line():
    path = FIXTURES / "exploding_normal_init.py"
    findings, _ = _scan(path)
    lines = path.read_text().splitlines()
    for finding in findings:
        assert lines[finding.location.row - 1].strip() == "linear = nn.Linear(width, width)"


def test_glorot_relu_trap_reports_collapse_and_kaiming():
    findings, _ = _scan(FIXTURES / "collapsing_glorot_relu.py")
    by_code = {f.code: f for f in findings}
    assert by_code["GH106"].evidence["total_decades"] < -2
    assert 'kaiming_normal_(m.weight, nonlinearity="relu")' in by_code["GH120"].fix.message
    assert by_code["GH120"].evidence["scheme"] == "xavier-normal"


def test_file_without_model_is_skipped():
    findings, probe = _scan(FIXTURES / "no_model.py")
    assert findings == [] and probe.status is ProbeStatus.SKIPPED
