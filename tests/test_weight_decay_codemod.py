"""GH143 codemod: the exact patched text per optimizer form, idempotence, display-only fallbacks."""
from __future__ import annotations

import ast
import dataclasses
import textwrap
from typing import Sequence

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from gradcheck_tool.findings import Applicability, Edit, Finding, Fix, Position, Severity
from gradcheck_tool.fixes.edits import apply
from gradcheck_tool.fixes.weight_decay import attach_weight_decay_fixes


# --- helpers -------------------------------------------------------------------------------------


def gh143_at(source: str, needle: str, *, optimizer: str = "Adam", value: float = 0.05,
             occurrence: int = 1) -> Finding:
    """A runtime GH143 finding spanning the call that starts at the ``occurrence``-th ``needle``."""
    at = -1
    for _ in range(occurrence):
        at = source.index(needle, at + 1)
    row = source.count("\n", 0, at) + 1
    column = at - (source.rfind("\n", 0, at) + 1) + 1
    call = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
                and (n.lineno, n.col_offset + 1) == (row, column))
    return Finding(
        code="GH143", name="weight-norm-growth", severity=Severity.WARNING, message="weight norm grows",
        filename="train.py", location=Position(row, column),
        end_location=Position(call.end_lineno, call.end_col_offset + 1),
        evidence={"optimizer": optimizer, "suggested_weight_decay": value, "growth": 1.7},
        fix=Fix(Applicability.DISPLAY_ONLY, "Add weight decay"),
    )


def gh143_edits(source: str, findings: Sequence[Finding]) -> list[Edit]:
    out = attach_weight_decay_fixes(source, findings)
    assert len(out) == len(findings)
    return [e for f in out if f.code == "GH143" and f.fix is not None for e in f.fix.edits]


def patch(source: str, needle: str, *, again: str | None = None, occurrence: int = 1, **kw) -> str:
    """Fix, check the fix's shape, and check it is idempotent (the finding re-located at ``again``,
    by default ``needle`` with Adam spelt AdamW); return the patched text."""
    source = textwrap.dedent(source)
    [fixed] = attach_weight_decay_fixes(source, [gh143_at(source, needle, occurrence=occurrence, **kw)])
    assert fixed.fix is not None and fixed.fix.edits, "no edits"
    assert fixed.fix.applicability is Applicability.UNSAFE
    patched = apply(source, fixed.fix.edits)
    ast.parse(patched)
    if again is None:
        again = needle.replace("Adam(", "AdamW(") if kw.get("optimizer", "Adam") == "Adam" else needle
    else:
        occurrence = 1
    [second] = attach_weight_decay_fixes(patched, [gh143_at(patched, again, occurrence=occurrence, **kw)])
    assert second.fix is not None and not second.fix.edits, "not idempotent"
    assert second.fix.applicability is Applicability.DISPLAY_ONLY
    assert gh143_edits(patched, [gh143_at(patched, again, occurrence=occurrence, **kw)]) == []
    return patched


def display_only(source: str, needle: str, **kw) -> Fix:
    """The advice a GH143 finding without a fix of its own gets when no edit is safe."""
    source = textwrap.dedent(source)
    finding = dataclasses.replace(gh143_at(source, needle, **kw), fix=None)
    [out] = attach_weight_decay_fixes(source, [finding])
    assert out.fix is not None and out.fix.applicability is Applicability.DISPLAY_ONLY and not out.fix.edits
    return out.fix


# --- patched text ----------------------------------------------------------------------------------


def test_sgd_single_line():
    out = patch("""\
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        """, "torch.optim.SGD(", optimizer="SGD", value=0.0005)
    assert out == textwrap.dedent("""\
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.0005)
        """)


def test_fix_message():
    source = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
    [out] = attach_weight_decay_fixes(source, [gh143_at(source, "torch.optim.Adam(")])
    assert out.fix.message == ("Add weight_decay=0.05 and use AdamW (decoupled decay) "
                               "so the weights' norm stays bounded")
    source = "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    [out] = attach_weight_decay_fixes(source, [gh143_at(source, "torch.optim.SGD(", optimizer="SGD", value=5e-4)])
    assert out.fix.message == "Add weight_decay=0.0005 so the weights' norm stays bounded"


def test_torch_optim_adam_becomes_adamw():
    out = patch("""\
        import torch
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        """, "torch.optim.Adam(")
    assert out == "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)\n"


def test_optim_adam_in_function_and_method():
    out = patch("""\
        from torch import optim

        def make(model):
            return optim.Adam(model.parameters(), lr=3e-4)

        class Trainer:
            def __init__(self, model):
                self.opt = optim.Adam(model.parameters(), lr=3e-4)
        """, "optim.Adam(", occurrence=2, again="optim.AdamW(", value=1e-5)
    assert out == textwrap.dedent("""\
        from torch import optim

        def make(model):
            return optim.Adam(model.parameters(), lr=3e-4)

        class Trainer:
            def __init__(self, model):
                self.opt = optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-05)
        """)
    out = patch(out, "optim.Adam(", again="optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-05)\n\n", value=1e-5)
    assert "return optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-05)\n" in out


def test_module_alias_attribute():
    out = patch("import torch.optim as O\nopt = O.Adam(params, lr=1e-3)\n", "O.Adam(")
    assert out == "import torch.optim as O\nopt = O.AdamW(params, lr=1e-3, weight_decay=0.05)\n"


def test_bare_adam_extends_import():
    out = patch("""\
        from torch.optim import Adam  # optimizers
        opt = Adam(model.parameters(), lr=1e-3)
        """, "Adam(model")
    assert out == textwrap.dedent("""\
        from torch.optim import Adam, AdamW  # optimizers
        opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
        """)


def test_bare_adam_uses_imported_adamw():
    out = patch("""\
        from torch.optim import Adam, AdamW
        opt = Adam(model.parameters(), lr=1e-3)
        """, "Adam(model")
    assert out == textwrap.dedent("""\
        from torch.optim import Adam, AdamW
        opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
        """)


def test_bare_adam_parenthesized_import():
    out = patch("""\
        from torch.optim import (
            SGD,
            Adam,
        )
        opt = Adam(model.parameters(), lr=1e-3)
        """, "Adam(model")
    assert out == textwrap.dedent("""\
        from torch.optim import (
            SGD,
            Adam,
            AdamW,
        )
        opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
        """)


def test_alias_adam_as_a():
    out = patch("""\
        from torch.optim import Adam as A
        opt = A(model.parameters(), lr=1e-3)
        """, "A(model", again="AdamW(model")
    assert out == textwrap.dedent("""\
        from torch.optim import Adam as A, AdamW
        opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
        """)


def test_adamw_zero_weight_decay_replaced():
    for zero in ("0.0", "0", "0e0"):
        out = patch(f"opt = torch.optim.AdamW(params, lr=1e-3, weight_decay={zero}, betas=(0.9, 0.95))\n",
                    "torch.optim.AdamW(", optimizer="AdamW", value=0.1)
        assert out == "opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))\n"


def test_adam_decoupled_keeps_class():
    out = patch("opt = torch.optim.Adam(params, lr=1e-3, decoupled_weight_decay=True)\n", "torch.optim.Adam(",
                again="torch.optim.Adam(")
    assert out == "opt = torch.optim.Adam(params, lr=1e-3, decoupled_weight_decay=True, weight_decay=0.05)\n"


def test_multiline_trailing_comma_with_comment():
    out = patch("""\
        def build(model):
            opt = torch.optim.SGD(
                model.parameters(),  # all of them
                lr=0.1,  # tuned
                # momentum=0.9,
            )
            return opt
        """, "torch.optim.SGD(", optimizer="SGD", value=5e-4)
    assert out == textwrap.dedent("""\
        def build(model):
            opt = torch.optim.SGD(
                model.parameters(),  # all of them
                lr=0.1,  # tuned
                weight_decay=0.0005,
                # momentum=0.9,
            )
            return opt
        """)


def test_multiline_without_trailing_comma():
    out = patch("opt = torch.optim.Adam(model.parameters(),\n"
                "                       lr=1e-3)  # fast\n", "torch.optim.Adam(")
    assert out == ("opt = torch.optim.AdamW(model.parameters(),\n"
                   "                       lr=1e-3, weight_decay=0.05)  # fast\n")


def test_crlf_multiline():
    source = "opt = SGD(\r\n    params,\r\n    lr=0.1,\r\n)\r\n"
    out = patch(source, "SGD(", optimizer="SGD")
    assert out == "opt = SGD(\r\n    params,\r\n    lr=0.1,\r\n    weight_decay=0.05,\r\n)\r\n"


def test_trailing_comma_single_line():
    out = patch("opt = SGD(params, lr=0.1,)\n", "SGD(", optimizer="SGD")
    assert out == "opt = SGD(params, lr=0.1, weight_decay=0.05,)\n"


# --- display-only ------------------------------------------------------------------------------------


@pytest.mark.parametrize("source, needle", [
    ("opt = torch.optim.Adam(params, **kw)\n", "torch.optim.Adam("),
    ("opt = torch.optim.Adam(*args)\n", "torch.optim.Adam("),
    ("opt = torch.optim.Adam(params, 1e-3, (0.9, 0.99))\n", "torch.optim.Adam("),
    ("opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4)\n", "torch.optim.Adam("),
    ("opt = torch.optim.Adam(params, lr=1e-3, weight_decay=wd)\n", "torch.optim.Adam("),
    ("opt = torch.optim.Adam(params, lr=1e-3, decoupled_weight_decay=flag)\n", "torch.optim.Adam("),
    ("from torch.optim import *\nopt = Adam(params, lr=1e-3)\n", "Adam("),
    ("from mylib import Adam\nopt = Adam(params, lr=1e-3)\n", "Adam("),
    ("from torch.optim import Adam\nfrom mylib import AdamW\nopt = Adam(params, lr=1e-3)\n", "Adam(params"),
    ("opt = make_optimizer(params, lr=1e-3)\n", "make_optimizer("),
])
def test_display_only(source, needle):
    fix = display_only(source, needle)
    assert "weight_decay" in fix.message and "0.05" in fix.message and "by hand" in fix.message


def test_display_only_replaces_missing_fix_and_keeps_existing():
    source = "opt = torch.optim.SGD(params, lr=0.1, weight_decay=0.01)\n"
    finding = gh143_at(source, "torch.optim.SGD(", optimizer="SGD")
    [kept] = attach_weight_decay_fixes(source, [finding])
    assert kept is finding
    [given] = attach_weight_decay_fixes(source, [dataclasses.replace(finding, fix=None)])
    assert given.fix.applicability is Applicability.DISPLAY_ONLY
    assert "weight_decay=0.01" in given.fix.message and "0.05" in given.fix.message


# --- pass-through ------------------------------------------------------------------------------------


def test_other_findings_pass_through():
    source = "import torch\nopt = torch.optim.SGD(params, lr=0.1)\n"
    other = Finding(code="GH201", name="missing-gradient-clipping", severity=Severity.WARNING, message="m",
                    location=Position(2, 7), end_location=Position(2, 38))
    gh143 = gh143_at(source, "torch.optim.SGD(", optimizer="SGD")
    out = attach_weight_decay_fixes(source, [other, gh143])
    assert out[0] is other and out[1].fix.edits
    assert attach_weight_decay_fixes(source, [other])[0] is other


def test_unparsable_source_unchanged():
    source = "opt = torch.optim.SGD(params, lr=0.1)\n"
    finding = gh143_at(source, "torch.optim.SGD(", optimizer="SGD")
    for broken in ("opt = torch.optim.SGD(params, lr=0.1\n", "def f(:\n", "(" * 5000 + ")" * 5000):
        assert attach_weight_decay_fixes(broken, [finding]) == [finding]


def test_no_call_at_location_unchanged():
    source = "import torch\nopt = torch.optim.SGD(params, lr=0.1)\n"
    finding = gh143_at(source, "torch.optim.SGD(", optimizer="SGD")
    moved = dataclasses.replace(finding, location=Position(1, 1))
    assert attach_weight_decay_fixes(source, [moved])[0] is moved


def test_two_findings_share_one_import_edit():
    source = "from torch.optim import Adam\na = Adam(p, lr=1e-3)\nb = Adam(q, lr=1e-3)\n"
    findings = [gh143_at(source, "Adam(p"), gh143_at(source, "Adam(q")]
    out = attach_weight_decay_fixes(source, findings)
    assert out[0].fix.applicability is Applicability.UNSAFE
    assert out[1].fix.applicability is Applicability.DISPLAY_ONLY and not out[1].fix.edits
    patched = apply(source, out[0].fix.edits)
    [second] = attach_weight_decay_fixes(patched, [gh143_at(patched, "Adam(q")])
    final = apply(patched, second.fix.edits)
    assert final == ("from torch.optim import Adam, AdamW\na = AdamW(p, lr=1e-3, weight_decay=0.05)\n"
                     "b = AdamW(q, lr=1e-3, weight_decay=0.05)\n")


# --- property: any layout of the optimizer call patches to code that parses, once ------------------

_ARGS = ["lr=1e-3", "betas=(0.9, 0.95)", "eps=1e-8", "momentum=0.9", "weight_decay=0", "weight_decay=0.0",
         "amsgrad=True", "nesterov=True", "foreach=None", "3e-4"]


@st.composite
def optimizer_calls(draw):
    prefix = draw(st.sampled_from(["torch.optim.", "optim.", "O.", ""]))
    name = draw(st.sampled_from(["Adam", "AdamW", "SGD", "RMSprop"]))
    args = ["model.parameters()"] + draw(st.lists(st.sampled_from(_ARGS), max_size=4, unique=True))
    multiline, trailing, comment = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    if multiline:
        body = "".join(f"\n        {a}," + ("  # note" if comment and i == 0 else "") for i, a in enumerate(args))
        body = body if trailing else body.rstrip(",")
        call = f"{prefix}{name}({body}\n    )"
    else:
        call = f"{prefix}{name}({', '.join(args)}{',' if trailing else ''})"
    imports = "import torch\nfrom torch import optim\nimport torch.optim as O\nfrom torch.optim import Adam, SGD, RMSprop\n"
    return f"{imports}\n\ndef train(model):\n    opt = {call}\n    return opt\n", name


@settings(max_examples=120, deadline=None)
@given(case=optimizer_calls())
def test_any_call_layout_patches_to_parsable_idempotent_code(case):
    source, name = case
    try:
        ast.parse(source)
    except SyntaxError:  # e.g. a positional lr after keywords: not a program to fix
        return
    needle = source.split("opt = ", 1)[1].split("(", 1)[0] + "("
    [fixed] = attach_weight_decay_fixes(source, [gh143_at(source, needle, optimizer=name)])
    if not (fixed.fix and fixed.fix.edits):
        return
    patched = apply(source, fixed.fix.edits)
    ast.parse(patched)
    assert "# note" in patched or "# note" not in source
    again = patched.split("opt = ", 1)[1].split("(", 1)[0] + "("
    [second] = attach_weight_decay_fixes(patched, [gh143_at(patched, again, optimizer=name)])
    assert not (second.fix and second.fix.edits)
