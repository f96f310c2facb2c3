"""The bad-input matrix: every way a scan can be handed something it cannot probe.

Each row runs the real CLI (``python -m gradcheck_tool scan ...``) in a subprocess with
cwd=tmp_path and checks the contract of DESIGN.md "Exit codes" and "Streams":

* the exit code: 2 when gradhealth could not do its job; 1 for a GH001 finding (syntax error,
  not UTF-8); 0 when the file defines no model (the probe is skipped, not an error);
* stderr: exactly one ``gradhealth: error: ...`` line naming the cause, the file and a remedy
  (no traceback) for exit 2; exactly one ``gradhealth: FILE: probe skipped: ...`` note for skips;
* nothing in tmp_path is created, changed or removed, ``__pycache__/*.pyc`` included: a
  linter must not litter the tree it reads;
* on one row, ``--format json`` still puts a valid report with a failed probe on stdout;
* no process the run started is left alive (each run's environment carries a unique tag that
  every descendant inherits, daemons in sessions of their own included);
* "ok" rows are real-project layouts that must simply load (issue 11): exit 0, nothing on stderr
  but at most one progress line per stage, and the probe's inputs as expected.

Rows that never start a probe child run in the fast layer; the others are marked slow.

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
from typing import Callable, Optional, Union

import pytest
import torch
from jsonschema import Draft202012Validator

from gradcheck_tool.report.json import load_schema
from processes import leftovers, new_tag, tagged_env

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

# --- real-project layouts (issue 11): each class the loader must handle as Python does -------

BLOCK_LAYERS = '''\
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return self.fc(x).relu()


class Wide(nn.Module):  # not imported by model.py: only --model can reach it, through the package
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        return self.fc(x)
'''

RELATIVE_MODEL = '''\
import torch.nn as nn

from .layers import Block


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block())
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.blocks(x))
'''

PACKAGE = {"pkg/__init__.py": "", "pkg/layers.py": BLOCK_LAYERS, "pkg/model.py": RELATIVE_MODEL}

# x_transformers/x_transformers.py: with the file's folder first on sys.path, `import tpkg` finds
# the file itself, not the package, and `from tpkg.helpers import ...` fails.
NAMED_LIKE_PACKAGE = {
    "tpkg/__init__.py": "from tpkg.tpkg import Net\n",
    "tpkg/helpers.py": "WIDTH = 6\n",
    "tpkg/tpkg.py": '''\
import torch.nn as nn

from tpkg.helpers import WIDTH


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(WIDTH, 2)

    def forward(self, x):
        return self.fc(x)
''',
}

ARGPARSE_DEFAULTS = '''\
import argparse

import torch.nn as nn

parser = argparse.ArgumentParser()
parser.add_argument("--width", type=int, default=5)
args = parser.parse_args()  # at import: must see [the file], not the probe's own argv

model = nn.Sequential(nn.Linear(args.width, 3))
'''

ARGPARSE_REQUIRED = '''\
import argparse

import torch.nn as nn

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
args = parser.parse_args()

model = nn.Sequential(nn.Linear(4, 3))
'''

SHADOWS_STDLIB = 'raise RuntimeError("a random.py of the project was imported instead of the stdlib one")\n'

TRAINS_IN_TRY = '''\
import torch
import torch.nn as nn

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


def train():
    loss = model(torch.randn(16, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()  # no zero_grad: GH205, a static warning
    with open("trained.txt", "w") as marker:  # proof, if it ever ran: a new file in tmp_path
        marker.write("the training loop ran at import")


try:  # pytorch/examples word_language_model/main.py's shape
    for epoch in range(3):
        train()
except KeyboardInterrupt:
    print("exiting early")
'''

NEEDS_HIDDEN = '''\
import torch.nn as nn


class RNNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(50, 8)
        self.rnn = nn.GRU(8, 16, 2)
        self.decoder = nn.Linear(16, 50)

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.encoder(input), hidden)
        return self.decoder(output), hidden
'''

ARGS_AND_KWARGS = '''\
import torch
import torch.nn as nn


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x, mask=None, *, scale):
        return self.fc(x * mask * scale)


def example_inputs():
    return (torch.randn(8, 4),), {"mask": torch.ones(8, 4), "scale": 0.5}
'''

# The encoder is registered before the embedding that runs first: inputs for the first registered
# Linear would be float; the forward needs token ids.
EXECUTION_ORDER = '''\
import torch.nn as nn


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(16, 16), nn.GELU())
        self.embed = nn.Embedding(100, 16)
        self.head = nn.Linear(16, 100)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))
'''

KEYBOARD_INTERRUPT = '''\
import torch.nn as nn

model = nn.Linear(4, 2)
raise KeyboardInterrupt  # the file's own, not a Ctrl-C
'''

UNPRINTABLE_ERROR = '''\
import torch.nn as nn


class Unprintable(Exception):
    def __str__(self):
        raise ValueError("no message for you")


model = nn.Linear(4, 2)
raise Unprintable()
'''

DEEP_TREE = '''\
import torch.nn as nn

model = nn.Linear(4, 4)
for _ in range(3000):  # 3,000 nested containers: deeper than Python's recursion limit
    model = nn.Sequential(model)
'''

DELETES_ITSELF = '''\
import os

import torch.nn as nn

os.remove(__file__)
model = nn.Linear(4, 2)
'''

SLOW_FORWARD = '''\
import time

import torch.nn as nn


class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        time.sleep(0.5)  # 3 batches: past the 1 s after which progress shows
        return self.fc(x)
'''

NEWLINE_NAME = "evil\n::error file=x.py::pwned.py"


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
    inputs: str = ""  # "ok" rows: what the JSON probe's inputs description must hold
    console: bool = False  # run the `gradhealth` console script (as users do), not python -m
    removed: tuple[str, ...] = ()  # files the scanned code itself deletes
    github: bool = False  # --format github: stdout must be exactly one annotation line
    progress: Optional[int] = None  # the exact number of progress lines expected on stderr
    prepare: Optional[Callable[[Path], None]] = None  # extra setup beyond `files`
    fast: bool = False  # no probe child: runs in the fast layer


def row(*args, gaps=(), cuda_only_when_absent=False, skip_unless=None, **kwargs):
    spec = Row(*args, gaps=frozenset(gaps), **kwargs)
    marks = [] if spec.fast else [pytest.mark.slow]
    if skip_unless is not None:
        marks.append(pytest.mark.skipif(not skip_unless[0], reason=skip_unless[1]))
    if spec.gaps:
        marks.append(pytest.mark.xfail(strict=True, raises=ContractGap,
                                       reason="; ".join(GAP_REASONS[g] for g in sorted(spec.gaps))))
    if cuda_only_when_absent:
        marks.append(pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here"))
    return pytest.param(spec, id=spec.id, marks=marks)


MATRIX = [
    # Exit 2: "file not found" is listed in DESIGN.md as the tool not doing its job.
    row("missing-file", {}, ("missing.py",), 2, "error",
        cause=("no such file",), name="missing.py", remedy=("give a Python file",), fast=True),
    # Exit 2: the path the user named holds nothing to scan, a bad argument like a missing file.
    row("directory-with-no-python", {"notes/README.txt": "no code here\n"}, ("notes",), 2, "error",
        cause=("no Python files",), name="notes", remedy=("give a Python file", "pass a Python file", ".py"),
        fast=True),
    # Exit 1: a file that does not parse is a GH001 finding (README: "the rest of the scan goes on"),
    # not a tool failure; the probe is skipped with a note.
    row("syntax-error", {"broken.py": SYNTAX_ERROR}, ("broken.py",), 1, "finding",
        cause=("does not parse", "GH001"), codes=("GH001",), fast=True),
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
        cause=("not valid UTF-8",), codes=("GH001",), fast=True),
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
        ("cfg_model.py",), 2, "error", cause=("bogus-key",), name="pyproject.toml", remedy=("known keys",), fast=True),
    row("config-wrong-type", {"cfg_model.py": LINEAR_NET,
                              "pyproject.toml": '[tool.gradhealth]\nprobes = "three"\n'},
        ("cfg_model.py",), 2, "error", cause=("probes", "str"), name="pyproject.toml", remedy=("must be",), fast=True),
    # --- issue 11: real projects load -----------------------------------------------------------
    # Exit 0: a package member with relative imports imports as pkg.model, its package first.
    row("package-relative-imports", PACKAGE, ("pkg/model.py", "--format", "json"), 0, "ok",
        inputs="float32[8, 4]"),
    # Exit 0: --model reaches a class of a sibling module that the file never imported.
    row("model-expr-from-the-package", PACKAGE, ("pkg/model.py", "--model", "Wide()", "--format", "json"), 0, "ok",
        inputs="float32[8, 6]"),
    row("model-expr-names-a-sibling-module", PACKAGE,
        ("pkg/model.py", "--model", "layers.Block(3)", "--format", "json"), 0, "ok", inputs="float32[8, 3]"),
    # Exit 0: tpkg/tpkg.py does not shadow the package tpkg it belongs to.
    row("file-named-like-its-package", NAMED_LIKE_PACKAGE, ("tpkg/tpkg.py", "--format", "json"), 0, "ok",
        inputs="float32[8, 6]"),
    # Exit 0: parse_args() at import sees sys.argv == [the file]: the defaults build the model.
    row("argparse-at-import-with-defaults", {"argp.py": ARGPARSE_DEFAULTS}, ("argp.py", "--format", "json"), 0,
        "ok", inputs="float32[8, 5]"),
    # Exit 2: a required argument: argparse's own message, in one line, with the remedy.
    row("argparse-at-import-requires-arguments", {"argreq.py": ARGPARSE_REQUIRED}, ("argreq.py",), 2, "error",
        cause=("argparse", "the following arguments are required: --data"), name="argreq.py",
        remedy=("give those arguments defaults",)),
    # Exit 0: a random.py in the working directory (and beside the model) never replaces the stdlib's.
    row("project-file-named-like-a-stdlib-module", {"random.py": SHADOWS_STDLIB, "model.py": LINEAR_NET},
        ("model.py", "--format", "json"), 0, "ok", console=True, inputs="float32[8, 4]"),
    # Exit 1: a module-level call, inside try:, of a function of the file that trains.
    row("training-at-import-inside-try", {"train_loop.py": TRAINS_IN_TRY}, ("train_loop.py",), 1, "finding",
        cause=("importing it would train", "`train()`"), codes=("GH205",)),
    # --- issue 11: inputs ---------------------------------------------------------------------
    # Exit 2: forward(input, hidden): name `hidden` and show the example_inputs() to write.
    row("forward-needs-a-second-argument", {"rnn_lm.py": NEEDS_HIDDEN}, ("rnn_lm.py",), 2, "error",
        cause=("forward(input, hidden)", "needs hidden"), name="rnn_lm.py",
        remedy=("def example_inputs(): return torch.randint(0, 50, (8, 32)), <hidden>",)),
    # Exit 0: example_inputs() returns (args, kwargs), keyword-only arguments included.
    row("example-inputs-with-args-and-kwargs", {"masked.py": ARGS_AND_KWARGS}, ("masked.py", "--format", "json"),
        0, "ok", inputs="example_inputs(): {x: float32[8, 4], mask: float32[8, 4], scale: float}"),
    # Exit 0: the first layer by execution order (the embedding), not registration order (the encoder).
    row("first-layer-by-execution-order", {"tiny_lm.py": EXECUTION_ORDER}, ("tiny_lm.py", "--format", "json"), 0,
        "ok", inputs="inferred from embed (Embedding): int64[8, 32]"),
    # --- issue 11: every failure is exit 2 and one line ---------------------------------------
    row("output-into-a-missing-folder", {"model.py": LINEAR_NET}, ("model.py", "-o", "nowhere/report.json"), 2,
        "error", cause=("does not exist",), name="nowhere", remedy=("create it",), fast=True),
    row("output-to-a-full-device", {"model.py": LINEAR_NET}, ("model.py", "-o", "/dev/full"), 2, "error",
        cause=("cannot write the report", "No space left"), name="/dev/full", remedy=("free space",),
        skip_unless=(Path("/dev/full").exists(), "no /dev/full here")),
    row("max-memory-inf", {"model.py": LINEAR_NET}, ("model.py", "--max-memory", "inf"), 2, "error",
        cause=("--max-memory", "inf"), remedy=("finite number",), fast=True),
    row("max-memory-nan", {"model.py": LINEAR_NET}, ("model.py", "--max-memory", "nan"), 2, "error",
        cause=("--max-memory", "nan"), remedy=("finite number",), fast=True),
    row("timeout-absurd", {"model.py": LINEAR_NET}, ("model.py", "--timeout", "1e300"), 2, "error",
        cause=("--timeout",), remedy=("finite number",), fast=True),
    row("seed-absurd", {"model.py": LINEAR_NET}, ("model.py", "--seed", "99999999999999999999999"), 2, "error",
        cause=("--seed", "not in the range"), remedy=("--help",), fast=True),
    row("input-shape-absurd", {"model.py": LINEAR_NET}, ("model.py", "--input-shape", "100000,100000,1000"), 2,
        "error", cause=("--input-shape", "elements"), remedy=("small batch",), fast=True),
    row("unknown-option-is-one-line", {"model.py": LINEAR_NET}, ("model.py", "--bogus"), 2, "error",
        cause=("No such option", "--bogus"), remedy=("--help",), fast=True),
    row("config-max-memory-inf", {"model.py": LINEAR_NET, "pyproject.toml": "[tool.gradhealth]\nmax-memory = inf\n"},
        ("model.py", "--static-only"), 2, "error", cause=("max-memory", "inf"), name="pyproject.toml",
        remedy=("finite number",), fast=True),
    row("config-tool-is-not-a-table", {"model.py": LINEAR_NET, "pyproject.toml": "tool = 5\n"},
        ("model.py", "--static-only"), 2, "error", cause=("[tool] must be a table",), name="pyproject.toml",
        remedy=("must be a table",), fast=True),
    row("unreadable-file", {}, ("locked.py",), 2, "error", cause=("cannot read it",), name="locked.py",
        remedy=("permissions",), prepare=lambda root: _unreadable(root / "locked.py"), fast=True),
    row("file-deletes-itself-at-import", {"vanishing.py": DELETES_ITSELF}, ("vanishing.py", "--format", "json"), 0,
        "ok", removed=("vanishing.py",), inputs="float32[8, 4]"),
    row("keyboard-interrupt-raised-by-the-file", {"ctrl_c.py": KEYBOARD_INTERRUPT}, ("ctrl_c.py",), 2, "error",
        cause=("KeyboardInterrupt",), name="ctrl_c.py", remedy=("--static-only",)),
    row("exception-whose-str-raises", {"unprintable.py": UNPRINTABLE_ERROR}, ("unprintable.py",), 2, "error",
        cause=("Unprintable", "cannot be printed"), name="unprintable.py", remedy=("--static-only",)),
    row("module-tree-3000-deep", {"deep.py": DEEP_TREE}, ("deep.py",), 2, "error",
        cause=("nested too deeply",), name="deep.py", remedy=("--model",)),
    # --- issue 11: streams --------------------------------------------------------------------
    # A newline in the file name: one stderr line, one ::error annotation, and no forged command.
    row("newline-in-the-file-name", {NEWLINE_NAME: FORWARD_RAISES}, (NEWLINE_NAME, "--format", "github"), 2,
        "error", cause=("RuntimeError",), name="evil\\n::error", remedy=("example_inputs()",), github=True),
    # Off a terminal, progress is one line per stage (three batches: one line), not one per batch.
    row("progress-off-a-terminal", {"slow.py": SLOW_FORWARD}, ("slow.py", "--format", "json", "--train-steps", "0"),
        0, "ok", inputs="float32[8, 4]", progress=1),
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


def _unreadable(path: Path) -> None:
    """A .py file whose read fails: mode 000, or, where that does not stop us (root), a link to a
    file the kernel refuses to read from its start (/proc/self/mem at address 0: EIO)."""
    if os.geteuid() == 0:
        path.symlink_to("/proc/self/mem")
    else:
        path.write_text(LINEAR_NET, encoding="utf-8")
        path.chmod(0)


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under root: a content hash for files, "<dir>" for directories, the target for links."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[p.relative_to(root).as_posix()] = f"-> {os.readlink(p)}"
        elif p.is_dir():
            out[p.relative_to(root).as_posix()] = "<dir>"
        else:
            try:
                out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError:
                out[p.relative_to(root).as_posix()] = f"<unreadable, mode {p.stat().st_mode:o}>"
    return out


def _scan(root: Path, args: tuple[str, ...], console: bool, tag: str) -> subprocess.CompletedProcess:
    program = [str(Path(sys.executable).parent / "gradhealth")] if console else [sys.executable, "-m", "gradcheck_tool"]
    return subprocess.run([*program, "scan", *args], cwd=root, env=tagged_env(tag), capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def _only_bytecode(paths: set[str]) -> bool:
    return all("__pycache__" in Path(p).parts for p in paths)


PROGRESS = "gradhealth: probing "


# --- the test ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", MATRIX)
def test_bad_input(case: Row, tmp_path: Path) -> None:
    _write(tmp_path, case.files)
    if case.prepare is not None:
        case.prepare(tmp_path)
    before = _snapshot(tmp_path)
    tag = new_tag()
    result = _scan(tmp_path, case.args, case.console, tag)
    stray = leftovers(tag)
    after = _snapshot(tmp_path)
    context = f"exit {result.returncode}\n--- stderr\n{result.stderr}\n--- stdout\n{result.stdout[:2000]}"

    assert result.returncode == case.exit_code, context
    assert "Traceback" not in result.stderr, context
    assert not stray, f"processes left running: {stray}\n{context}"
    all_lines = result.stderr.strip().splitlines()
    progress = [line for line in all_lines if line.startswith(PROGRESS)]
    lines = [line for line in all_lines if not line.startswith(PROGRESS)]
    if case.progress is not None:
        assert len(progress) == case.progress, context
    assert len(progress) <= 2, context  # off a terminal: at most one line per stage (batches, steps)
    gaps: set[str] = set()
    if case.kind == "ok":
        assert not lines, context  # a clean load says nothing
        document = json.loads(result.stdout)
        (probe,) = document["probes"]
        assert probe["status"] == "ok" and case.inputs in probe["inputs"], probe
    else:
        assert len(lines) == 1, context  # one line, whatever kind of row
        line = lines[0]
        if case.kind == "error":
            assert line.startswith("gradhealth: error: "), context
            if case.name is not None and case.name not in line:
                gaps.add("no-file-name")
            if not any(r in line for r in case.remedy):
                gaps.add("no-remedy")
            if "--format" not in case.args:  # printed once: the text report does not repeat it
                assert line.removeprefix("gradhealth: error: ") not in result.stdout, context
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
    if case.github:
        annotations = result.stdout.splitlines()
        assert len(annotations) == 1 and annotations[0].startswith("::error file=evil%0A%3A%3Aerror"), annotations

    created, removed = set(after) - set(before), set(before) - set(after)
    changed = {p for p in set(before) & set(after) if before[p] != after[p]}
    assert removed == set(case.removed) and not changed, \
        f"the scan removed {sorted(removed)} / changed {sorted(changed)}"
    if created:
        assert _only_bytecode(created), f"the scan created {sorted(created)}\n{context}"
        gaps.add("bytecode")

    assert gaps == case.gaps, (
        f"row {case.id!r}: observed gaps {sorted(gaps)} but the row declares {sorted(case.gaps)}; "
        f"update its gaps= (and so its xfail)\n{context}")
    if gaps:
        raise ContractGap("; ".join(GAP_REASONS[g] for g in sorted(gaps)) + f"\n{line}")
