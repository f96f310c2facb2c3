"""GH201: a training step with no gradient clipping anywhere near it."""
from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.base import (
    SourceContext,
    StaticRule,
    edit_or_display,
    example,
)
from gradcheck_tool.static.events import Event, Iteration, Kind
from gradcheck_tool.static.risk import explosion_risk


def clip_call(ctx: SourceContext, step: Event) -> Optional[str]:
    """``torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)`` spelled with this
    file's imports and the parameters its optimizer was built from, when both are known."""
    imports = ctx.facts.imports
    torch, nn = imports.local_name("torch"), imports.local_name("torch.nn")
    prefix = f"{torch}.nn.utils" if torch else f"{nn}.utils" if nn else None
    built = next((s for s in ctx.facts.calls if s.node is ctx.facts.values.get(step.target)), None)
    if prefix is None or built is None or not built.node.args or built.node.args[0].keyword:
        return None
    params = ctx.code(built.node.args[0].value)
    # The expression must mean the same thing where the clip goes: `self.` always does;
    # `model.parameters()` only in the scope that built the optimizer (or a global one).
    root = params.partition(".")[0]
    visible = root == "self" or built.scope is step.site.scope or (
        isinstance(built.scope, cst.Module) and root not in _parameters(step.site.scope))
    if not params.endswith(".parameters()") or not visible:
        return None
    return f"{prefix}.clip_grad_norm_({params}, max_norm=1.0)"


def _parameters(scope: cst.CSTNode) -> set[str]:
    if not isinstance(scope, cst.FunctionDef):
        return set()
    params = scope.params
    return {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}


class MissingGradientClipping(StaticRule):
    """What it does:
    Finds training steps (``optimizer.step()``, ``scaler.step(optimizer)``, or a hand-written
    ``p -= lr * p.grad`` update) in a loop or function that never clips gradients
    (``clip_grad_norm_`` / ``clip_grad_value_``, under any import alias).

    Why it matters:
    One outlier batch can produce a gradient orders of magnitude above the typical one;
    unclipped, that single step can throw the weights far enough to diverge (loss -> NaN).
    Recurrent and attention models are the classic case (Pascanu et al., 2013), and a high
    learning rate multiplies the damage. The finding is a warning when the file builds
    RNN/LSTM/GRU/attention/transformer layers or uses a learning rate GH208 flags, and
    informational otherwise, so a small CNN is not nagged.

    Example:
        loss.backward()
        optimizer.step()          # GH201: no clipping in this loop

    Fix:
    Clip the global gradient norm between ``backward()`` and ``step()``:
    ``torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)``. With AMP, call
    ``scaler.unscale_(optimizer)`` first. ``gradhealth scan`` reports a measured
    ``recommended_max_norm``; 1.0 is the common default (BERT, GPT-2).
    """

    CODE = "GH201"
    NAME = "missing-gradient-clipping"
    SEVERITY = Severity.INFO  # raised to WARNING where explosion_risk() finds a reason
    TRIGGER = r"\.step\(|\.grad\b"
    GOOD = (
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
        """),
        example("""
            import torch

            w = (torch.randn(784, 10) / 28.0).requires_grad_()
            for xb, yb in batches:
                loss = ((xb @ w - yb) ** 2).mean()
                loss.backward()
                with torch.no_grad():
                    w -= 0.1 * w.grad
                    w.grad.zero_()
        """),
        example("""
            def train_step(model, optimizer, batch):
                optimizer.zero_grad()
                model(batch).sum().backward()
                optimizer.step()

            for epoch in range(10):
                for batch in loader:
                    train_step(model, optimizer, batch)
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        risk: Optional[str] = None
        for iteration in ctx.iterations:
            if any(e.kind is Kind.CLIP for e in iteration.events + iteration.scope_events):
                continue
            if risk is None:
                risk = explosion_risk(ctx) or ""
            targets: set = set()
            # One finding per optimizer; a step written in this iteration before one
            # reached through a helper (which is reported where it is written).
            for step in sorted(iteration.of(Kind.STEP), key=lambda e: bool(e.via)):
                key = "manual update" if step.manual else step.target
                if key and key in targets:
                    continue
                targets.add(key)
                yield self._finding(ctx, iteration, step, risk)

    def _finding(self, ctx: SourceContext, it: Iteration, step: Event, risk: str) -> Finding:
        where = "loop" if it.is_loop else "function"
        message = (f"`{ctx.code(step.node)}` updates parameters with no gradient clipping in "
                   f"this {where}: one outlier batch can blow the weights up")
        message += f"; {risk}" if risk else " (informational: no recurrent/attention layers here)"
        fix_lines = []
        if step.amp and not it.of(Kind.UNSCALE) and step.site.receiver:
            fix_lines.append(f"{step.site.receiver}.unscale_({step.target})")
        clip = None if step.manual else clip_call(ctx, step)
        edit = ctx.insert_lines(step.site, "\n".join([*fix_lines, clip])) if clip else None
        advice = (f"Clip between backward() and step(): "
                  f"`{clip or 'torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)'}`"
                  + (", after `scaler.unscale_(optimizer)`" if step.amp else ""))
        evidence = {"step_line": ctx.line(step.node), f"{where}_line": ctx.line(it.node),
                    "severity_reason": risk or None, "amp": step.amp, "manual_update": step.manual}
        if step.via:
            evidence["called_from_line"] = ctx.line(step.via[0])
        return self.finding(ctx, step.node, message, evidence=evidence,
                            fix=edit_or_display(advice, edit),
                            severity=Severity.WARNING if risk else Severity.INFO)
