"""Fixes for the idioms real training code is written in, each on a realistic file: the exact
patched text, which must parse, add no undefined name and be left alone by a second run."""
import textwrap

import pytest

from gradcheck_tool.api import ScanOptions
from gradcheck_tool.findings import Severity
from gradcheck_tool.fixes import engine, safety

STATIC = ScanOptions(static_only=True)


def _fix(tmp_path, source, name="train.py"):
    path = tmp_path / name
    path.write_text(source)
    return engine.fix_file(path, STATIC, unsafe=True, level=Severity.INFO)


def _patched(source: str, after: str, *lines: str) -> str:
    """``source`` with ``lines`` inserted after the line ``after`` (matched whole, indent included)."""
    out = source.splitlines(keepends=True)
    at = out.index(after + "\n")
    return "".join(out[:at + 1] + [f"{line}\n" for line in lines] + out[at + 1:])


MANUAL = textwrap.dedent("""\
    import torch
    from torch import nn

    model = nn.LSTM(8, 8)
    lr = 0.1
    for x, y in loader:
        model.zero_grad()
        out, _ = model(x)
        loss = (out - y).pow(2).mean()
        loss.backward()
        # plain SGD, by hand
        with torch.no_grad():
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
""")
NAMED = textwrap.dedent("""\
    import torch

    w1 = torch.randn(4, 4, requires_grad=True)
    w2 = torch.randn(4, 4, requires_grad=True)
    for x in data:
        x.mm(w1).tanh().mm(w2).sum().backward()
        with torch.no_grad():
            w1 -= 0.1 * w1.grad
            w2 -= 0.1 * w2.grad
            w1.grad = None
            w2.grad = None

    encoder = torch.nn.GRU(4, 4)  # a recurrent model in the file: GH201 speaks from what the model is
""")
# The optimizer arrives as an argument: clip the model the function gets, not the __main__ global
PASSED = textwrap.dedent("""\
    import torch
    from torch import nn


    def train_iter(epoch, model, optimizer, x, y):
        model.train()
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x)[0][:, -1], y)
        loss.backward()
        optimizer.step()


    if __name__ == "__main__":
        gat_net = nn.GRU(8, 8, batch_first=True)
        optimizer = torch.optim.SGD(gat_net.parameters(), lr=0.1)
        for epoch in range(10):
            train_iter(epoch, gat_net, optimizer, x, y)
""")
# A trainer with AMP on or off: unscale_ only where the scaler exists
TRAINER = textwrap.dedent("""\
    import torch


    class Trainer:
        def __init__(self, model, use_amp):
            self.model = model
            self.use_amp = use_amp
            self.optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            if self.use_amp:
                self.scaler = torch.amp.GradScaler("cuda")

        def run_batch(self, x):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.model(x)[0].sum()
            if self.use_amp:
                self.scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()
""")
# Clipping before backward with the bare-name import and a module-level model
BARE = textwrap.dedent("""\
    import torch
    from torch.nn.utils import clip_grad_norm_

    model = torch.nn.LSTM(8, 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for batch in loader:
        optimizer.zero_grad()
        clip_grad_norm_(model.parameters(), 1.0)
        loss = model(batch)[0].sum()
        loss.backward()
        optimizer.step()
""")
ACCELERATE = textwrap.dedent("""\
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForSequenceClassification


    def main():
        accelerator = Accelerator(mixed_precision="fp16")
        model = AutoModelForSequenceClassification.from_pretrained("bert-base-cased")
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for batch in loader:
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
""")

CASES = {
    "manual update loop": (MANUAL, _patched(
        MANUAL, "    loss.backward()", "    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)")),
    "named tensors": (NAMED, _patched(
        NAMED, "    x.mm(w1).tanh().mm(w2).sum().backward()",
        "    torch.nn.utils.clip_grad_norm_([w1, w2], max_norm=1.0)")),
    "optimizer passed in": (PASSED, _patched(
        PASSED, "    loss.backward()", "    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)")),
    "trainer with AMP on and off": (TRAINER, _patched(
        TRAINER, "            self.scaler.scale(loss).backward()", "            self.scaler.unscale_(self.optimizer)")),
    "bare-name import": (BARE, BARE.replace("    clip_grad_norm_(model.parameters(), 1.0)\n", "").replace(
        "    loss.backward()\n", "    loss.backward()\n    clip_grad_norm_(model.parameters(), 1.0)\n")),
    "accelerate": (ACCELERATE, _patched(
        ACCELERATE, "        accelerator.backward(loss)",
        "        accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)")),
}


@pytest.mark.parametrize("name", CASES)
def test_idiom_is_fixed_exactly_safely_and_once(tmp_path, name):
    source, expected = CASES[name]
    result = _fix(tmp_path, source)
    assert result.fixed == expected
    compile(result.fixed, "train.py", "exec")
    assert safety.new_undefined(source, result.fixed) == set()
    assert not _fix(tmp_path, result.fixed, "again.py").changed


def test_trainer_plain_branch_gets_no_scaler(tmp_path):
    """GH204 fires on the AMP branch's clip only (issue 12): the plain branch, where no scaler
    exists, gets no finding, so no `self.scaler.unscale_` can be proposed there."""
    result = _fix(tmp_path, TRAINER)
    rows = [f.location.row for f in [*result.applied, *result.remaining] + [f for f, _ in result.rejected]
            if f.code == "GH204"]
    assert rows and all(row < 97 for row in rows)  # line 97 is the `else:` of the plain branch
    assert "self.scaler" not in "".join(result.fixed.splitlines(keepends=True)[96:])


def test_accelerate_under_deepspeed_gets_no_no_op_call(tmp_path):
    """Under DeepSpeed, accelerator.clip_grad_norm_ only reads the norm: the engine clips as its
    config says, so nothing is inserted (accelerate's sp-alst.py example) and GH201 stays silent
    (issue 12: engines that clip for you)."""
    source = ACCELERATE.replace("from accelerate import Accelerator\n",
                                "from accelerate import Accelerator\nfrom accelerate.utils import DeepSpeedPlugin\n")
    result = _fix(tmp_path, source)
    assert not result.changed
    assert not [f for f in result.remaining if f.code == "GH201"]


LIGHTNING = textwrap.dedent("""\
    import torch
    import lightning as L


    class LitRNN(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(8, 8)

        def training_step(self, batch, batch_idx):
            return self.rnn(batch)[0].sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)


    trainer = L.Trainer(
        max_epochs=3,
        accelerator="auto",
    )
    trainer.fit(LitRNN(), loader)
""")
HF = textwrap.dedent("""\
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    model = AutoModelForCausalLM.from_pretrained("gpt2")
    args = TrainingArguments("out", learning_rate=5e-5, max_grad_norm=0.0)
    Trainer(model=model, args=args, train_dataset=ds).train()
""")


@pytest.mark.parametrize("source, expected, severity", [
    (LIGHTNING, LIGHTNING.replace('    accelerator="auto",\n', '    accelerator="auto",\n    gradient_clip_val=1.0,\n'),
     Severity.WARNING),  # an ungated RNN
    (LIGHTNING.replace("L.Trainer(\n    max_epochs=3,\n    accelerator=\"auto\",\n)", "L.Trainer()"),
     LIGHTNING.replace("L.Trainer(\n    max_epochs=3,\n    accelerator=\"auto\",\n)", "L.Trainer(gradient_clip_val=1.0)"),
     Severity.WARNING),
    (HF, HF.replace("max_grad_norm=0.0", "max_grad_norm=1.0"), Severity.INFO),  # a model built elsewhere
], ids=["lightning", "lightning-no-args", "hf-trainer"])
def test_framework_trainers_get_their_own_clipping_keyword(tmp_path, source, expected, severity):
    result = _fix(tmp_path, source)
    assert result.fixed == expected and [f.code for f in result.applied] == ["GH201"]
    assert result.applied[0].severity is severity
    assert not _fix(tmp_path, result.fixed, "again.py").changed


@pytest.mark.parametrize("source", [
    LIGHTNING.replace('accelerator="auto",', 'gradient_clip_val=0.5,'),
    LIGHTNING.replace("super().__init__()", "super().__init__()\n        self.automatic_optimization = False"),
    LIGHTNING.replace('accelerator="auto",', "**config,"),
    HF.replace(", max_grad_norm=0.0", ""),  # the Trainer clips at 1.0 by default
], ids=["clip-set", "manual-optimization", "splat", "hf-default"])
def test_framework_trainers_that_clip_are_left_alone(tmp_path, source):
    result = _fix(tmp_path, source)
    assert not result.changed and not [f for f in result.remaining if f.code == "GH201"]
