"""GH202 / GH203 move a misplaced clipping call: exact output, parse, no finding left, idempotence."""
import ast
import subprocess
import sys
import textwrap

import pytest

from gradcheck_tool.findings import Applicability
from gradcheck_tool.fixes.edits import apply
from gradcheck_tool.static.engine import check_source

CLIP_CODES = {"GH202", "GH203", "GH204"}


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _only(source: str, code: str):
    found = [f for f in check_source(source, "t.py") if f.code == code]
    assert len(found) == 1, found
    return found[0]


def _move(source: str, code: str) -> str:
    finding = _only(source, code)
    assert finding.fix.applicability is Applicability.UNSAFE and finding.fix.edits
    return apply(source, finding.fix.edits)


FUNCTION_LOOP = (_src("""
    import torch


    def train(model, opt, loader):
        for x in loader:
            opt.zero_grad()
            loss = model(x)
            loss.backward()
            opt.step()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
"""), _src("""
    import torch


    def train(model, opt, loader):
        for x in loader:
            opt.zero_grad()
            loss = model(x)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
"""))

METHOD_LOOP = (_src("""
    from torch import nn


    class Trainer:
        def fit(self, loader):
            for batch in loader:
                self.optimizer.zero_grad()
                nn.utils.clip_grad_norm_(self.model.parameters(), 2.0)
                loss = self.model(batch)
                loss.backward()  # fresh gradients
                self.log(loss)
                self.optimizer.step()
"""), _src("""
    from torch import nn


    class Trainer:
        def fit(self, loader):
            for batch in loader:
                self.optimizer.zero_grad()
                loss = self.model(batch)
                loss.backward()  # fresh gradients
                nn.utils.clip_grad_norm_(self.model.parameters(), 2.0)
                self.log(loss)
                self.optimizer.step()
"""))

AMP_WITH_UNSCALE = (_src("""
    import torch


    class Trainer:
        def fit(self, loader):
            for batch in loader:
                self.scaler.scale(self.model(batch)).backward()
                self.scaler.unscale_(self.opt)
                self.scaler.step(self.opt)
                self.scaler.update()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.opt.zero_grad()
"""), _src("""
    import torch


    class Trainer:
        def fit(self, loader):
            for batch in loader:
                self.scaler.scale(self.model(batch)).backward()
                self.scaler.unscale_(self.opt)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.scaler.step(self.opt)
                self.scaler.update()
                self.opt.zero_grad()
"""))

AMP_WITHOUT_UNSCALE = (_src("""
    import torch

    scaler = torch.cuda.amp.GradScaler()
    for x in loader:
        scaler.scale(model(x)).backward()
        scaler.step(opt)
        scaler.update()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.zero_grad()
"""), _src("""
    import torch

    scaler = torch.cuda.amp.GradScaler()
    for x in loader:
        scaler.scale(model(x)).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
"""))

# GH203 under AMP with no unscale_: the clip lands after backward, behind a new unscale_.
AMP_BEFORE_BACKWARD = (_src("""
    from torch.nn.utils import clip_grad_value_ as cv


    def train(model, opt, scaler, data):
        for x in data:
            cv(model.parameters(), 0.5)
            scaler.scale(model(x)).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
"""), _src("""
    from torch.nn.utils import clip_grad_value_ as cv


    def train(model, opt, scaler, data):
        for x in data:
            scaler.scale(model(x)).backward()
            scaler.unscale_(opt)
            cv(model.parameters(), 0.5)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
"""))

# GH203 under AMP with an unscale_ after backward: the clip goes after that unscale_.
AMP_BEFORE_BACKWARD_UNSCALED = (_src("""
    import torch


    def train(model, opt, scaler, data):
        for x in data:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.scale(model(x)).backward()
            scaler.unscale_(opt)
            scaler.step(opt)
            scaler.update()
"""), _src("""
    import torch


    def train(model, opt, scaler, data):
        for x in data:
            scaler.scale(model(x)).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
"""))

NESTED_LOOPS = (_src("""
    import torch


    def train(model, opt, loader, epochs):
        for epoch in range(epochs):
            for i, (x, y) in enumerate(loader):
                loss = (model(x) - y).pow(2).mean()
                loss.backward()
                if (i + 1) % 4 == 0:
                    opt.step()
                    opt.zero_grad()
                torch.nn.utils.clip_grad_norm_(
                    model.parameters(),
                    max_norm=1.0,
                )
"""), _src("""
    import torch


    def train(model, opt, loader, epochs):
        for epoch in range(epochs):
            for i, (x, y) in enumerate(loader):
                loss = (model(x) - y).pow(2).mean()
                loss.backward()
                if (i + 1) % 4 == 0:
                    torch.nn.utils.clip_grad_norm_(
                        model.parameters(),
                        max_norm=1.0,
                    )
                    opt.step()
                    opt.zero_grad()
"""))

TRAILING_COMMENT = (_src("""
    import torch


    def train(model, optimizer, loader):
        for x in loader:
            optimizer.zero_grad()
            # clip before the update
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # spikes at step 3k
            model(x).backward()
            # the update
            optimizer.step()
"""), _src("""
    import torch


    def train(model, optimizer, loader):
        for x in loader:
            optimizer.zero_grad()
            model(x).backward()
            # clip before the update
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # spikes at step 3k
            # the update
            optimizer.step()
"""))

# The clip is the file's last line, with no line break: neither is the moved file's.
ALIASED = (_src("""
    import torch
    from torch.nn.utils import clip_grad_norm_ as clip

    for batch in loader:
        optimizer.zero_grad()
        loss = model(batch)
        loss.backward()
        optimizer.step()
        clip(model.parameters(), max_norm=1.0)
""").rstrip("\n"), _src("""
    import torch
    from torch.nn.utils import clip_grad_norm_ as clip

    for batch in loader:
        optimizer.zero_grad()
        loss = model(batch)
        loss.backward()
        clip(model.parameters(), max_norm=1.0)
        optimizer.step()
""").rstrip("\n"))

# GH203 with backward() in an accumulation loop: the clip cannot go into that loop, so it
# goes right before the step.
ACCUMULATION = (_src("""
    import torch


    def train(model, opt, loader):
        for batch in loader:
            opt.zero_grad()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            for micro in batch.chunk(4):
                model(micro).backward()
            opt.step()
"""), _src("""
    import torch


    def train(model, opt, loader):
        for batch in loader:
            opt.zero_grad()
            for micro in batch.chunk(4):
                model(micro).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
"""))

CASES = {
    "function-loop": ("GH202", *FUNCTION_LOOP),
    "method-loop": ("GH203", *METHOD_LOOP),
    "amp-with-unscale": ("GH202", *AMP_WITH_UNSCALE),
    "amp-without-unscale": ("GH202", *AMP_WITHOUT_UNSCALE),
    "amp-before-backward": ("GH203", *AMP_BEFORE_BACKWARD),
    "amp-before-backward-unscaled": ("GH203", *AMP_BEFORE_BACKWARD_UNSCALED),
    "nested-loops": ("GH202", *NESTED_LOOPS),
    "trailing-comment": ("GH203", *TRAILING_COMMENT),
    "aliased-last-line": ("GH202", *ALIASED),
    "accumulation": ("GH203", *ACCUMULATION),
}


@pytest.mark.parametrize(("code", "source", "expected"), CASES.values(), ids=list(CASES))
def test_move_exact_output(code: str, source: str, expected: str) -> None:
    fixed = _move(source, code)
    assert fixed == expected
    ast.parse(fixed)
    assert not CLIP_CODES & {f.code for f in check_source(fixed, "t.py")}, fixed
    # Idempotent: nothing left to move, so no clipping edit at all.
    assert not [f for f in check_source(fixed, "t.py") if f.code in CLIP_CODES and f.fix.edits]


@pytest.mark.parametrize(("code", "source", "expected"), CASES.values(), ids=list(CASES))
def test_move_keeps_crlf(code: str, source: str, expected: str) -> None:
    crlf = source.replace("\n", "\r\n")
    assert _move(crlf, code) == expected.replace("\n", "\r\n")


def test_gh204_leaves_a_misplaced_clip_to_the_move() -> None:
    # Inserting unscale_() after the step raises in torch; the move inserts it instead.
    source = AMP_WITHOUT_UNSCALE[0]
    assert _only(source, "GH204").fix.applicability is Applicability.DISPLAY_ONLY
    assert _move(source, "GH202").count("unscale_") == 1


@pytest.mark.parametrize("source", [
    # the clip is conditional: not a statement of the step's block
    """
    for x in loader:
        model(x).backward()
        opt.step()
        if cfg.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
    """,
    # max_norm is computed after the step: moving the clip above it would read it early
    """
    for x in loader:
        model(x).backward()
        opt.step()
        max_norm = schedule(x)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    """,
    # two statements on one line
    """
    for x in loader:
        model(x).backward()
        opt.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); log(x)
    """,
    # the step runs in an inner loop: moving the clip into it changes how often it runs
    """
    for x in loader:
        model(x).backward()
        for opt in optimizers:
            opt.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    """,
    # the clip is in a helper: it is moved where it is written, not where it is called
    """
    def clip_all(model):
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)

    for x in loader:
        model(x).backward()
        opt.step()
        clip_all(model)
    """,
    # AMP with an unscale_ after the step: a second unscale_ before update() raises
    """
    for x in loader:
        scaler.scale(model(x)).backward()
        scaler.step(opt)
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.update()
    """,
])
def test_no_move_where_it_is_not_a_plain_move(source: str) -> None:
    source = "import torch\n\n" + _src(source)
    findings = [f for f in check_source(source, "t.py") if f.code in ("GH202", "GH203")]
    assert findings
    for finding in findings:
        assert finding.fix.applicability is Applicability.DISPLAY_ONLY and not finding.fix.edits
        assert "Move" in finding.fix.message


def test_cli_fix_moves_the_clip(tmp_path) -> None:
    path = tmp_path / "train.py"
    path.write_text(AMP_WITHOUT_UNSCALE[0])
    command = [sys.executable, "-m", "gradcheck_tool", "fix", str(path),
               "--static-only", "--unsafe-fixes"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert path.read_text() == AMP_WITHOUT_UNSCALE[1]
