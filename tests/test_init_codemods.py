"""GH120 codemods: the exact patched text per init form, idempotence, display-only fallbacks,
and end to end (probe, patch, probe again: the drift and its findings are gone)."""
from __future__ import annotations

import ast
import dataclasses
import textwrap
from pathlib import Path
from typing import Sequence

import pytest

from gradcheck_tool.api import ScanOptions
from gradcheck_tool.findings import Applicability, Edit, Finding, Fix, Position, Severity
from gradcheck_tool.fixes.init_codemods import attach_init_fixes
from gradcheck_tool.rules.signals import backward_trend, forward_trend
from gradcheck_tool.runtime import scan_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
MODELS = Path(__file__).resolve().parent / "fix_models"
DRIFT = {"GH120", "GH105", "GH106", "GH101", "GH102"}


# --- helpers -------------------------------------------------------------------------------------


def splice(source: str, edits: Sequence[Edit]) -> str:
    """Apply edits (1-based rows/columns, end-exclusive), last first."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(pos: Position) -> int:
        return starts[pos.row - 1] + pos.column - 1

    out, previous = source, len(source) + 1
    for edit in sorted(edits, key=lambda e: (e.location.row, e.location.column), reverse=True):
        start, end = offset(edit.location), offset(edit.end_location)
        assert end <= previous, "overlapping edits"
        out = out[:start] + edit.content + out[end:]
        previous = start
    return out


def gh120_at(source: str, needle: str, *, occurrence: int = 1, scheme: str = "pytorch-default",
             activation: str = "relu", gain2: float = 1 / 3, fan_in: int = 64) -> Finding:
    """A runtime GH120 finding spanning the ``occurrence``-th ``needle`` (the constructor call)."""
    at = -1
    for _ in range(occurrence):
        at = source.index(needle, at + 1)
    row = source.count("\n", 0, at) + 1
    column = at - (source.rfind("\n", 0, at) + 1) + 1
    expected = 2.0 if activation in ("relu", "leaky_relu", "gelu", "silu", "elu") else 1.0
    return Finding(
        code="GH120", name="init-scale-mismatch", severity=Severity.WARNING, message="init mismatch",
        filename="model.py", location=Position(row, column), end_location=Position(row, column + len(needle)),
        module="body.0", evidence={"layers": ["body.0"], "scheme": scheme, "gain2": gain2,
                                   "expected_gain2": expected, "activation": activation, "fan_in": fan_in},
        fix=Fix(Applicability.DISPLAY_ONLY, "Initialise each of them ..."),
    )


def gh120_edits(source: str, findings: Sequence[Finding]) -> list[Edit]:
    out = attach_init_fixes(source, findings)
    assert len(out) == len(findings)
    return [e for f in out if f.code == "GH120" and f.fix is not None for e in f.fix.edits]


def patch(source: str, findings: Sequence[Finding]) -> str:
    """Fix, check the fix's shape, and check it is idempotent; return the patched text."""
    fixed = [f for f in attach_init_fixes(source, findings) if f.code == "GH120"]
    assert any(f.fix is not None and f.fix.edits for f in fixed), "no edits"
    for f in fixed:
        if f.fix is not None and f.fix.edits:
            assert f.fix.applicability is Applicability.UNSAFE
    patched = splice(source, [e for f in fixed if f.fix is not None for e in f.fix.edits])
    ast.parse(patched)
    assert gh120_edits(patched, findings) == [], "not idempotent"
    return patched


def probe(path: Path):
    findings, result = scan_path(path, ScanOptions())
    return findings, result.record


def only_gh120(findings: Sequence[Finding]) -> Finding:
    found = [f for f in findings if f.code == "GH120"]
    assert len(found) == 1, findings
    return found[0]


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# --- 1. an explicit init to replace -------------------------------------------------------------


@pytest.mark.parametrize("name, old", [
    ("exploding_normal_init.py", "nn.init.normal_(linear.weight, 0.0, 1.0)"),
    ("collapsing_glorot_relu.py", "nn.init.xavier_normal_(linear.weight)"),
])
def test_fixture_init_call_becomes_kaiming(name, old):
    path = FIXTURES / name
    source = path.read_text()
    findings, _ = probe(path)
    assert source.count(old) == 1
    expected = source.replace(old, 'nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")')
    assert patch(source, findings) == expected


@pytest.mark.parametrize("name, needle, old, new", [
    ("loop_modulelist.py", "nn.Linear(width, width)", "nn.init.xavier_normal_(layer.weight)",
     'nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")'),
    ("loop_self_modules.py", "nn.Linear(width, width)", "nn.init.normal_(m.weight, std=1.0)",
     'nn.init.kaiming_normal_(m.weight, nonlinearity="relu")'),
    ("loop_apply.py", "nn.Linear(width, width)", "nn.init.xavier_normal_(module.weight)",
     'nn.init.kaiming_normal_(module.weight, nonlinearity="relu")'),
])
def test_init_applied_in_a_loop_is_replaced(name, needle, old, new):
    """`for layer in self.layers:`, `for m in self.modules():`, `self.apply(self._init_weights)`."""
    source = (MODELS / name).read_text()
    finding = gh120_at(source, needle, scheme="xavier_normal", gain2=1.0)
    assert patch(source, [finding]) == source.replace(old, new)
    assert gh120_edits(source.replace(old, new), [finding]) == []  # idempotent


def test_attribute_weight_data_normal():
    path = MODELS / "attr_data_normal.py"
    source = path.read_text()
    finding = gh120_at(source, "nn.Linear(width, width)", scheme="normal(std=1)", gain2=64.0)
    assert patch(source, [finding]) == dedent('''
        """Attribute layers drawn from N(0, 1) in place through .data: the first one explodes the signal."""
        import torch.nn as nn


        class AttrNormalMLP(nn.Module):
            def __init__(self, width=64):
                super().__init__()
                self.fc = nn.Linear(width, width)
                nn.init.kaiming_normal_(self.fc.weight.data, nonlinearity="relu")  # unscaled: ~sqrt(width / 2) per layer
                self.act = nn.ReLU()
                self.out = nn.Linear(width, 10)

            def forward(self, x):
                return self.out(self.act(self.fc(x)))
    ''')


def test_tanh_with_only_import_torch():
    path = MODELS / "tanh_torch_only.py"
    source = path.read_text()
    finding = gh120_at(source, "torch.nn.Linear(width, width)", scheme="normal(std=0.5)", activation="tanh",
                       gain2=16.0)
    assert patch(source, [finding]) == dedent('''
        """A tanh MLP that imports only torch, with weights of a fixed std whatever the fan-in."""
        import torch


        class TanhNet(torch.nn.Module):
            def __init__(self, width=64, depth=10):
                super().__init__()
                blocks = []
                for _ in range(depth):
                    fc = torch.nn.Linear(width, width)
                    torch.nn.init.xavier_uniform_(fc.weight, gain=torch.nn.init.calculate_gain("tanh"))
                    blocks += [fc, torch.nn.Tanh()]
                self.net = torch.nn.Sequential(*blocks)

            def forward(self, x):
                return self.net(x)
    ''')


def test_from_torch_nn_import_init_alias():
    path = MODELS / "init_alias.py"
    source = path.read_text()
    findings, _ = probe(path)
    assert only_gh120(findings).evidence["scheme"] == "xavier-uniform"
    assert patch(source, findings) == dedent('''
        """Glorot init before ReLU, written through `from torch.nn import init`."""
        import torch.nn as nn
        from torch.nn import init


        class AliasInitMLP(nn.Module):
            def __init__(self, width=128, depth=20):
                super().__init__()
                self.layers = nn.ModuleList()
                self.act = nn.ReLU()
                for _ in range(depth):
                    layer = nn.Linear(width, width)
                    init.kaiming_normal_(layer.weight, nonlinearity="relu")  # Glorot: loses sqrt(2) per ReLU
                    init.zeros_(layer.bias)
                    self.layers.append(layer)

            def forward(self, x):
                for layer in self.layers:
                    x = self.act(layer(x))
                return x
    ''')


def test_no_grad_block_and_init_in_another_method():
    source = dedent('''
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(64, 64)
                self.fc2 = nn.Linear(64, 64)
                self.reset()

            def reset(self):
                with torch.no_grad():
                    self.fc1.weight.normal_()
                    self.fc2.weight.normal_()
    ''')
    finding = gh120_at(source, "nn.Linear(64, 64)", scheme="normal(std=1)", activation="gelu", gain2=64.0)
    assert patch(source, [finding]) == source.replace(
        "self.fc1.weight.normal_()", 'nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")')


def test_selu_gets_lecun_and_the_call_keeps_its_own_prefix():
    source = dedent('''
        import torch
        import torch.nn as nn


        def build_model():
            layers = []
            for _ in range(16):
                lin = nn.Linear(64, 64)
                torch.nn.init.xavier_normal_(lin.weight, gain=2.0)
                layers += [lin, nn.SELU()]
            return nn.Sequential(*layers)
    ''')
    finding = gh120_at(source, "nn.Linear(64, 64)", scheme="xavier-normal", activation="selu", gain2=4.0)
    assert patch(source, [finding]) == source.replace(
        "torch.nn.init.xavier_normal_(lin.weight, gain=2.0)",
        'torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="linear")')


def test_only_the_init_of_that_construction_is_replaced():
    source = dedent('''
        import torch.nn as nn


        def build_model():
            fc = nn.Linear(64, 64)
            nn.init.normal_(fc.weight)
            first = fc
            fc = nn.Linear(64, 10)
            nn.init.normal_(fc.weight, std=0.01)
            return nn.Sequential(first, nn.ReLU(), fc)
    ''')
    finding = gh120_at(source, "nn.Linear(64, 64)", scheme="normal(std=1)", gain2=64.0)
    assert patch(source, [finding]) == source.replace(
        "nn.init.normal_(fc.weight)\n", 'nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")\n')


# --- 2. PyTorch's default init: add one ------------------------------------------------------------


def test_default_init_module_class_gets_helper_and_self_apply():
    path = MODELS / "default_relu_mlp.py"
    source = path.read_text()
    findings, _ = probe(path)
    assert only_gh120(findings).evidence["scheme"] == "pytorch-default"
    assert patch(source, findings) == dedent('''
        """A deep ReLU MLP left at PyTorch's default init: each layer loses ~sqrt(6) of the signal."""
        import torch.nn as nn


        def _gradhealth_init(module):
            # Added by gradhealth fix: He init for the ReLU layers the probe found collapsing.
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


        WIDTH = 128


        class DefaultReLUMLP(nn.Module):
            """Twelve Linear+ReLU blocks, nothing initialised explicitly."""

            def __init__(self, width=WIDTH, depth=12):
                super().__init__()
                layers = []
                for _ in range(depth):
                    layers.append(nn.Linear(width, width))  # kaiming_uniform_(a=sqrt(5)) by default
                    layers.append(nn.ReLU())
                self.body = nn.Sequential(*layers)
                self.head = nn.Linear(width, 10)
                self.apply(_gradhealth_init)

            def forward(self, x):
                return self.head(self.body(x))
    ''')


def test_default_init_in_build_model_loop_inserts_after_constructor():
    path = MODELS / "build_model_loop.py"
    source = path.read_text()
    findings, _ = probe(path)
    assert patch(source, findings) == dedent('''
        """build_model() stacks default-initialised Linear+ReLU pairs in a loop."""
        import torch.nn as nn


        def build_model(width=128, depth=12):
            layers = []
            for _ in range(depth):
                # one hidden block
                linear = nn.Linear(width, width)
                nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
                layers += [linear, nn.ReLU()]
            return nn.Sequential(*layers, nn.Linear(width, 10))
    ''')


HELPER = dedent('''
    def _gradhealth_init(module):
        # Added by gradhealth fix: He init for the ReLU layers the probe found collapsing.
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
''')


def test_default_init_inline_sequential_applies_helper_to_model():
    path = MODELS / "sequential_inline.py"
    source = path.read_text()
    findings, _ = probe(path)
    patched = patch(source, findings)
    expected = source.replace(
        "import torch.nn as nn\n\n\n", "import torch.nn as nn\n\n\n" + HELPER + "\n\n"
    ).replace("    )\n    return model\n", "    )\n    model.apply(_gradhealth_init)\n    return model\n")
    assert patched == expected
    assert patched.count("_gradhealth_init") == 2


def test_default_init_returned_sequential_gets_apply():
    source = dedent('''
        import torch.nn as nn
        WIDTH = 64
        def build_model():
            return nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 1))
    ''')
    finding = gh120_at(source, "nn.Linear(WIDTH, WIDTH)")
    assert patch(source, [finding]) == (
        "import torch.nn as nn\n\n\n" + HELPER + "\n\nWIDTH = 64\ndef build_model():\n"
        "    return nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 1))"
        ".apply(_gradhealth_init)\n")


def test_default_init_conv_transpose_joins_the_helper_and_tanh_wording():
    source = dedent('''
        import torch


        class Up(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.up = torch.nn.ConvTranspose2d(8, 8, 3)
                self.act = torch.nn.Tanh()
    ''')
    finding = gh120_at(source, "torch.nn.ConvTranspose2d(8, 8, 3)", activation="tanh")
    assert patch(source, [finding]) == dedent('''
        import torch


        def _gradhealth_init(module):
            # Added by gradhealth fix: Glorot init for the tanh layers the probe found collapsing.
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose2d)):
                torch.nn.init.xavier_uniform_(module.weight, gain=torch.nn.init.calculate_gain("tanh"))
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)


        class Up(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.up = torch.nn.ConvTranspose2d(8, 8, 3)
                self.act = torch.nn.Tanh()
                self.apply(_gradhealth_init)
    ''')


def test_module_level_sequential_and_a_line_only_site():
    source = dedent('''
        """Built at import."""
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())  # two blocks
        print(model)
    ''')
    row_only = dataclasses.replace(gh120_at(source, "nn.Linear(64, 64)"),
                                   location=Position(3, 1), end_location=Position(3, 1))
    assert attach_init_fixes(source, [row_only]) == [row_only]  # two candidate calls on the row: no guess
    finding = gh120_at(source, "nn.Linear(64, 64)", occurrence=2)
    assert patch(source, [finding]) == (
        '"""Built at import."""\nimport torch.nn as nn\n\n\n' + HELPER + "\n\n"
        "model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())  # two blocks\n"
        "model.apply(_gradhealth_init)\nprint(model)\n")
    single = "import torch.nn as nn\nfc = nn.Linear(64, 64)\n"
    line_only = dataclasses.replace(gh120_at(single, "nn.Linear(64, 64)"),
                                    location=Position(2, 1), end_location=Position(2, 1))
    assert patch(single, [line_only]) == single + 'nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")\n'


def test_crlf_and_tab_indentation_are_kept():
    source = "import torch.nn as nn\r\n\r\ndef build_model():\r\n\tfc = nn.Linear(64, 64)\r\n\treturn fc\r\n"
    finding = gh120_at(source, "nn.Linear(64, 64)")
    assert patch(source, [finding]) == (
        "import torch.nn as nn\r\n\r\ndef build_model():\r\n\tfc = nn.Linear(64, 64)\r\n"
        '\tnn.init.kaiming_normal_(fc.weight, nonlinearity="relu")\r\n\treturn fc\r\n')


def test_no_trailing_newline():
    source = "import torch.nn as nn\nfc = nn.Linear(64, 64)"
    finding = gh120_at(source, "nn.Linear(64, 64)")
    assert patch(source, [finding]) == (
        'import torch.nn as nn\nfc = nn.Linear(64, 64)\nnn.init.kaiming_normal_(fc.weight, nonlinearity="relu")')


# --- 3. no safe edit: the advice stays display-only ---------------------------------------------------


def test_other_findings_and_unlocatable_ones_are_unchanged():
    path = FIXTURES / "exploding_normal_init.py"
    source = path.read_text()
    findings, _ = probe(path)
    out = attach_init_fixes(source, findings)
    assert [f for f in out if f.code != "GH120"] == [f for f in findings if f.code != "GH120"]
    elsewhere = [dataclasses.replace(f, location=Position(1, 1), end_location=Position(1, 10)) for f in findings]
    assert attach_init_fixes(source, elsewhere) == elsewhere
    assert attach_init_fixes("def broken(:\n", findings) == findings


@pytest.mark.parametrize("source, needle, scheme", [
    # (init through self.apply(self._init_weights) is an edit now: test_init_applied_in_a_loop_is_replaced)
    # default init built into a list in a function that returns a list, not a module
    (dedent('''
        import torch.nn as nn
        def layers():
            out = []
            out.append(nn.Linear(64, 64))
            return out
    '''), "nn.Linear(64, 64)", "pytorch-default"),
    # a comment inside the init call would be lost
    (dedent('''
        import torch.nn as nn
        def build_model():
            fc = nn.Linear(64, 64)
            nn.init.normal_(fc.weight,  # unit std
                            0.0, 1.0)
            return fc
    '''), "nn.Linear(64, 64)", "normal(std=1)"),
    # no torch.nn spelling at module level to write the init with
    (dedent('''
        from torch.nn import Linear
        def build_model():
            fc = Linear(64, 64)
            return fc
    '''), "Linear(64, 64)", "pytorch-default"),
    # the constructor is a user class, not an nn weight layer (the probe's ancestor fallback)
    (dedent('''
        import torch.nn as nn
        from blocks import Block
        def build_model():
            block = Block(64)
            return block
    '''), "Block(64)", "pytorch-default"),
    # a one-line suite: no line of its own to insert after
    (dedent('''
        import torch.nn as nn
        def build_model():
            for _ in range(3): fc = nn.Linear(64, 64)
            return fc
    '''), "nn.Linear(64, 64)", "pytorch-default"),
])
def test_display_only_when_no_safe_edit(source, needle, scheme):
    finding = gh120_at(source, needle, scheme=scheme)
    assert attach_init_fixes(source, [finding]) == [finding]


def test_sigmoid_or_unknown_activation_is_left_alone():
    source = "import torch.nn as nn\nfc = nn.Linear(64, 64)\n"
    finding = gh120_at(source, "nn.Linear(64, 64)")
    odd = dataclasses.replace(finding, evidence={**finding.evidence, "activation": "sigmoid"})
    assert attach_init_fixes(source, [odd]) == [odd]


def test_two_findings_never_get_overlapping_edits():
    source = dedent('''
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 3)
                self.fc = nn.Linear(64, 64)
    ''')
    findings = [gh120_at(source, "nn.Conv2d(3, 3, 3)"), gh120_at(source, "nn.Linear(64, 64)")]
    out = attach_init_fixes(source, findings)
    assert out[0].fix.edits and out[1] == findings[1]  # the second waits for the next round
    patched = splice(source, out[0].fix.edits)
    assert attach_init_fixes(patched, findings) == findings  # one self.apply covers both


def test_existing_helper_is_reused_and_a_foreign_one_blocks():
    source = "import torch.nn as nn\n\n\n" + HELPER + dedent('''


        def build_model():
            model = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
            return model
    ''')
    finding = gh120_at(source, "nn.Linear(64, 64)")
    assert patch(source, [finding]) == source.replace(
        "    return model\n", "    model.apply(_gradhealth_init)\n    return model\n")
    tanh = gh120_at(source, "nn.Linear(64, 64)", activation="tanh")
    assert attach_init_fixes(source, [tanh]) == [tanh]  # the helper there is He init, not Glorot


# --- end to end: probe, patch, probe again ------------------------------------------------------------


def _drift(record) -> tuple[float, float]:
    fwd, bwd = forward_trend(record), backward_trend(record)
    return (abs(fwd.total) if fwd else 0.0, abs(bwd.total) if bwd else 0.0)


@pytest.mark.parametrize("path", [
    FIXTURES / "exploding_normal_init.py",
    FIXTURES / "collapsing_glorot_relu.py",
    MODELS / "default_relu_mlp.py",
    MODELS / "build_model_loop.py",
    MODELS / "init_alias.py",
    MODELS / "sequential_inline.py",
    MODELS / "loop_modulelist.py",
    MODELS / "loop_self_modules.py",
    MODELS / "loop_apply.py",
], ids=lambda p: p.name)
def test_end_to_end_the_patched_model_no_longer_drifts(path, tmp_path):
    source = path.read_text()
    before, record_before = probe(path)
    assert "GH120" in {f.code for f in before}
    patched_path = tmp_path / path.name
    patched_path.write_text(patch(source, before))
    after, record_after = probe(patched_path)
    assert not DRIFT & {f.code for f in after}, after
    fwd_before, bwd_before = _drift(record_before)
    fwd_after, bwd_after = _drift(record_after)
    assert fwd_after < fwd_before and fwd_after < 1.0
    assert bwd_after < max(bwd_before, 1.0)
    # the forward signal now holds its scale: last weight layer's RMS within 10x of the first's
    rms = [layer.out_rms for layer in record_after.layers if layer.weight_init is not None]
    assert 0.1 < rms[-1] / rms[0] < 10
    # the fix is idempotent against the new probe's findings as well
    assert gh120_edits(patched_path.read_text(), after) == []
