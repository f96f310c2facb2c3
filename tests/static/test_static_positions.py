"""Where findings point, GH001, GH201's severity, and the fixes' edits."""
from __future__ import annotations

import pytest

from gradcheck_tool.findings import Applicability, Finding, Position, Severity
from gradcheck_tool.static import STATIC_RULES, check_source
from gradcheck_tool.static.engine import analyse


def only(findings: list[Finding], code: str) -> Finding:
    hits = [f for f in findings if f.code == code]
    assert len(hits) == 1, findings
    return hits[0]


def span(finding: Finding) -> tuple[int, int, int, int]:
    return (finding.location.row, finding.location.column,
            finding.end_location.row, finding.end_location.column)


TRAIN = """\
import torch
from torch.nn.utils import clip_grad_norm_ as clip

model = torch.nn.Linear(4, 4)
opt = torch.optim.Adam(model.parameters(), lr=0.5)
for x in loader:
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()
    clip(model.parameters(), 1.0)
"""


def test_positions_point_at_the_offending_call() -> None:
    findings = check_source(TRAIN, "train.py")
    # 1-based columns, end exclusive: `clip(model.parameters(), 1.0)` spans columns 5..34.
    assert span(only(findings, "GH202")) == (10, 5, 10, 34)
    assert only(findings, "GH202").evidence == {"clip_line": 10, "step_line": 9}
    assert span(only(findings, "GH208")) == (5, 47, 5, 50)  # the literal 0.5
    assert only(findings, "GH208").evidence["lr"] == 0.5


def test_step_position_inside_a_method() -> None:
    source = (
        "class T:\n"
        "    def fit(self, data):\n"
        "        for b in data:\n"
        "            self.opt.zero_grad()\n"
        "            self.net(b).backward()\n"
        "            self.opt.step()\n"
        "\nT.net = torch.nn.LSTM(8, 8)\n"  # what the model is: GH201 speaks from it
    )
    finding = only(check_source(source, "t.py"), "GH201")
    assert span(finding) == (6, 13, 6, 28)
    assert finding.evidence["step_line"] == 6 and finding.evidence["loop_line"] == 3


def test_positions_with_tabs_unicode_and_crlf() -> None:
    source = ("# é ünïcode\r\nfor b in data:\r\n\tloss = f(b)  # ß\r\n"
              "\tloss.backward()\r\n\topt.step()\r\n")
    finding = only(check_source(source, "t.py"), "GH205")
    assert span(finding) == (5, 2, 5, 12)


@pytest.mark.parametrize(("source", "row", "column"), [
    ("def f(:\n    pass\n", 1, 7),
    ("x = (1,\n", 1, 5),
    ("for x in y\n    opt.step()\n", 1, 11),
    ("import torch\n  x = 1\n", 2, 2),  # where CPython puts it
    ("x = " + "(" * 300 + ")" * 300 + "\n", 1, 205),
    ("x = " + "-" * 20000 + "1\n", 1, 1),
    ("a = 1\x00\n", 1, 6),
])
def test_syntax_error_is_one_gh001(source: str, row: int, column: int) -> None:
    findings = check_source(source, "broken.py")
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.code, finding.name) == ("GH001", "syntax-error")
    assert finding.severity is Severity.ERROR
    assert finding.location == Position(row, column)
    assert finding.filename == "broken.py"


CNN = """\
import torch.nn as nn
import torch.optim as optim

model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
optimizer = optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    optimizer.step()
"""


ATTENTION = """
class SelfAttention(nn.Module):
    def forward(self, q, k, v):
        return (q @ k.transpose(-2, -1)).softmax(dim=-1) @ v
"""


@pytest.mark.parametrize(("source", "severity", "reason", "risk"), [
    (CNN.replace("nn.Conv2d(1, 8, 3)", "nn.RNN(8, 8)"), Severity.WARNING, "nn.RNN", "ungated-rnn"),
    (CNN.replace("nn.Conv2d(1, 8, 3)", "nn.LSTM(8, 8)"), Severity.INFO, "nn.LSTM", "gated-rnn"),
    (CNN.replace("import torch.nn as nn\n", "from torch import nn\nimport transformers\n")
     .replace("nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))",
              "transformers.AutoModel.from_pretrained('bert-base-uncased')"),
     Severity.INFO, "fine-tunes the transformers model AutoModel", "attention"),
    (CNN.replace("lr=0.1", "lr=8.0"), Severity.WARNING, "lr=8", "high-lr"),
    (CNN + ATTENTION, Severity.INFO, "SelfAttention (line 11) computes attention", "attention"),
    ("import argparse\np = argparse.ArgumentParser()\np.add_argument('--clip', type=float)\n" + CNN,
     Severity.WARNING, "`--clip` option but never reads it", "unread-clip-option"),
])
def test_gh201_severity_follows_what_the_model_is(source: str, severity: Severity, reason: str, risk: str) -> None:
    finding = only(check_source(source, "cnn.py"), "GH201")
    assert finding.severity is severity
    assert reason in finding.evidence["severity_reason"] and finding.evidence["risk"] == risk


def test_gh201_leaves_a_model_the_source_does_not_show_to_the_probe() -> None:
    # The model is a caller's: nothing from the source alone; the probe's numbers decide.
    source = CNN.replace("model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))\n", "")
    assert "GH201" not in {f.code for f in check_source(source, "cnn.py")}
    (held,) = analyse(source, "cnn.py").undecided
    assert held.code == "GH201" and held.evidence["risk"] == "unknown"
    assert "the source does not show what kind of model" in held.evidence["severity_reason"]


@pytest.mark.parametrize("source", [
    CNN,  # a feed-forward net: nothing to say
    CNN + "\nclass GraphAttentionNet(nn.Module):\n    pass\n",  # a name is not a model
    CNN.replace("lr=0.1", "lr=8.0").replace("for x, y in loader:", "import deepspeed\nfor x, y in loader:"),
    ("import argparse\np = argparse.ArgumentParser()\np.add_argument('--clip', type=float)\n"
     "args = p.parse_args()\ntrainer = Trainer(gradient_clip_val=args.clip)\n" + CNN),
])
def test_gh201_is_silent_for_feed_forward_nets_and_engines_that_clip(source: str) -> None:
    assert "GH201" not in [f.code for f in check_source(source, "cnn.py")]


def test_schedulers_and_environments_are_not_optimizers() -> None:
    source = (
        "from torch.optim.lr_scheduler import StepLR\n"
        "sched = StepLR(opt, 10)\n"
        "for epoch in range(3):\n"
        "    for batch in loader:\n"
        "        obs, reward, done, info = env.step(policy(batch))\n"
        "        lr_scheduler.step()\n"
        "    sched.step()\n"
    )
    assert check_source(source, "rl.py") == []


def test_helper_functions_are_inlined_into_the_loop() -> None:
    source = (
        "def train_step(batch):\n"
        "    loss = model(batch)\n"
        "    loss.backward()\n"
        "    optimizer.step()\n"
        "\n"
        "for batch in loader:\n"
        "    optimizer.zero_grad()\n"
        "    train_step(batch)\n"
        "\nmodel = torch.nn.LSTM(8, 8)\n"
    )
    findings = check_source(source, "t.py")
    assert {f.code for f in findings} == {"GH201"}
    assert only(findings, "GH201").evidence["called_from_line"] == 8


def apply(source: str, finding: Finding) -> str:
    """Apply a finding's single edit, the way the fix engine will."""
    lines = source.splitlines(keepends=True)

    def offset(position: Position) -> int:
        return sum(len(line) for line in lines[: position.row - 1]) + position.column - 1

    (edit,) = finding.fix.edits
    start, end = offset(edit.location), offset(edit.end_location)
    return source[:start] + edit.content + source[end:]


@pytest.mark.parametrize(("code", "source"), [
    ("GH201", CNN.replace("nn.Conv2d(1, 8, 3)", "nn.RNN(8, 8)")),
    ("GH201", STATIC_RULES["GH201"].BAD[2]),  # AMP: unscale_ then clip
    ("GH204", STATIC_RULES["GH204"].BAD[0]),
    ("GH204", STATIC_RULES["GH204"].BAD[1]),
    ("GH205", STATIC_RULES["GH205"].BAD[0]),
    ("GH205", STATIC_RULES["GH205"].BAD[2]),
    ("GH208", STATIC_RULES["GH208"].BAD[0]),
    ("GH208", STATIC_RULES["GH208"].BAD[1]),
])
def test_unsafe_edits_remove_their_finding(code: str, source: str) -> None:
    finding = only(check_source(source, "t.py"), code)
    assert finding.fix.applicability is Applicability.UNSAFE
    fixed = apply(source, finding)
    compile(fixed, "t.py", "exec")
    after = check_source(fixed, "t.py")
    assert code not in {f.code for f in after}, fixed
    assert not {"GH202", "GH203", "GH204"} & {f.code for f in after}, fixed


def test_unscale_after_clip_is_moved_not_duplicated() -> None:
    # A second unscale_() in one iteration raises in torch: advise moving the existing one.
    finding = only(check_source(STATIC_RULES["GH204"].BAD[2], "t.py"), "GH204")
    assert finding.fix.applicability is Applicability.DISPLAY_ONLY
    assert finding.evidence["unscale_line"] == 5 and "Move" in finding.fix.message


def test_edit_is_only_offered_when_the_names_are_in_scope() -> None:
    # The optimizer was built from `model` in __init__; `model` means nothing in fit().
    finding = only(check_source(STATIC_RULES["GH201"].BAD[1], "t.py"), "GH201")
    assert finding.fix.applicability is Applicability.DISPLAY_ONLY
    assert finding.fix.edits == ()
