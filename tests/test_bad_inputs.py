"""The bad-input matrix: every way a scan can be handed something it cannot probe.

Each row runs the real CLI (``python -m gradcheck_tool scan ...``) in a subprocess with
cwd=tmp_path and checks the contract of DESIGN.md "Exit codes" and "Streams":

* the exit code: 2 when gradhealth could not do its job; 1 for a GH001 finding (syntax error,
  not UTF-8); 0 when the file defines no model (the probe is skipped, not an error);
* stderr: exactly one ``gradhealth: error: ...`` line naming the cause, the file and a remedy
  (no traceback) for exit 2; exactly one ``gradhealth: FILE: probe skipped: ...`` note for skips;
* nothing in tmp_path is created, changed or removed, ``__pycache__/*.pyc`` included: a
  linter must not litter the tree it reads;
* on one row, ``--format json`` still puts a valid report with a failed probe on stdout.

Where the tool falls short of the contract today, the row lists the shortfall in ``gaps``:
the row is then a strict xfail that only a ``ContractGap`` satisfies, so any other failure
(wrong exit code, a traceback, a second line) still fails loudly, and a gap that appears or
disappears fails too, naming the row to update.

The subprocess environment drops PYTHONDONTWRITEBYTECODE, which this repository's shell
sets: the test must see what a user's shell gets, not what ours hides.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import pytest
import torch
from jsonschema import Draft202012Validator

from gradcheck_tool.report.json import load_schema

TIMEOUT_S = 240  # torch's import in the CLI and again in the probing child, on a slow runner


class ContractGap(AssertionError):
    """A known shortfall of the tool on a row; only this exception satisfies the row's xfail."""


GAP_REASONS = {
    "bytecode": "the probe imports the file with bytecode writing on: __pycache__/<file>.cpython-XY.pyc "
                "appears next to the scanned file (the child should set sys.dont_write_bytecode)",
    "no-file-name": "the error line does not name the scanned file (only the model/option), so a "
                    "directory scan cannot tell which file failed",
    "no-remedy": "the error line names the cause but no remedy",
}


# --- the files the rows scan -------------------------------------------------------------------

LINEAR_NET = '''\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
'''

SYNTAX_ERROR = '''\
import torch.nn as nn


def broken(:
    pass
'''

IMPORT_ERROR = '''\
import torch.nn as nn
import not_a_real_package_gh  # not installed anywhere

model = nn.Linear(4, 2)
'''

RAISES_AT_IMPORT = '''\
import torch.nn as nn

model = nn.Linear(4, 2)
raise RuntimeError("boom at import")
'''

NO_MODEL = '''\
"""A utility module: no nn.Module anywhere."""


def accuracy(predictions, targets):
    return (predictions.argmax(-1) == targets).float().mean()
'''

SEVERAL_MODELS = '''\
import torch.nn as nn


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 4)

    def forward(self, x):
        return self.fc(x)
'''

NEEDS_ARGUMENTS = '''\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, 2)

    def forward(self, x):
        return self.fc(x)
'''

CANNOT_INFER = '''\
import torch
import torch.nn as nn


class Scale(nn.Module):  # no Linear/Conv/Embedding/RNN to read an input shape from
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return x * self.w
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

INT_OUTPUT = '''\
import torch.nn as nn


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x).argmax(-1)  # int64 class ids: nothing to differentiate
'''

FROZEN = '''\
import torch.nn as nn


class Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return self.fc(x)
'''

ON_META = '''\
import torch
import torch.nn as nn


def build_model():
    with torch.device("meta"):  # shapes only, no data: nothing to probe
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
'''

SPLIT_CPU_META = '''\
import torch.nn as nn


def build_model():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model[2].to("meta")  # half on cpu, half on meta
    return model
'''

NOT_UTF8 = b"import torch.nn as nn\n# caf\xe9 (latin-1)\nmodel = nn.Linear(4, 2)\n"

TRAINS_AT_IMPORT = '''\
import torch
import torch.nn as nn

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):  # no zero_grad: GH205, a static warning
    loss = model(torch.randn(16, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
    with open(f"trained_{step}.txt", "w") as marker:  # proof, if it ever ran: a new file in tmp_path
        marker.write("the training loop ran at import")
'''


# --- the matrix --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    id: str
    files: dict[str, Union[str, bytes]]  # relative path -> content ("dir/" keys make directories)
    args: tuple[str, ...]  # after `scan`
    exit_code: int
    kind: str  # "error" (exit 2), "skip" (probe skipped, exit 0) or "finding" (exit 1, probe skipped)
    cause: tuple[str, ...] = ()  # all must be in the error line / skip note
    name: Optional[str] = None  # the scanned file the error line must name (None: an option error)
    remedy: tuple[str, ...] = ()  # one of these must be in the error line
    codes: tuple[str, ...] = ()  # findings that must be on stdout
    json: bool = False  # args include --format json: stdout must be a valid report with a failed probe
    gaps: frozenset[str] = field(default_factory=frozenset)


def row(*args, gaps=(), cuda_only_when_absent=False, **kwargs):
    spec = Row(*args, gaps=frozenset(gaps), **kwargs)
    marks = []
    if spec.gaps:
        marks.append(pytest.mark.xfail(strict=True, raises=ContractGap,
                                       reason="; ".join(GAP_REASONS[g] for g in sorted(spec.gaps))))
    if cuda_only_when_absent:
        marks.append(pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here"))
    return pytest.param(spec, id=spec.id, marks=marks)


MATRIX = [
    # Exit 2: "file not found" is listed in DESIGN.md as the tool not doing its job.
    row("missing-file", {}, ("missing.py",), 2, "error",
        cause=("no such file",), name="missing.py", remedy=("give a Python file",)),
    # Exit 2: the path the user named holds nothing to scan, a bad argument like a missing file.
    row("directory-with-no-python", {"notes/README.txt": "no code here\n"}, ("notes",), 2, "error",
        cause=("no Python files",), name="notes", remedy=("give a Python file", "pass a Python file", ".py")),
    # Exit 1: a file that does not parse is a GH001 finding (README: "the rest of the scan goes on"),
    # not a tool failure; the probe is skipped with a note.
    row("syntax-error", {"broken.py": SYNTAX_ERROR}, ("broken.py",), 1, "finding",
        cause=("does not parse", "GH001"), codes=("GH001",)),
    # Exit 2: user code raised at import; the remedy is to install the package.
    row("import-error-in-model-file", {"needs_pkg.py": IMPORT_ERROR}, ("needs_pkg.py",), 2, "error",
        cause=("not_a_real_package_gh",), name="needs_pkg.py", remedy=("install it",)),
    # Exit 2: user code raised at import (DESIGN.md lists "user code raised").
    row("model-file-raises-at-import", {"explodes.py": RAISES_AT_IMPORT}, ("explodes.py",), 2, "error",
        cause=("RuntimeError", "boom at import"), name="explodes.py",
        remedy=("--static-only", "if __name__", "build_model()")),
    # Exit 0: a file with no model is not an error (DESIGN.md), so a hook over every file passes.
    row("no-model-found", {"utils.py": NO_MODEL}, ("utils.py",), 0, "skip",
        cause=("no model found", "build_model()", "--model")),
    # Exit 2: DESIGN.md: several candidates and none is the root -> "an error listing them".
    row("several-candidate-models", {"two_models.py": SEVERAL_MODELS}, ("two_models.py",), 2, "error",
        cause=("several candidate models", "Encoder", "Decoder"), name="two_models.py",
        remedy=("--model", "build_model()")),
    # Exit 2: a model it should probe could not be built.
    row("constructor-needs-arguments", {"needs_args.py": NEEDS_ARGUMENTS}, ("needs_args.py",), 2, "error",
        cause=("constructor arguments",), name="needs_args.py", remedy=("build_model()", "--model")),
    # Exit 2 for the three --model rows: a bad option; the line names the expression and the error.
    row("model-expr-name-error", {"expr_name.py": LINEAR_NET}, ("expr_name.py", "--model", "Nett()"), 2, "error",
        cause=("--model", "NameError", "Nett"), name="expr_name.py", remedy=("--model",)),
    row("model-expr-syntax-error", {"expr_syntax.py": LINEAR_NET}, ("expr_syntax.py", "--model", "Net("), 2,
        "error", cause=("--model", "SyntaxError"), name="expr_syntax.py", remedy=("--model",)),
    row("model-expr-not-a-module", {"expr_int.py": LINEAR_NET}, ("expr_int.py", "--model", "42"), 2, "error",
        cause=("--model", "not an nn.Module"), name="expr_int.py", remedy=("--model",)),
    # Exit 2: the model was found but the probe cannot build inputs for it.
    row("inputs-cannot-be-inferred", {"scale_only.py": CANNOT_INFER}, ("scale_only.py",), 2, "error",
        cause=("cannot infer inputs", "Scale"), name="scale_only.py", remedy=("example_inputs()",)),
    # Exit 2: user code raised in forward; also the --format json row (stdout stays a valid report).
    row("forward-raises-on-inferred-inputs", {"forward_raises.py": FORWARD_RAISES},
        ("forward_raises.py", "--format", "json"), 2, "error",
        cause=("RuntimeError", "inferred"), name="forward_raises.py", remedy=("example_inputs()",), json=True),
    # Exit 2: nothing differentiable to probe; the remedy is a loss_fn.
    row("outputs-with-no-floating-tensor", {"argmax_out.py": INT_OUTPUT}, ("argmax_out.py",), 2, "error",
        cause=("no floating tensor",), name="argmax_out.py", remedy=("loss_fn(output, inputs)",)),
    # Exit 2: the model was built but there is nothing to probe (it cannot do its job on it).
    row("no-trainable-parameters", {"frozen_net.py": FROZEN}, ("frozen_net.py",), 2, "error",
        cause=("no trainable parameters",), name="frozen_net.py", remedy=("requires_grad", "--static-only")),
    # Exit 2 for the three device rows: the model could not be put where the probe runs.
    row("model-on-meta-device", {"meta_model.py": ON_META}, ("meta_model.py",), 2, "error",
        cause=("meta",), name="meta_model.py", remedy=("build_model()",)),
    row("model-split-across-cpu-and-meta", {"split_model.py": SPLIT_CPU_META}, ("split_model.py",), 2, "error",
        cause=("meta",), name="split_model.py", remedy=("build_model()",)),
    # A bad option, checked before any file is read: the line names the option, not a file.
    row("device-cuda-without-cuda", {"on_cuda.py": LINEAR_NET}, ("on_cuda.py", "--device", "cuda"), 2, "error",
        cause=("--device cuda", "CUDA"), remedy=("--device cpu",), cuda_only_when_absent=True),
    # Exit 1: undecodable source is GH001 (README rules table), the probe is skipped.
    row("non-utf8-source", {"latin1.py": NOT_UTF8}, ("latin1.py",), 1, "finding",
        cause=("not valid UTF-8",), codes=("GH001",)),
    # Exit 0: an empty file defines no model, so it is skipped like any utility module.
    row("empty-file", {"empty.py": ""}, ("empty.py",), 0, "skip",
        cause=("no model found",)),
    # Exit 1: the probe refuses to import it (README "Isolation") and explains how to make it
    # probe-able; the static rules still read it and GH205 (a warning) sets the exit code.
    row("training-at-import-time", {"train_script.py": TRAINS_AT_IMPORT}, ("train_script.py",), 1, "finding",
        cause=("importing it would train", "loss.backward()", "if __name__ == '__main__'"), codes=("GH205",)),
    # Exit 2 for both config rows: README: "unknown keys and wrong types are errors".
    row("config-unknown-key", {"cfg_model.py": LINEAR_NET,
                               "pyproject.toml": '[tool.gradhealth]\nbogus-key = 1\n'},
        ("cfg_model.py",), 2, "error", cause=("bogus-key",), name="pyproject.toml", remedy=("known keys",)),
    row("config-wrong-type", {"cfg_model.py": LINEAR_NET,
                              "pyproject.toml": '[tool.gradhealth]\nprobes = "three"\n'},
        ("cfg_model.py",), 2, "error", cause=("probes", "str"), name="pyproject.toml", remedy=("must be",)),
]


# --- helpers -----------------------------------------------------------------------------------

def _write(root: Path, files: dict[str, Union[str, bytes]]) -> None:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under root: a content hash for files, "<dir>" for directories."""
    return {p.relative_to(root).as_posix(): ("<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*"))}


def _scan(root: Path, args: tuple[str, ...]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def _only_bytecode(paths: set[str]) -> bool:
    return all("__pycache__" in Path(p).parts for p in paths)


# --- the test ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", MATRIX)
def test_bad_input(case: Row, tmp_path: Path) -> None:
    _write(tmp_path, case.files)
    before = _snapshot(tmp_path)
    result = _scan(tmp_path, case.args)
    after = _snapshot(tmp_path)
    context = f"exit {result.returncode}\n--- stderr\n{result.stderr}\n--- stdout\n{result.stdout[:2000]}"

    assert result.returncode == case.exit_code, context
    assert "Traceback" not in result.stderr, context
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, context  # one line, whatever kind of row
    line = lines[0]
    gaps: set[str] = set()
    if case.kind == "error":
        assert line.startswith("gradhealth: error: "), context
        if case.name is not None and case.name not in line:
            gaps.add("no-file-name")
        if not any(r in line for r in case.remedy):
            gaps.add("no-remedy")
    else:  # the probe was skipped, with a note on stderr and no error line
        scanned = case.args[0]
        assert line.startswith(f"gradhealth: {scanned}: probe skipped: "), context
    for needle in case.cause:
        assert needle in line, f"{needle!r} missing from the stderr line\n{context}"
    for code in case.codes:
        assert code in result.stdout, context

    if case.json:
        document = json.loads(result.stdout)  # the report, untouched by the error on stderr
        Draft202012Validator(load_schema()).validate(document)
        (probe,) = document["probes"]
        assert probe["status"] == "failed" and probe["filename"] == case.args[0], probe
        assert probe["reason"] and probe["reason"] in line, (probe, line)

    created, removed = set(after) - set(before), set(before) - set(after)
    changed = {p for p in set(before) & set(after) if before[p] != after[p]}
    assert not removed and not changed, f"the scan removed {sorted(removed)} / changed {sorted(changed)}"
    if created:
        assert _only_bytecode(created), f"the scan created {sorted(created)}\n{context}"
        gaps.add("bytecode")

    assert gaps == case.gaps, (
        f"row {case.id!r}: observed gaps {sorted(gaps)} but the row declares {sorted(case.gaps)}; "
        f"update its gaps= (and so its xfail)\n{context}")
    if gaps:
        raise ContractGap("; ".join(GAP_REASONS[g] for g in sorted(gaps)) + f"\n{line}")
