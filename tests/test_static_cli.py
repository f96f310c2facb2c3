"""The static side through the real CLI: whole trees, no torch import, SARIF and GitHub output."""
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
SARIF_SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture
def tree(tmp_path):
    """A small project: a training loop that clips after the step, an AMP loop without unscale_,
    a clean script, a syntax error, a suppressed finding, and an excluded virtualenv."""
    files = {
        "train.py": (
            "import torch\n"
            "from torch.nn.utils import clip_grad_norm_ as clip\n\n"
            "def train(model, data, opt):\n"
            "    for x, y in data:\n"
            "        opt.zero_grad()\n"
            "        model(x).sub(y).pow(2).mean().backward()\n"
            "        opt.step()\n"
            "        clip(model.parameters(), 1.0)\n"
        ),
        "amp/loop.py": (
            "import torch\n\n"
            "def fit(model, data, opt):\n"
            "    scaler = torch.cuda.amp.GradScaler()\n"
            "    for x in data:\n"
            "        opt.zero_grad()\n"
            "        scaler.scale(model(x).sum()).backward()\n"
            "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
            "        scaler.step(opt)\n"
            "        scaler.update()\n"
        ),
        "utils.py": "def accuracy(p, t):\n    return (p.argmax(-1) == t).float().mean()\n",
        "broken.py": "def f(:\n",
        "quiet.py": (
            "import torch\n\n"
            "opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.5)  # gradhealth: ignore[GH208]\n"
        ),
        ".venv/lib/site.py": "def f(:\n",
    }
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    blocker = tmp_path / "_no_torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('gradhealth --static-only must not import torch')\n")
    return tmp_path


def _gradhealth(tree, *args):
    env = {**os.environ, "PYTHONPATH": str(tree / "_no_torch")}  # `import torch` raises
    return subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", "--static-only", ".", *args],
                          cwd=tree, capture_output=True, text=True, env=env, timeout=120)


def test_static_only_scans_a_tree_without_importing_torch(tree):
    result = _gradhealth(tree, "--format", "json", "--extend-exclude", "_no_torch")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    found = {(f["filename"], f["code"]) for f in report["findings"]}
    assert found == {("train.py", "GH202"), ("amp/loop.py", "GH204"), ("broken.py", "GH001")}
    assert ("quiet.py", "GH208") not in found and not any(".venv" in f for f, _ in found)
    assert report["probes"] == [] and report["summary"]["files"] == 5


def test_sarif_from_the_cli_validates_and_uses_repo_relative_uris(tree):
    result = _gradhealth(tree, "--format", "sarif", "--extend-exclude", "_no_torch", "--select", "GH0,GH202,GH204")
    document = json.loads(result.stdout)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(document)
    run = document["runs"][0]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert uris == {"train.py", "amp/loop.py", "broken.py"}
    assert sorted(rule["id"] for rule in run["tool"]["driver"]["rules"]) == ["GH001", "GH202", "GH204"]
    assert all("What it does" in rule["help"]["text"] for rule in run["tool"]["driver"]["rules"])


def test_github_annotations_from_the_cli(tree):
    result = _gradhealth(tree, "--format", "github", "--extend-exclude", "_no_torch", "--select", "GH202")
    assert result.stdout.startswith("::error file=train.py,line=9,col=9,"), result.stdout
    assert "title=GH202 clip-after-step::" in result.stdout


def test_fail_on_and_ignore_from_pyproject(tree):
    (tree / "pyproject.toml").write_text('[tool.gradhealth]\nignore = ["GH0", "GH2"]\n')
    assert _gradhealth(tree, "--extend-exclude", "_no_torch").returncode == 0
    (tree / "pyproject.toml").write_text('[tool.gradhealth]\nignroe = ["GH0"]\n')
    bad = _gradhealth(tree)
    assert bad.returncode == 2 and "unknown key [tool.gradhealth] 'ignroe'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_process_skips_teardown_but_runs_atexit_handlers_and_writes_every_byte(tree):
    """`gradcheck_tool.entry` ends the process with os._exit: what a normal exit does that
    matters (atexit handlers, buffered output, the report file) must still happen."""
    for i in range(120):  # a JSON report larger than a pipe's 64 KiB buffer
        (tree / "many" / f"train_{i}.py").parent.mkdir(exist_ok=True)
        (tree / "many" / f"train_{i}.py").write_text((tree / "train.py").read_text())
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
              "from gradcheck_tool.entry import run\n"
              "run()\n")
    args = ["scan", "--static-only", ".", "--format", "json", "--extend-exclude", "_no_torch"]
    env = {**os.environ, "PYTHONPATH": str(tree / "_no_torch")}
    piped = subprocess.run([sys.executable, "-c", script, *args], cwd=tree, capture_output=True, text=True,
                           env=env, timeout=120)
    assert piped.returncode == 1 and piped.stderr.strip().endswith("atexit ran"), piped.stderr
    assert len(piped.stdout) > 65536
    assert len(json.loads(piped.stdout)["findings"]) == 123  # 121 GH202, GH204, GH001
    to_file = subprocess.run([sys.executable, "-c", script, *args, "-o", "report.json"], cwd=tree,
                             capture_output=True, text=True, env=env, timeout=120)
    assert to_file.returncode == 1 and to_file.stdout == ""
    assert json.loads((tree / "report.json").read_text()) == json.loads(piped.stdout)


HOOK_SCRIPT = ("import atexit, sys\n"
               "atexit.register(lambda: print('click:', 'click' in sys.modules, file=sys.stderr))\n"
               "from gradcheck_tool.entry import run\n"
               "run()\n")


@pytest.mark.parametrize("args, code", [
    ((".",), 1),  # a directory: findings, a syntax error (GH001), a virtualenv excluded
    (("train.py",), 1),
    (("utils.py", "quiet.py"), 0),  # a clean file, and one whose finding is suppressed
    (("--force-exclude", ".venv/lib/site.py", "utils.py"), 0),  # an excluded file named on the command line
    ((".venv/lib/site.py",), 1),  # ... is scanned without --force-exclude
    (("missing.py",), 2),  # one error line
])
def test_the_hook_command_line_skips_click_and_ends_exactly_as_through_click(tree, args, code):
    """`scan --static-only [--force-exclude] PATH...` (the pre-commit hook's entry) runs without
    importing click; the same scan with an option click must parse (`--format text`, the default)
    prints the same bytes on both streams and exits the same."""
    env = {**os.environ, "PYTHONPATH": str(tree / "_no_torch")}

    def run(*extra):
        return subprocess.run([sys.executable, "-c", HOOK_SCRIPT, "scan", "--static-only", *extra, *args],
                              cwd=tree, capture_output=True, text=True, env=env, timeout=120)

    fast, parsed = run(), run("--format", "text")
    assert fast.stderr.endswith("click: False\n") and parsed.stderr.endswith("click: True\n"), fast.stderr
    assert fast.returncode == parsed.returncode == code, fast.stderr
    assert fast.stdout == parsed.stdout and fast.stdout.strip() if code != 2 else not fast.stdout
    assert fast.stderr.rpartition("click:")[0] == parsed.stderr.rpartition("click:")[0]


def test_the_hook_fast_path_passes_the_scan_what_click_passes(monkeypatch):
    """Defaults live twice (click's options and command.run's keywords): the fast path's call, with
    run's defaults applied, must equal click's for the same command line."""
    import inspect

    from click.testing import CliRunner

    from gradcheck_tool import cli, command, entry

    defaults = inspect.signature(command.run)
    calls = []
    monkeypatch.setattr(command, "run", lambda **given: calls.append(given))
    for args in (["scan", "--static-only", "a.py"], ["scan", "--force-exclude", "a.py", "--static-only", "b.py"]):
        result = CliRunner().invoke(cli.main, args)
        assert result.exit_code == 0 and len(calls) == 1, result.output
        fast = defaults.bind(**entry.hook_scan(args))
        fast.apply_defaults()
        assert fast.arguments == calls.pop()


@pytest.mark.parametrize("args", [
    [], ["--version"], ["scan"], ["scan", "a.py"], ["scan", "--static-only"], ["fix", "--static-only", "a.py"],
    ["scan", "--static-only", "--format", "json", "a.py"], ["scan", "--static-only", "--select=GH2", "a.py"],
    ["scan", "--static-only", "-v", "a.py"], ["scan", "--static-only", "--", "a.py"], ["scan", "--static-only", "-"],
])
def test_every_other_command_line_goes_through_click(args):
    from gradcheck_tool.entry import hook_scan

    assert hook_scan(args) is None
