"""The static side must run where torch is not installed (the `gradhealth-static` hook)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from gradcheck_tool.static import check_source, engine

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import json, sys
    sys.modules["torch"] = None  # any `import torch`, direct or nested, now raises ImportError
    from gradcheck_tool.static import check_source
    source = """
    import torch
    from torch import nn, optim

    model = nn.LSTM(8, 8)
    opt = optim.Adam(model.parameters(), lr=0.1)
    for x in loader:
        model(x)[0].sum().backward()
        opt.step()
    """
    findings = check_source(source, "train.py")
    leaked = sorted(m for m, mod in sys.modules.items()
                    if (m == "torch" or m.startswith("torch.")) and mod is not None)
    print(json.dumps({"codes": sorted({f.code for f in findings}), "leaked": leaked}))
''')


def test_static_checks_never_import_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"codes": ["GH201", "GH205", "GH208"], "leaked": []}


def test_files_without_any_trigger_are_not_analysed(monkeypatch) -> None:
    def refuse(tree, source: str) -> None:
        raise AssertionError("the analysis should have been skipped")

    with monkeypatch.context() as patch:
        patch.setattr(engine, "convert", refuse)
        utility = "import os\n\ndef load(path):\n    return os.listdir(path)\n"
        assert check_source(utility, "u.py") == []
    # A file CPython rejects is one finding with CPython's position and message.
    assert [f.code for f in check_source("def f(:\n", "u.py")] == ["GH001"]


SCAN_SCRIPT = textwrap.dedent('''
    import atexit, json, sys
    from gradcheck_tool.entry import run  # the `gradhealth` process
    heavy = ("gradcheck_tool.rules", "gradcheck_tool.probe", "concurrent.futures", "tomllib", "libcst", "torch",
             "numpy", "tabulate", "click")
    def loaded():
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))), file=sys.stderr)
    atexit.register(loaded)  # it ends with os._exit, after the atexit handlers
    sys.argv = ["gradhealth", "scan", "--static-only", *sys.argv[1:]]
    run()
''')


def _static_scan(*args: str) -> tuple[dict, str]:
    """``gradhealth scan --static-only ARGS`` in a fresh interpreter: its exit code and the heavy
    modules it imported (on stderr), and its report (stdout)."""
    result = subprocess.run([sys.executable, "-c", SCAN_SCRIPT, *args], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    return {"exit": result.returncode, "loaded": json.loads(result.stderr.strip().splitlines()[-1])}, result.stdout


def test_static_scan_with_findings_and_fixes_never_imports_libcst(tmp_path: Path) -> None:
    # Findings with unsafe edits (GH201's clip insertion, GH208's lr) and a move (GH202):
    # the edits come from the ast-based tree; libcst is for codemods after a probe only.
    train = tmp_path / "train.py"
    train.write_text(
        "import torch\n"
        "model = torch.nn.LSTM(8, 8)\n"
        "opt = torch.optim.Adam(model.parameters(), lr=0.5)\n"
        "for x in loader:\n"
        "    opt.zero_grad()\n"
        "    model(x)[0].sum().backward()\n"
        "    opt.step()\n"
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
    )
    status, out = _static_scan("--format", "json", str(train))
    packages = sorted({m.split(".")[0] for m in status["loaded"]} & {"libcst", "torch", "numpy", "tabulate"})
    assert status["exit"] == 1 and packages == [], status
    codes = {f["code"]: f for f in json.loads(out)["findings"]}
    assert {"GH202", "GH208"} <= set(codes)
    assert codes["GH208"]["fix"]["edits"], codes["GH208"]  # an edit was attached, without libcst


def test_hook_run_imports_no_runtime_rule_probe_or_pool(tmp_path: Path) -> None:
    files = []
    for i in range(3):  # pre-commit passes the changed files: a few, in one process
        path = tmp_path / f"train{i}.py"
        path.write_text("import torch\nopt = torch.optim.SGD(model.parameters(), lr=30)\n"
                        "for x in data:\n    model(x).sum().backward()\n    opt.step()\n")
        files.append(str(path))
    # Suppressions naming runtime rules, a prefix and a typo are matched without the runtime catalogue.
    path.write_text(path.read_text() + "# gradhealth: ignore-file[GH101, GH1, dead-unitz, high-learning-rate]\n")
    status, out = _static_scan(*files)
    assert status == {"exit": 1, "loaded": []} and "GH205" in out, (status, out)
    assert out.count("[GH208]") == 2, out  # the third file's suppression names it
    # Selectors naming runtime rules are still checked (and select nothing static).
    status, out = _static_scan("--select", "GH2,GH101", "--ignore", "dead-units,GH205", *files)
    assert status["exit"] == 1 and "GH208" in out and "GH205" not in out, (status, out)
    status, out = _static_scan("--select", "GH2,GH999", *files)
    assert status["exit"] == 2, (status, out)
