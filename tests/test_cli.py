"""The real, installed CLI in a subprocess: exit codes, streams, the JSON report, `rule`.

Each `scan` subprocess imports torch (~2 s), so every scan this module needs is declared
once in ``_scans`` and started in the background when the first test asks for one; each
test then waits for the run it reads, and runs shared by several tests happen once.
"""
from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from jsonschema import Draft202012Validator

from gradcheck_tool.report.json import load_schema
from gradcheck_tool.rules import RULES

WORKERS = 2  # concurrent scans; each is mostly torch's import
REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"

ORACLE_MODEL = '''\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 32)
        self.drop = nn.Dropout(0.3)  # draws from the RNG between example_inputs() and the loss
        self.fc2 = nn.Linear(32, 5)

    def forward(self, x):
        return self.fc2(self.drop(torch.tanh(self.fc1(x))))


def build_model():
    torch.manual_seed(1234)
    return Net()


def example_inputs():
    return torch.randn(16, 12)


def loss_fn(output, inputs):
    targets = (inputs[:, :5].argmax(-1))
    return nn.functional.cross_entropy(output, targets)
'''

GPT_MODEL = '''\
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class GPTConfig:
    vocab_size: int = 128
    block_size: int = 64
    n_layer: int = 4
    n_embd: int = 32


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd))

    def forward(self, x):
        return x + self.mlp(self.ln(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))
'''

FORWARD_RAISES = '''\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x.reshape(-1, 7))  # wants inputs the file never describes: 8x4 does not fit
'''


def _scans(tmp: Path) -> dict[str, list[str]]:
    """Every scan the module needs: name -> argv after the program."""
    unused = ["scan", "fixtures/unused_layer.py", "--format", "json"]
    return {
        "healthy_to_file": ["scan", "fixtures/healthy_mlp.py", "--format", "json", "-o", str(tmp / "report.json")],
        "unused": unused,
        "unused_again": unused,
        "exploding": ["scan", "fixtures/exploding_normal_init.py"],  # through the console script
        "tanh_fail_on_error": ["scan", "fixtures/saturated_tanh.py", "--fail-on", "error", "--format", "json"],
        "missing": ["scan", "fixtures/does_not_exist.py"],
        "forward_raises": ["scan", str(tmp / "forward_raises.py")],
        "no_model": ["scan", "fixtures/no_model.py", "--format", "json"],
        "bad_device": ["scan", "fixtures/healthy_mlp.py", "--device", "bogus"],
        "bad_shape": ["scan", "fixtures/healthy_mlp.py", "--input-shape", "8,abc"],
        "bad_dtype": ["scan", "fixtures/healthy_mlp.py", "--input-shape", "8,784", "--input-dtype", "floaty"],
        "oracle": ["scan", str(tmp / "oracle.py"), "--probes", "1", "--seed", "3", "--format", "json"],
        "gpt": ["scan", str(tmp / "gpt.py"), "--model", "GPT(GPTConfig(n_layer=2))", "--format", "json"],
    }


def console_script() -> str:
    """The `gradhealth` entry point installed next to this interpreter (or on PATH)."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("gradhealth", path=search)
    assert found, "the gradhealth console script is not installed"
    return found


def gradhealth(*args: str, script: bool = False) -> subprocess.CompletedProcess:
    program = [console_script()] if script else [sys.executable, "-m", "gradcheck_tool"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # concurrent scans must not oversubscribe the cores
    return subprocess.run([*program, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "oracle.py").write_text(ORACLE_MODEL, encoding="utf-8")
    (folder / "gpt.py").write_text(GPT_MODEL, encoding="utf-8")
    (folder / "forward_raises.py").write_text(FORWARD_RAISES, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def scans(tmp):
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures: dict[str, Future] = {
            name: pool.submit(gradhealth, *argv, script=(name == "exploding"))
            for name, argv in _scans(tmp).items()
        }
        yield futures


@pytest.fixture
def run(scans):
    return lambda name: scans[name].result()


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("gradhealth: error:"), stderr
    assert "Traceback" not in stderr
    return lines[0]


def valid_report(text: str) -> dict:
    document = json.loads(text)
    Draft202012Validator(load_schema()).validate(document)
    return document


def without_durations(value):
    if isinstance(value, dict):
        return {k: without_durations(v) for k, v in value.items() if k != "duration_s"}
    if isinstance(value, list):
        return [without_durations(v) for v in value]
    return value


# --- exit codes --------------------------------------------------------------------------------

def test_healthy_fixture_exits_0_with_a_valid_empty_report(run, tmp):
    result = run("healthy_to_file")
    assert result.returncode == 0, result.stderr
    report = valid_report((tmp / "report.json").read_text(encoding="utf-8"))
    assert report["findings"] == [] and report["summary"]["files"] == 1
    assert [p["status"] for p in report["probes"]] == ["ok"]


def test_exploding_fixture_exits_1_through_the_console_script(run):
    result = run("exploding")
    assert result.returncode == 1, result.stderr
    assert "error[GH101]" in result.stdout


def test_fail_on_error_ignores_warnings(run):
    result = run("tanh_fail_on_error")
    report = valid_report(result.stdout)
    severities = {f["severity"] for f in report["findings"]}
    assert severities == {"warning"}  # the default --fail-on warning would exit 1 here
    assert result.returncode == 0


def test_missing_file_exits_2_with_one_line(run):
    result = run("missing")
    assert result.returncode == 2
    assert "does_not_exist.py" in one_error_line(result.stderr)
    assert result.stdout == ""


def test_forward_raising_on_inferred_inputs_exits_2_and_suggests_example_inputs(run):
    result = run("forward_raises")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "RuntimeError" in line and "example_inputs()" in line


def test_a_file_without_a_model_exits_0_and_notes_the_skip_on_stderr(run):
    result = run("no_model")
    assert result.returncode == 0, result.stderr
    assert "no_model.py" in result.stderr and "no model" in result.stderr
    assert "error" not in result.stderr
    report = valid_report(result.stdout)  # stdout stays pure JSON while stderr carries the note
    assert [p["status"] for p in report["probes"]] == ["skipped"]
    assert report["findings"] == []


def test_the_stderr_note_says_the_probe_was_skipped(run):
    assert "skipped" in run("no_model").stderr


@pytest.mark.parametrize(("name", "option"), [("bad_device", "--device"), ("bad_shape", "--input-shape"),
                                              ("bad_dtype", "--input-dtype")])
def test_bad_options_exit_2_with_one_line(run, name, option):
    result = run(name)
    assert result.returncode == 2
    assert option in one_error_line(result.stderr)


# --- streams and the JSON report ---------------------------------------------------------------

def test_output_file_gets_the_report_and_stdout_stays_empty(run, tmp):
    result = run("healthy_to_file")
    assert result.stdout == ""
    assert json.loads((tmp / "report.json").read_text(encoding="utf-8"))["schema_version"] == 1


def test_runtime_findings_point_at_the_line_that_builds_the_module(run):
    result = run("unused")
    assert result.returncode == 0, result.stderr  # GH112 on a layer forward never calls: information
    report = valid_report(result.stdout)
    lines = (FIXTURES / "unused_layer.py").read_text(encoding="utf-8").splitlines()
    row = next(i for i, line in enumerate(lines, 1) if "self.aux_head = nn.Linear(32, 8)" in line)
    column = lines[row - 1].index("nn.Linear(32, 8)") + 1
    about_aux = [f for f in report["findings"] if (f["module"] or "").startswith("aux_head")]
    assert about_aux, report["findings"]
    for finding in about_aux:
        assert finding["filename"] == "fixtures/unused_layer.py"
        assert finding["location"] == {"row": row, "column": column}
        assert finding["end_location"] == {"row": row, "column": column + len("nn.Linear(32, 8)")}


def test_same_command_twice_gives_the_same_json(run):
    first, second = run("unused"), run("unused_again")
    assert first.returncode == second.returncode == 0
    assert "duration_s" in first.stdout  # the one field allowed to differ is really there
    assert without_durations(json.loads(first.stdout)) == without_durations(json.loads(second.stdout))


def test_grad_norms_equal_plain_autograd(run, tmp):
    result = run("oracle")
    assert result.returncode in (0, 1), result.stderr
    (probe,) = valid_report(result.stdout)["probes"]
    assert probe["status"] == "ok" and probe["seed"] == 3 and probe["batches"] == 1 and probe["loss"] == "loss_fn"

    # The probe's documented order, as plain PyTorch.
    namespace = runpy.run_path(str(tmp / "oracle.py"))
    model = namespace["build_model"]()
    torch.manual_seed(3)
    inputs = namespace["example_inputs"]()
    model.train()
    namespace["loss_fn"](model(inputs), inputs).backward()

    reported = {p["name"]: p for p in probe["parameters"]}
    expected = dict(model.named_parameters())
    assert set(reported) == set(expected)
    for name, parameter in expected.items():
        assert reported[name]["norm"] == pytest.approx(float(parameter.detach().norm()), rel=1e-6), name
        assert reported[name]["grad_norm"] == pytest.approx(float(parameter.grad.norm()), rel=1e-5), name


def test_model_expression_builds_a_config_dataclass_model(run):
    result = run("gpt")
    assert result.returncode in (0, 1), result.stderr
    assert "error" not in result.stderr
    (probe,) = valid_report(result.stdout)["probes"]
    assert probe["status"] == "ok" and probe["model"] == "GPT"
    names = {p["name"] for p in probe["parameters"]}
    assert any(n.startswith("blocks.1.") for n in names)
    assert not any(n.startswith("blocks.2.") for n in names)  # n_layer=2 from the expression, not the default 4


# --- rule docs and help ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["GH102", "vanishing-gradients"])
def test_rule_prints_its_documentation(name):
    result = gradhealth("rule", name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("GH102 vanishing-gradients")
    assert "What it does" in result.stdout


def test_rule_all_lists_every_runtime_code():
    result = gradhealth("rule", "--all")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    runtime = {"GH101", "GH102", "GH103", "GH104", "GH105", "GH106", "GH110", "GH111", "GH112", "GH120",
               "GH130", "GH131"}
    assert runtime <= listed, sorted(runtime - listed)
    assert {code for code in RULES if code.startswith("GH1")} <= listed  # and any added since


def test_unknown_rule_exits_2():
    result = gradhealth("rule", "GH999")
    assert result.returncode == 2
    assert "GH999" in one_error_line(result.stderr)


@pytest.mark.parametrize("args", [("--help",), ("scan", "--help")])
def test_help_exits_0(args):
    result = gradhealth(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
