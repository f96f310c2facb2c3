"""assert_trainable and the pytest plugin (the pytest11 entry point, run in a real pytest subprocess)."""
import subprocess
import sys

import pytest
import torch
from torch import nn

from gradcheck_tool.testing import assert_trainable


def relu_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def sigmoid_tower() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(64, 64), nn.Sigmoid())])


def test_a_healthy_model_passes_and_returns_the_report():
    report = assert_trainable(relu_mlp(), torch.randn(16, 32))
    assert report.findings == () and report.probes[0].record.layers


def test_a_vanishing_model_fails_with_the_findings_table():
    with pytest.raises(AssertionError) as raised:
        assert_trainable(sigmoid_tower(), torch.randn(16, 64))
    message = str(raised.value)
    assert message.startswith("gradhealth: Sequential has 1 finding(s) at or above warning:")
    header = message.splitlines()[1].split()
    assert header == ["severity", "rule", "module", "finding", "fix"]
    assert "error       GH102 vanishing-gradients" in message and "kaiming_normal_" in message


def test_fail_on_and_select_pass_through():
    x = torch.randn(16, 64)
    assert_trainable(sigmoid_tower(), x, select=["GH101"])  # GH102 not selected: nothing to fail on
    with pytest.raises(AssertionError):
        assert_trainable(sigmoid_tower(), x, fail_on="error")
    with pytest.raises(ValueError, match="fail_on"):
        assert_trainable(relu_mlp(), torch.randn(4, 32), fail_on="fatal")


TEST_FILE = '''
import torch
from torch import nn


def test_healthy(gradhealth):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    gradhealth.assert_trainable(model, torch.randn(16, 32))


def test_tower(gradhealth):
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(64, 64), nn.Sigmoid())])
    gradhealth.assert_trainable(model, torch.randn(16, 64))
'''


def run_pytest(tmp_path, ini: str = ""):
    (tmp_path / "test_model.py").write_text(TEST_FILE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n" + ini)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_model.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_plugin_fixture_in_a_real_pytest_run(tmp_path):
    done = run_pytest(tmp_path, "gradhealth_fail_on = error\n")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 failed, 1 passed" in done.stdout
    assert "FAILED test_model.py::test_tower" in done.stdout
    # The failure shows the table, and the threshold the ini option set:
    assert "AssertionError: gradhealth: Sequential has 1 finding(s) at or above error:" in done.stdout
    assert "GH102 vanishing-gradients" in done.stdout
    assert "gradhealth_fail_on (string)" in subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], cwd=tmp_path, capture_output=True, text=True).stdout
