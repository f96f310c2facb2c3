"""The GH113 codemod: plain list / tuple / dict of layers -> nn.ModuleList / nn.ModuleDict, or advice."""
from __future__ import annotations

import textwrap

import pytest

from gradcheck_tool.findings import Applicability, Finding, Position, Severity
from gradcheck_tool.fixes.edits import apply
from gradcheck_tool.fixes.module_list import attach_registration_fixes


def finding(holder="layers", container="list", registrable=True) -> Finding:
    return Finding("GH113", "unregistered-parameters", Severity.ERROR, "m", "model.py", Position(1, 1),
                   Position(1, 1), module=f"{holder}[0]",
                   evidence={"holder": holder, "container": container, "registrable": registrable})


def fixed(source: str, **kw) -> str | None:
    source = textwrap.dedent(source)
    (out,) = attach_registration_fixes(source, [finding(**kw)])
    if out.fix is None or not out.fix.edits:
        return None
    assert out.fix.applicability is Applicability.UNSAFE
    return apply(source, out.fix.edits)


NET = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = {value}  # the hidden layers

    def forward(self, x):
        return x
"""


@pytest.mark.parametrize("value,expected", [
    ("[nn.Linear(8, 8) for _ in range(3)]", "nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])"),
    ("[]", "nn.ModuleList([])"),
    ("[\n            nn.Linear(8, 8),  # first\n            nn.Linear(8, 8),\n        ]",
     "nn.ModuleList([\n            nn.Linear(8, 8),  # first\n            nn.Linear(8, 8),\n        ])"),
])
def test_lists_become_module_lists_keeping_comments(value, expected):
    out = fixed(NET.format(value=value))
    assert f"self.layers = {expected}  # the hidden layers" in out
    assert fixed(out) is None  # idempotent: nothing plain left to wrap
    compile(out, "model.py", "exec")


def test_dict_with_string_keys_becomes_module_dict():
    out = fixed(NET.format(value='{"age": nn.Linear(8, 1), "gender": nn.Linear(8, 2)}'), container="dict")
    assert 'self.layers = nn.ModuleDict({"age": nn.Linear(8, 1), "gender": nn.Linear(8, 2)})' in out


def test_spelled_as_the_file_imports_torch_nn():
    source = NET.format(value="[nn.Linear(8, 8)]").replace("import torch.nn as nn", "import torch\nfrom torch import nn as tnn")
    assert "tnn.ModuleList([" in fixed(source)
    source = NET.format(value="[torch.nn.Linear(8, 8)]").replace("import torch.nn as nn", "import torch")
    assert "torch.nn.ModuleList([" in fixed(source)


@pytest.mark.parametrize("source,kw", [
    (NET.format(value="{1: nn.Linear(8, 1)}"), {"container": "dict"}),  # ModuleDict keys must be strings
    (NET.format(value="make_layers()"), {}),  # built elsewhere
    (NET.format(value="(nn.Linear(8, 8), nn.Linear(8, 8))"), {"container": "tuple"}),  # tuples: advice
    (NET.format(value="[nn.Linear(8, 8)]").replace("import torch.nn as nn", "from torch.nn import Linear"), {}),
    (NET.format(value="[nn.Linear(8, 8)]") + "\n    def reset(self):\n        self.layers = []\n", {}),  # two
    (NET.format(value="[nn.Linear(8, 8), nn.ReLU]"), {"registrable": False}),  # a class, not a module
])
def test_no_edit_where_it_would_be_a_guess(source, kw):
    assert fixed(source, **kw) is None


@pytest.mark.slow
def test_fix_cli_on_the_fixture_registers_the_layers(tmp_path):
    import importlib.util
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    target = tmp_path / "layers_in_list.py"
    shutil.copy(Path(__file__).resolve().parent.parent / "fixtures" / "layers_in_list.py", target)
    proc = subprocess.run([sys.executable, "-m", "gradcheck_tool", "fix", str(target), "--unsafe-fixes"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "GH113" in proc.stderr and "verified" in proc.stderr
    spec = importlib.util.spec_from_file_location("patched_layers_in_list", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.DeepMLP()
    assert sum(p.numel() for p in model.parameters()) == 20 * 64 + 64 + 3 * (64 * 64 + 64) + 64 + 1
