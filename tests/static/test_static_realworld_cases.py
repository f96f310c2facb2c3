"""Synthetic reproductions of what a real-world audit (pytorch/examples, tutorials, timm,
transformers and Lightning examples) found: each false positive, false negative and
wrong fix, written small, so the static rules keep getting them right."""
from __future__ import annotations

import ast
import pytest

from gradcheck_tool.findings import Applicability, Finding, Position, Severity
from gradcheck_tool.static import check_source
from gradcheck_tool.static.analysis import syntax
from gradcheck_tool.static.analysis.convert import convert
from gradcheck_tool.static.analysis.facts import collect_facts
from gradcheck_tool.static.engine import analyse


def codes(source: str) -> list[str]:
    return [f.code for f in check_source(source, "t.py")]


def only(source: str, code: str) -> Finding:
    hits = [f for f in check_source(source, "t.py") if f.code == code]
    assert len(hits) == 1, hits
    return hits[0]


# Whether GH201 speaks depends on what the model is; a loop whose model the source does not show is
# left to the probe (tests/static/test_static_positions.py). The loop-mechanics tests below train a
# recurrent model, built after the loop so that every position stays where it is.
RECURRENT = "\nrnn = torch.nn.LSTM(8, 8)\n"


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
    source = UPDATE.format(header=header) + RECURRENT
    finding = only(source, "GH201")
    assert finding.evidence["loop_line"] == 1
    # The update runs in the training loop alone: the fan-out loop is not a loop of its own.
    module = convert(ast.parse(source), source)
    (update,) = collect_facts(module).by_kind[syntax.AugAssign]
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
    assert codes(CLIPPED.format(clip=clip) + RECURRENT) == ["GH201"]


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
    ) + RECURRENT
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

net = torch.nn.LSTM(8, 8)
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


@pytest.mark.parametrize(("imports", "extra", "optimizer", "severity", "reason"), [
    # transformers' utilities, tokenizers, collators and configs build no model: still a CNN
    ("from transformers import get_linear_schedule_with_warmup, AutoTokenizer\n"
     "from transformers.utils import check_min_version\n",
     "check_min_version('4.0')\ntok = AutoTokenizer.from_pretrained('bert-base-cased')\n"
     "sched = get_linear_schedule_with_warmup(optimizer, 0, 100)",
     "SGD(model.parameters(), lr=0.1)", None, None),
    ("from transformers import DataCollatorForLanguageModeling, AutoConfig\n",
     "collate = DataCollatorForLanguageModeling(tok)\nconfig = AutoConfig.from_pretrained('x')",
     "SGD(model.parameters(), lr=0.1)", None, None),
    ("from transformers import AutoModelForSequenceClassification\n",
     "head = AutoModelForSequenceClassification.from_pretrained('bert-base-cased')",
     "SGD(model.parameters(), lr=0.1)", Severity.INFO,
     "fine-tunes the transformers model AutoModelForSequenceClassification"),
    ("import transformers\n", "enc = transformers.BertModel(config)",
     "SGD(model.parameters(), lr=0.1)", Severity.INFO, "builds the transformers model BertModel"),
    ("from transformers import BertForSequenceClassification\n",
     "MODEL_CLASSES = {'bert': BertForSequenceClassification}",
     "SGD(model.parameters(), lr=0.1)", Severity.INFO, "BertForSequenceClassification"),
    ("", "", "Adam(model.parameters(), lr=0.1)", None, None),  # clipping cannot tame an Adam lr
    ("", "", "SGD(model.parameters(), lr=5.0)", None, None),  # only mildly high
    ("", "", "SGD(model.parameters(), lr=8.0)", Severity.WARNING, "lr=8"),
    # accelerate with a DeepSpeed or Megatron plugin hands the step to an engine that clips
    ("from accelerate import Accelerator, DeepSpeedPlugin\n", "accelerator = Accelerator(deepspeed_plugin=DeepSpeedPlugin())",
     "SGD(model.parameters(), lr=8.0)", None, None),
    ("from accelerate.utils import MegatronLMPlugin\n", "plugin = MegatronLMPlugin()",
     "SGD(model.parameters(), lr=8.0)", None, None),
])
def test_gh201_severity_reasons(imports: str, extra: str, optimizer: str, severity, reason) -> None:
    source = CNN.format(imports=imports, extra=extra, optimizer=optimizer)
    if severity is None:
        assert "GH201" not in [f.code for f in check_source(source, "t.py")]
        return
    finding = only(source, "GH201")
    assert finding.severity is severity
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
    source += RECURRENT
    finding = only(source, "GH201")
    assert finding.fix.applicability is Applicability.UNSAFE
    assert finding.fix.edits[0].content.strip() == call
    fixed = apply(source, finding)
    compile(fixed, "t.py", "exec")
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
    finding = only(source + RECURRENT, "GH201")
    assert finding.fix.applicability is Applicability.DISPLAY_ONLY
    assert advice in finding.fix.message


# --- GH208's severity ----------------------------------------------------------------------

@pytest.mark.parametrize(("optimizer", "severity"), [
    ("Adam(model.parameters(), lr=0.02)", Severity.INFO),
    ("Adam(model.parameters(), lr=0.03)", Severity.INFO),
    ("Adam(model.parameters(), lr=0.04)", Severity.INFO),  # a two-layer GCN's tuned rate
    ("Adam(model.parameters(), lr=0.05)", Severity.INFO),
    ("Adam(model.parameters(), lr=0.06)", Severity.WARNING),
    ("SGD(model.parameters(), lr=5.0)", Severity.INFO),
    ("SGD(model.parameters(), lr=5.5)", Severity.WARNING),
])
def test_gh208_is_information_up_to_five_times_the_ceiling(optimizer: str,
                                                             severity: Severity) -> None:
    finding = only(f"import torch\nopt = torch.optim.{optimizer}\n", "GH208")
    assert finding.severity is severity
    assert ("mildly high" in finding.message) is (severity is Severity.INFO)


WORD_LM = """\
import torch
from torch import nn

model = nn.LSTM(200, 200)
optimizer = torch.optim.SGD(model.parameters(), lr=20)
for x, y in batches:
    optimizer.zero_grad()
    loss_fn(model(x)[0], y).backward()
    {clip}
    optimizer.step()
"""


def test_gh208_a_clipped_sgd_step_tolerates_a_high_rate() -> None:
    clipped = only(WORD_LM.format(clip="nn.utils.clip_grad_norm_(model.parameters(), 0.25)"), "GH208")
    assert clipped.severity is Severity.INFO and "lr * max_norm" in clipped.message
    unclipped = only(WORD_LM.format(clip="pass"), "GH208")
    assert unclipped.severity is Severity.WARNING


LINEAR_MODEL = """\
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = SGConv(500, 3, K=2, cached=True)
        {more}

    def forward(self, x, edge_index):
        return self.conv1(x, edge_index).log_softmax(dim=1)

model, data = Net().to(device), data.to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=0.2, weight_decay=0.005)
"""


def test_gh208_a_single_layer_model_tolerates_a_high_adam_rate() -> None:
    one = only(LINEAR_MODEL.format(more=""), "GH208")
    assert one.severity is Severity.INFO and "single layer" in one.message
    two = only(LINEAR_MODEL.format(more="self.conv2 = SGConv(3, 3, K=2)"), "GH208")
    assert two.severity is Severity.WARNING


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


# --- issue 12: false alarms found on the real-world corpus (benchmarks/realworld.py) --------

AMP_OR_NOT = """\
import torch

class Trainer:
    def run_batch(self, x, y):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(x), y)
        if self.use_amp:
            self.scaler.scale(loss).backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
"""


def test_gh204_only_the_amp_arm_clips_scaled_gradients() -> None:
    finding = only(AMP_OR_NOT, "GH204")
    assert finding.location.row == 9  # the AMP arm's clip; the plain arm (line 14) is right


def test_gh205_distributed_autograd_keeps_gradients_per_context() -> None:
    source = (
        "import torch.distributed.autograd as dist_autograd\n"
        "from torch.distributed.optim import DistributedOptimizer\n"
        "opt = DistributedOptimizer(torch.optim.SGD, rrefs, lr=0.05)\n"
        "for x, y in batches:\n"
        "    with dist_autograd.context() as cid:\n"
        "        dist_autograd.backward(cid, [loss_fn(model(x), y)])\n"
        "        opt.step(cid)\n"
    )
    assert "GH205" not in codes(source)
    assert "GH205" in codes(source.replace("dist_autograd.backward(cid, [loss_fn(model(x), y)])",
                                           "loss_fn(model(x), y).backward()")
                            .replace("DistributedOptimizer(torch.optim.SGD, rrefs,", "torch.optim.SGD(rrefs,"))


@pytest.mark.parametrize("source", [
    # a test builds an input named like a weight; nothing trains it
    "import torch\ndef test_interp():\n    linear_weight = torch.randn(8, 48, requires_grad=True)\n"
    "    out = x @ linear_weight\n",
    # talking-heads mixing: fan-in is the head count
    "import torch\nfrom torch import nn\nclass A(nn.Module):\n    def __init__(self, heads):\n"
    "        super().__init__()\n        self.mix_weight = nn.Parameter(torch.randn(heads, heads))\n",
])
def test_gh206_fixtures_and_head_mixing_are_not_layer_weights(source: str) -> None:
    assert "GH206" not in codes(source)


def test_gh206_still_flags_an_unscaled_low_rank_factor() -> None:
    source = ("import torch\nfrom torch import nn\nclass L(nn.Module):\n    def __init__(self, r, d):\n"
              "        super().__init__()\n        self.weight_a = nn.Parameter(torch.randn(d, r))\n")
    assert codes(source) == ["GH206"]


GAN_TRAIN = """\
import torch
from models import *

generator = Generator()
optimizer_G = torch.optim.Adam(generator.parameters(), lr=2e-4)
for imgs in loader:
    optimizer_G.zero_grad()
    loss_fn(generator(imgs)).backward()
    optimizer_G.step()
"""


@pytest.mark.parametrize(("models", "severity", "reason"), [
    ("import torch.nn as nn\nclass Generator(nn.Module):\n    def __init__(self):\n"
     "        self.l1 = nn.Linear(100, 128)\n        self.c = nn.ConvTranspose2d(128, 3, 4)\n", None, None),
    ("import torch.nn as nn\nclass Generator(nn.Module):\n    def __init__(self):\n"
     "        self.rnn = nn.LSTM(100, 128)\n", Severity.INFO, "models.py next to this file builds nn.LSTM"),
    ("import torch.nn as nn\nclass TransformerNet(nn.Module):  # style transfer: convolutions only\n"
     "    def __init__(self):\n        self.c = nn.Conv2d(3, 32, 9)\n", None, None),
    ("import torch\nclass Block(torch.nn.Module):\n    def forward(self, q, k):\n"
     "        return torch.softmax(q @ k.transpose(-1, -2), -1)\n", Severity.INFO, "builds attention layers"),
])
def test_gh201_reads_the_model_from_the_module_beside_the_script(tmp_path, models, severity, reason) -> None:
    (tmp_path / "models.py").write_text(models)
    found = [f for f in check_source(GAN_TRAIN, str(tmp_path / "train.py")) if f.code == "GH201"]
    if severity is None:
        assert found == []
    else:
        (finding,) = found
        assert finding.severity is severity and reason in finding.evidence["severity_reason"]


STEP = ("    opt.zero_grad()\n    loss_fn(model(x)).backward()\n    opt.step()\n")
MLP = "from torch.nn import Linear, ReLU\nclass MLPActorCritic:\n    def __init__(self):\n        self.pi = Linear(4, 2)\n"
LSTM = "import torch.nn as nn\nclass Tagger(nn.Module):\n    def __init__(self):\n        self.rnn = nn.LSTM(8, 8)\n"


@pytest.mark.parametrize(("layout", "script", "imports", "reason"), [
    # spinningup: the package imports its own core module by its absolute name (MLPs: silent)
    ({"spinup/algos/ddpg/core.py": MLP}, "spinup/algos/ddpg/ddpg.py", "import spinup.algos.ddpg.core as core\n", None),
    # stable-baselines3: `from pkg.sub.policies import X` from inside pkg/sub
    ({"sb3/sac/policies.py": MLP}, "sb3/sac/sac.py", "from sb3.sac.policies import MLPActorCritic\n", None),
    ({"sb3/common/layers.py": LSTM}, "sb3/sac/sac.py", "from sb3.common.layers import Tagger\n",
     "../common/layers.py, which this file imports, builds nn.LSTM"),
    # relative imports, one and two levels up
    ({"pkg/core.py": LSTM}, "pkg/train.py", "from .core import Tagger\n", "core.py next to this file builds nn.LSTM"),
    ({"pkg/core.py": LSTM}, "pkg/train.py", "from . import core\n", "core.py next to this file builds nn.LSTM"),
    ({"pkg/nets/rnn.py": LSTM}, "pkg/algo/train.py", "from ..nets.rnn import (\n    Tagger,\n)\n",
     "../nets/rnn.py, which this file imports, builds nn.LSTM"),
    # a module in a folder beside the script (pytorch/examples' language_translation: src/model.py)
    ({"src/model.py": LSTM}, "main.py", "from src.model import Tagger\n", "src/model.py next to this file builds nn.LSTM"),
    # layers imported from torch.nn by name (hifi-gan: `from torch.nn import Conv1d`)
    ({"models.py": "from torch.nn import Conv1d\nclass G:\n    def __init__(self):\n        self.c = Conv1d(1, 1, 3)\n"},
     "train.py", "from models import G\n", None),
    # a module of another project is not read: what the model is stays unknown (the probe's to judge)
    ({"other/core.py": LSTM}, "pkg/train.py", "import other.core as core\n", "unknown"),
])
def test_gh201_reads_the_model_from_the_projects_own_modules(tmp_path, layout, script, imports, reason) -> None:
    for rel, text in layout.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    source = f"import torch\n{imports}\nfor x in loader:\n{STEP}"
    (tmp_path / script).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / script).write_text(source)
    analysis = analyse(source, str(tmp_path / script))
    found = [f for f in analysis.findings if f.code == "GH201"]
    if reason in (None, "unknown"):
        assert found == []
        assert [f.evidence["risk"] for f in analysis.undecided] == ([] if reason is None else ["unknown"])
    else:
        (finding,) = found
        assert finding.severity is Severity.INFO and reason in finding.evidence["severity_reason"], finding


def test_gh201_reads_a_torchvision_model_chosen_by_name() -> None:
    # pytorch/examples' ImageNet trainer: `models.__dict__[args.arch]()` is a torchvision CNN
    source = ("import torch\nimport torchvision.models as models\nmodel = models.__dict__[args.arch]()\n"
              f"opt = torch.optim.SGD(model.parameters(), lr=0.1)\nfor x in loader:\n{STEP}")
    assert codes(source) == [] and analyse(source, "t.py").undecided == ()
    unknown = analyse(source.replace("models.__dict__[args.arch]()", "registry[args.arch]()"), "t.py")
    assert [f.evidence["risk"] for f in unknown.undecided] == ["unknown"]
