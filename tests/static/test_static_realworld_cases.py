"""Synthetic reproductions of what a real-world audit (pytorch/examples, tutorials, timm,
transformers and Lightning examples) found: each false positive, false negative and
wrong fix, written small, so the static rules keep getting them right."""
from __future__ import annotations

import libcst as cst
import pytest

from gradcheck_tool.findings import Applicability, Finding, Position, Severity
from gradcheck_tool.static import check_source
from gradcheck_tool.static.facts import collect_facts


def codes(source: str) -> list[str]:
    return [f.code for f in check_source(source, "t.py")]


def only(source: str, code: str) -> Finding:
    hits = [f for f in check_source(source, "t.py") if f.code == code]
    assert len(hits) == 1, hits
    return hits[0]


def apply(source: str, finding: Finding) -> str:
    lines = source.splitlines(keepends=True)

    def offset(position: Position) -> int:
        return sum(len(line) for line in lines[: position.row - 1]) + position.column - 1

    (edit,) = finding.fix.edits
    return source[:offset(edit.location)] + edit.content + source[offset(edit.end_location):]


# --- which loops are training loops ------------------------------------------------------

LOOP = """\
import argparse
from torch import optim

opt = argparse.ArgumentParser().parse_args()
hparams = opt
optimizer = optim.SGD(model.parameters(), lr=0.1)
{header}
    loss = model(next(batches)).sum()
    loss.backward()
    optimizer.step()
"""


@pytest.mark.parametrize("header", [
    "for it in range(opt.niter):",  # dcgan's argparse namespace is called `opt`
    "for step in range(hparams.max_steps):",
    "for i in range(optimizer_steps):",
    "for i, batch in enumerate(param_loader):",
    "for i in range(cfg.grad_steps):",
])
def test_names_mentioning_opt_or_param_do_not_hide_a_training_loop(header: str) -> None:
    finding = only(LOOP.format(header=header), "GH205")
    assert finding.evidence["loop_line"] == 7


UPDATE = """\
for x, y in loader:
    loss_fn(model(x), y).backward()
    with torch.no_grad():
        {header}
            p -= 0.1 * p.grad
            p.grad = None
"""


@pytest.mark.parametrize("header", [
    "for p in model.parameters():",
    "for _, p in model.named_parameters():",
    "for p in group['params']:",
    "for p in params:",
    "for p in self.model_params:",
    "for p, g in zip(params, grads):",
    "for i, p in enumerate(model.parameters()):",
    "for p in [w1, w2]:",
])
def test_a_loop_over_parameters_is_part_of_the_iteration(header: str) -> None:
    source = UPDATE.format(header=header)
    finding = only(source, "GH201")
    assert finding.evidence["loop_line"] == 1
    # The update runs in the training loop alone: the fan-out loop is not a loop of its own.
    module = cst.parse_module(source)
    (update,) = collect_facts(module).by_kind[cst.AugAssign]
    assert update.loops == (module.body[0],)


# --- GH201 and line-search optimizers -----------------------------------------------------

LBFGS = """\
import argparse
import torch

opt = argparse.ArgumentParser().parse_args()
seq = torch.nn.LSTM(1, 51)
optimizer = torch.optim.LBFGS(seq.parameters(), lr=0.8)
for i in range(opt.steps):
    def closure():
        optimizer.zero_grad()
        loss = criterion(seq(x)[0], y)
        loss.backward()
        return loss
    optimizer.step(closure)
"""


def test_lbfgs_closure_steps_are_not_asked_to_clip() -> None:
    assert codes(LBFGS) == []
    # Any optimizer stepped through a closure: a clip before step() would be stale.
    sgd = LBFGS.replace("torch.optim.LBFGS(seq.parameters(), lr=0.8)",
                        "torch.optim.SGD(seq.parameters(), lr=0.1)")
    assert codes(sgd) == []
    assert codes(sgd.replace("optimizer.step(closure)", "optimizer.step(closure=closure)")) == []


def test_a_clip_outside_the_closure_is_still_clip_before_backward() -> None:
    clipped = LBFGS.replace("    optimizer.step(closure)",
                            "    torch.nn.utils.clip_grad_norm_(seq.parameters(), 1.0)\n"
                            "    optimizer.step(closure)")
    assert codes(clipped) == ["GH203"]


# --- what counts as clipping ---------------------------------------------------------------

CLIPPED = """\
from timm import utils

def train(model, loader, optimizer, accelerator, fabric, loss_scaler, args):
    for x, y in loader:
        loss = loss_fn(model(x), y)
        loss.backward()
        {clip}
        optimizer.step()
        optimizer.zero_grad()
"""


@pytest.mark.parametrize("clip", [
    "utils.dispatch_clip_grad(model.parameters(), value=args.clip_grad)",
    "accelerator.clip_grad_norm_(model.parameters(), 1.0)",
    "fabric.clip_gradients(model, optimizer, max_norm=1.0)",
    "clip_norm(model.parameters(), 1.0)",
    "loss_scaler(loss, optimizer, clip_grad=args.clip_grad)",
    "engine.update(loss, max_grad_norm=1.0)",
    "hooks.configure(gradient_clip_val=0.5)",
])
def test_framework_clipping_is_recognised(clip: str) -> None:
    assert codes(CLIPPED.format(clip=clip)) == []


@pytest.mark.parametrize("clip", [
    "loss_scaler(loss, optimizer, clip_grad=None)",
    "engine.update(loss, max_grad_norm=0)",
])
def test_clipping_switched_off_by_its_keyword_is_not_clipping(clip: str) -> None:
    assert codes(CLIPPED.format(clip=clip)) == ["GH201"]


def test_keyword_clipping_has_no_position_to_get_wrong() -> None:
    # The scaler call clips inside its own backward/step: nothing here is out of order.
    source = (
        "for x in loader:\n"
        "    if loss_scaler is not None:\n"
        "        loss_scaler(model(x), optimizer, clip_grad=1.0)\n"
        "    else:\n"
        "        scaler.scale(model(x)).backward()\n"
        "        scaler.step(optimizer)\n"
        "        scaler.update()\n"
        "    optimizer.zero_grad()\n"
    )
    assert codes(source) == []


def test_a_clipping_helper_is_judged_by_its_body() -> None:
    source = (
        "class T:\n"
        "    def clip_gradients(self):\n"
        "        pass\n"
        "\n"
        "    def fit(self, loader):\n"
        "        for b in loader:\n"
        "            self.model(b).backward()\n"
        "            self.clip_gradients()\n"
        "            self.opt.step()\n"
        "            self.opt.zero_grad()\n"
    )
    assert codes(source) == ["GH201"]


THREE_LOOPS = """\
import torch

for epoch in range(epochs):
    for x, y in zip(data, targets):
        loss_fn(net(x), y).backward()
        opt.step()
        opt.zero_grad()

for epoch in range(epochs):
    for x, y in zip(data, targets):
        scaler.scale(loss_fn(net(x), y)).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()

for epoch in range(0):
    for x, y in zip(data, targets):
        scaler.scale(loss_fn(net(x), y)).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=0.1)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
"""


def test_one_clipping_loop_does_not_excuse_the_others() -> None:
    found = [f for f in check_source(THREE_LOOPS, "t.py") if f.code == "GH201"]
    assert [f.location.row for f in found] == [6, 12]


# --- GH201's severity ----------------------------------------------------------------------

CNN = """\
import torch.nn as nn
import torch.optim as optim
{imports}
model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
{extra}
optimizer = optim.{optimizer}
for x, y in loader:
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    optimizer.step()
"""


@pytest.mark.parametrize(("imports", "extra", "optimizer", "reason"), [
    ("from transformers import get_linear_schedule_with_warmup, AutoTokenizer\n"
     "from transformers.utils import check_min_version\n",
     "check_min_version('4.0')\ntok = AutoTokenizer.from_pretrained('bert-base-cased')\n"
     "sched = get_linear_schedule_with_warmup(optimizer, 0, 100)",
     "SGD(model.parameters(), lr=0.1)", None),
    ("from transformers import DataCollatorForLanguageModeling, AutoConfig\n",
     "collate = DataCollatorForLanguageModeling(tok)\nconfig = AutoConfig.from_pretrained('x')",
     "SGD(model.parameters(), lr=0.1)", None),
    ("from transformers import AutoModelForSequenceClassification\n",
     "head = AutoModelForSequenceClassification.from_pretrained('bert-base-cased')",
     "SGD(model.parameters(), lr=0.1)",
     "`AutoModelForSequenceClassification.from_pretrained(...)`"),
    ("import transformers\n", "enc = transformers.BertModel(config)",
     "SGD(model.parameters(), lr=0.1)", "`transformers.BertModel(...)`"),
    ("from transformers import BertForSequenceClassification\n",
     "MODEL_CLASSES = {'bert': BertForSequenceClassification}",
     "SGD(model.parameters(), lr=0.1)", "BertForSequenceClassification"),
    ("", "", "Adam(model.parameters(), lr=0.1)", None),  # clipping cannot tame an Adam lr
    ("", "", "SGD(model.parameters(), lr=2.0)", None),  # only mildly high
    ("", "", "SGD(model.parameters(), lr=5.0)", "lr=5"),
])
def test_gh201_severity_reasons(imports: str, extra: str, optimizer: str, reason) -> None:
    finding = only(CNN.format(imports=imports, extra=extra, optimizer=optimizer), "GH201")
    if reason is None:
        assert finding.severity is Severity.INFO, finding.evidence
        assert finding.evidence["severity_reason"] is None
    else:
        assert finding.severity is Severity.WARNING
        assert reason in finding.evidence["severity_reason"]


# --- GH201's fix ---------------------------------------------------------------------------

ACCELERATE = """\
import torch
from accelerate import Accelerator

accelerator = Accelerator()
model = Net()
optimizer = torch.optim.AdamW({params}, lr=2e-5)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
for batch in loader:
    loss = model(batch)
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
"""

FABRIC = """\
import torch
import lightning as L

def main():
    fabric = L.Fabric()
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = fabric.setup(model, optimizer)
    for x in loader:
        fabric.backward(model(x))
        optimizer.step()
        optimizer.zero_grad()
"""


@pytest.mark.parametrize(("source", "call"), [
    (ACCELERATE.format(params="model.parameters()"),
     "accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)"),
    (FABRIC, "fabric.clip_gradients(model, optimizer, max_norm=1.0)"),
])
def test_framework_backward_gets_the_frameworks_clipping(source: str, call: str) -> None:
    finding = only(source, "GH201")
    assert finding.fix.applicability is Applicability.UNSAFE
    assert finding.fix.edits[0].content.strip() == call
    fixed = apply(source, finding)
    cst.parse_module(fixed)
    assert not {"GH201", "GH202", "GH203", "GH204"} & set(codes(fixed)), fixed


@pytest.mark.parametrize(("source", "advice"), [
    # grouped parameters cannot be clipped as written; `model` is bound right there
    (ACCELERATE.format(params="grouped_parameters"),
     "`accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)`"),
    # (hand-written updates of `fc.parameters()` or named tensors are edits now: tests/test_fix_idioms.py)
    ("import torch\nfor x, y in data:\n    loss_fn(net(x), y).backward()\n"
     "    for p in trainable(net):\n        p.data.add_(-0.1 * p.grad)\n        p.grad = None\n",
     "`torch.nn.utils.clip_grad_norm_(<model>.parameters(), max_norm=1.0)`"),
    # a trainer whose optimizer came in through __init__, next to self.model
    ("import torch\nclass Trainer:\n    def __init__(self, model, optimizer):\n"
     "        self.model = model\n        self.optimizer = optimizer\n"
     "    def fit(self, loader):\n        for b in loader:\n"
     "            self.optimizer.zero_grad()\n            self.model(b).backward()\n"
     "            self.optimizer.step()\n",
     "`torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=1.0)`"),
])
def test_advice_names_only_what_exists(source: str, advice: str) -> None:
    finding = only(source, "GH201")
    assert finding.fix.applicability is Applicability.DISPLAY_ONLY
    assert advice in finding.fix.message


# --- GH208's severity ----------------------------------------------------------------------

@pytest.mark.parametrize(("optimizer", "severity"), [
    ("Adam(model.parameters(), lr=0.02)", Severity.INFO),
    ("Adam(model.parameters(), lr=0.03)", Severity.INFO),
    ("Adam(model.parameters(), lr=0.05)", Severity.WARNING),
    ("SGD(model.parameters(), lr=3.0)", Severity.INFO),
    ("SGD(model.parameters(), lr=3.5)", Severity.WARNING),
])
def test_gh208_is_information_up_to_three_times_the_ceiling(optimizer: str,
                                                             severity: Severity) -> None:
    finding = only(f"import torch\nopt = torch.optim.{optimizer}\n", "GH208")
    assert finding.severity is severity
    assert ("mildly high" in finding.message) is (severity is Severity.INFO)


# --- GH207 through a name -------------------------------------------------------------------

def test_activation_bound_inside_the_function_counts() -> None:
    source = (
        "import torch.nn.functional as F\n"
        "def forward(self, x):\n"
        "    act = F.sigmoid\n"
        "    for layer in self.layers:\n"
        "        x = act(layer(x))\n"
        "    x = act(self.a(x))\n    x = act(self.b(x))\n    x = act(self.c(x))\n"
        "    return act(self.d(x))\n"
    )
    assert only(source, "GH207").evidence["depth"] == 5
