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


def test_files_without_any_trigger_are_not_parsed(monkeypatch) -> None:
    def refuse(source: str) -> None:
        raise AssertionError("libcst parse should have been skipped")

    with monkeypatch.context() as patch:
        patch.setattr(engine.cst, "parse_module", refuse)
        utility = "import os\n\ndef load(path):\n    return os.listdir(path)\n"
        assert check_source(utility, "u.py") == []
    # A file CPython rejects still goes to libcst, which may know newer syntax; when both
    # reject it, the finding carries CPython's position and message.
    assert [f.code for f in check_source("def f(:\n", "u.py")] == ["GH001"]
