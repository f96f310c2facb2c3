"""GH201: a training step with no gradient clipping anywhere near it."""
from __future__ import annotations

from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.rules.base import StaticRule, edit_or_display, example
from gradcheck_tool.fixes.clip_config import config_gaps
from gradcheck_tool.fixes.clip_fix import insertion, propose
from gradcheck_tool.static.analysis.events import Event, Iteration, Kind
from gradcheck_tool.static.analysis.names import last
from gradcheck_tool.static.analysis.risk import Risk, explosion_risk


def line_search(ctx: SourceContext, step: Event) -> bool:
    """``optimizer.step(closure)`` re-evaluates the loss and gradients inside ``step`` (an
    LBFGS line search calls the closure several times): a clip written before ``step()``
    acts on stale gradients, so clipping could only go inside the closure, and for LBFGS
    not at all (rescaled gradients corrupt the curvature pairs it builds)."""
    made = ctx.facts.constructed(step.target) or ""
    return step.closure or last(made) == "LBFGS"


class MissingGradientClipping(StaticRule):
    """What it does:
    Finds training steps (``optimizer.step()``, ``scaler.step(optimizer)``, or a hand-written
    ``p -= lr * p.grad`` update) in a loop or function that never clips gradients. Each
    loop is judged by what it and the helpers it calls run, not by other loops beside it.
    Clipping is ``clip_grad_norm_`` / ``clip_grad_value_`` under any import alias, any
    callee named like ``clip_grad`` / ``clip_gradients`` / ``clip_norm`` (timm's
    ``dispatch_clip_grad``, ``accelerator.clip_grad_norm_``, ``fabric.clip_gradients``),
    or a call configured with ``clip_grad=`` / ``max_grad_norm=`` / ``gradient_clip_val=``.
    Steps that take a closure (``optimizer.step(closure)``) and LBFGS optimizers are
    skipped: a line search re-evaluates the gradients inside ``step``. Trainers that clip
    when configured are read too: a Lightning ``Trainer`` without ``gradient_clip_val``
    (unless the module turns ``automatic_optimization`` off), and Hugging Face
    ``TrainingArguments(max_grad_norm=0)``, which turns off the Trainer's default clipping.

    Why it matters:
    One outlier batch can produce a gradient orders of magnitude above the typical one;
    unclipped, that single step can throw the weights far enough to diverge (loss -> NaN).
    How likely that is depends on what the model is, read from the layers the file builds
    and what its classes compute (never from their names):

    - a warning for an ungated ``nn.RNN``: the backward signal is multiplied by the same
      recurrent Jacobian at every time step, the exploding case clipping was made for
      (Pascanu et al., 2013); for SGD at a rate GH208 warns about (a plain-gradient step
      grows with the gradient; Adam's does not, so a high Adam rate does not count); and
      for a file that takes a ``--clip``/``--max-grad-norm`` option it never reads;
    - information for LSTM/GRU and attention models (``nn.MultiheadAttention``,
      ``scaled_dot_product_attention``, a transformers model, a class of the file that
      takes a softmax of a matrix product), which recipes clip by custom (GPT-2, BERT and
      HF Trainer's default: 1.0);
    - nothing for a feed-forward net (only Linear/Conv/norm/embedding layers, a
      torchvision or timm model, also one chosen by name: ``models.__dict__[arch]()``),
      and nothing where an engine clips inside its own step (DeepSpeed's
      ``gradient_clipping``, Megatron's ``clip_grad``, accelerate with either plugin);
    - nothing from the source alone for a loop whose model the source does not show (a
      library's, a caller's argument): the probe decides. Where ``gradhealth scan`` probes
      the file and measures gradients that need clipping (below), it is a warning.

    When the file builds no layers itself, the modules of its own project that it imports
    are read (as text, never imported): beside it (``from model import GPT``, ``from
    src.model import Translator``), in its package (``from .core import MLP``) or by the
    package's own name (``import spinup.algos.pytorch.ddpg.core as core``).

    The finding's evidence says which case it is (``risk``: ``ungated-rnn``, ``high-lr``,
    ``unread-clip-option``, ``gated-rnn``, ``attention`` or, found by a probe, ``unknown``)
    and why (``severity_reason``). With a probe (``gradhealth scan`` without
    ``--static-only``) the finding is raised a level when the measured gradient norms vary
    more than 2x between batches or explode.

    Example:
        model = nn.LSTM(64, 64)
        ...
        loss.backward()
        optimizer.step()          # GH201: no clipping in this loop

    Fix:
    Clip the global gradient norm between ``backward()`` and ``step()``:
    ``torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)``. With AMP, call
    ``scaler.unscale_(optimizer)`` first; with Accelerate, ``accelerator.clip_grad_norm_``;
    with Fabric, ``fabric.clip_gradients(model, optimizer, max_norm=1.0)`` (both unscale
    fp16 gradients themselves); Lightning: ``Trainer(gradient_clip_val=1.0)``; Hugging Face:
    ``max_grad_norm=1.0`` (its default). ``gradhealth scan`` reports a measured
    ``recommended_max_norm``; 1.0 is the common default (BERT, GPT-2).
    """

    CODE = "GH201"
    NAME = "missing-gradient-clipping"
    SEVERITY = Severity.INFO  # raised to WARNING where explosion_risk() finds a reason
    TRIGGER = r"\.step\(|\.grad\b|Trainer\(|TrainingArguments\("
    GOOD = (
        example("""
            def train(model, opt, loader):  # a caller's model: the probe decides (gradhealth scan)
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
        """),
        example("""
            import torch
            from torch.nn.utils import clip_grad_norm_ as c

            model = torch.nn.LSTM(8, 8)
            opt = torch.optim.Adam(model.parameters())
            for x in loader:
                opt.zero_grad()
                model(x)[0].sum().backward()
                c(model.parameters(), 1.0)
                opt.step()
        """),
        example("""
            from torch import nn

            class Trainer:
                def fit(self, loader):
                    for batch in loader:
                        self.optimizer.zero_grad()
                        self.model(batch).backward()
                        nn.utils.clip_grad_norm_(self.model.parameters(), 0.5)
                        self.optimizer.step()
        """),
        example("""
            import torch

            def train(model, opt, scaler, loader):
                for batch in loader:
                    scaler.scale(model(batch)).backward()
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad.clip_grad_norm_(model.parameters(), 1.0)
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad()
        """),
        example("""
            def clip(model):
                torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)

            while True:
                optimizer.zero_grad()
                loss.backward()
                clip(model)
                optimizer.step()
        """),
        example("""
            for epoch in range(10):
                scheduler.step()
            state = env.reset()
            while not done:
                state, reward, done, _ = env.step(policy(state))
        """),
        example("""
            import torch

            class MySGD(torch.optim.Optimizer):
                @torch.no_grad()
                def step(self, closure=None):
                    for group in self.param_groups:
                        for p in group['params']:
                            p.add_(p.grad, alpha=-group['lr'])
        """),
        example("""
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
        """),
        example("""
            from timm import utils

            def train_one_epoch(model, loader, optimizer, loss_scaler, args):
                for x, y in loader:
                    loss = loss_fn(model(x), y)
                    if loss_scaler is not None:
                        loss_scaler(loss, optimizer, clip_grad=args.clip_grad,
                                    parameters=model.parameters())
                    else:
                        loss.backward()
                        utils.dispatch_clip_grad(model.parameters(), value=args.clip_grad)
                        optimizer.step()
                    optimizer.zero_grad()
        """),
        example("""
            from torch import nn

            model = nn.GRU(8, 8)
            for batch in loader:
                for opt in optimizers:
                    opt.zero_grad()
                model(batch)[0].sum().backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                for opt in optimizers:
                    opt.step()
        """),
    )
    BAD = (
        example("""
            import torch
            from torch import nn, optim

            model = nn.LSTM(8, 16)
            optimizer = optim.Adam(model.parameters(), lr=1e-3)
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x)[0], y)
                loss.backward()
                optimizer.step()
        """),
        example("""
            import torch

            class Trainer:
                def __init__(self, model):
                    self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

                def fit(self, batches):
                    step = 0
                    while step < 1000:
                        loss = self.model(next(batches)).mean()
                        self.optimizer.zero_grad()
                        loss.backward()
                        self.optimizer.step()
                        step += 1

            Trainer(torch.nn.LSTM(8, 8)).fit(batches)
        """),
        example("""
            import torch
            from torch.optim import AdamW as A

            def train(model, loader):
                opt = A(model.parameters(), lr=3e-4)
                scaler = torch.cuda.amp.GradScaler()
                for batch in loader:
                    with torch.autocast('cuda'):
                        loss = model(batch)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad(set_to_none=True)

            train(torch.nn.TransformerEncoderLayer(64, 4), loader)
        """),
        example("""
            import torch

            rnn = torch.nn.RNN(28, 10)
            for xb, yb in batches:
                loss = ((rnn(xb)[0] - yb) ** 2).mean()
                loss.backward()
                with torch.no_grad():
                    for w in rnn.parameters():
                        w -= 0.1 * w.grad
                        w.grad.zero_()
        """),
        example("""
            import torch

            def train_step(model, optimizer, batch):
                optimizer.zero_grad()
                model(batch).sum().backward()
                optimizer.step()

            model = torch.nn.GRU(8, 8)
            optimizer = torch.optim.Adam(model.parameters())
            for epoch in range(10):
                for batch in loader:
                    train_step(model, optimizer, batch)
        """),
        example("""
            import torch

            net = torch.nn.LSTM(8, 8)
            for epoch in range(epochs):
                for x, y in zip(data, targets):
                    loss_fn(net(x), y).backward()
                    opt.step()
                    opt.zero_grad()

            for epoch in range(0):  # for illustration only
                for x, y in zip(data, targets):
                    scaler.scale(loss_fn(net(x), y)).backward()
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=0.1)
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad()
        """),
        example("""
            from accelerate import Accelerator
            from transformers import AutoModelForSequenceClassification
            import torch

            accelerator = Accelerator()
            model = AutoModelForSequenceClassification.from_pretrained("bert-base-cased")
            optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
            for batch in loader:
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
        """),
        example("""
            import lightning as L
            import torch

            class Tagger(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.lstm = torch.nn.LSTM(8, 8)

            L.Trainer(max_epochs=3).fit(Tagger(), loader)
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        risk: Optional[Risk] = None
        for gap in config_gaps(ctx):  # a framework's Trainer that clips only when configured
            risk = explosion_risk(ctx) if risk is None else risk
            if risk.severity is None:
                break
            yield self.finding(ctx, gap.node, f"{gap.message}; {risk.reason}",
                               fix=edit_or_display(f"{gap.advice}.", gap.edit),
                               evidence={"trainer_line": ctx.line(gap.node), "severity_reason": risk.reason,
                                         "risk": risk.kind},
                               severity=risk.severity)
        for iteration in ctx.iterations:
            # This iteration and the helpers it calls, not the rest of the function: one
            # clipping loop says nothing about the loops beside it.
            if iteration.of(Kind.CLIP):
                continue
            targets: set = set()
            # One finding per optimizer; a step written in this iteration before one
            # reached through a helper (which is reported where it is written).
            for step in sorted(iteration.of(Kind.STEP), key=lambda e: bool(e.via)):
                key = "manual update" if step.manual else step.target
                if (key and key in targets) or line_search(ctx, step):
                    continue
                targets.add(key)
                if risk is None:
                    risk = explosion_risk(ctx)
                if risk.severity is None:
                    return
                yield self._finding(ctx, iteration, step, risk)

    def _finding(self, ctx: SourceContext, it: Iteration, step: Event, risk: Risk) -> Finding:
        where = "loop" if it.is_loop else "function"
        message = (f"`{ctx.code(step.node)}` updates parameters with no gradient clipping in "
                   f"this {where}: one outlier batch can blow the weights up; {risk.reason}")
        proposal = propose(ctx, it, step)
        fix_lines = []
        if step.amp and not it.of(Kind.UNSCALE) and step.site.receiver:
            fix_lines.append(step.unscale_call())
        edit = (insertion(ctx, it, step, "\n".join([*fix_lines, proposal.call]))
                if proposal.editable else None)
        advice = (f"Clip between backward() and {'the update' if step.manual else 'step()'}: `{proposal.call}`"
                  + (", after `scaler.unscale_(optimizer)`" if step.amp else ""))
        evidence = {"step_line": ctx.line(step.node), f"{where}_line": ctx.line(it.node),
                    "severity_reason": risk.reason, "risk": risk.kind, "amp": step.amp, "manual_update": step.manual}
        if step.via:
            evidence["called_from_line"] = ctx.line(step.via[0])
        return self.finding(ctx, step.node, message, evidence=evidence,
                            fix=edit_or_display(advice, edit),
                            severity=risk.severity)
