"""GH211: a scheduler whose periods are counted in epochs, stepped once per batch."""
from __future__ import annotations

import re
from typing import Iterator, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.rules.base import StaticRule, display, example
from gradcheck_tool.static.analysis.events import Kind
from gradcheck_tool.static.analysis.facts import Site
from gradcheck_tool.static.analysis.names import argument, identifiers, last, number

# Schedulers whose argument is a count of step() calls: StepLR(step_size), MultiStepLR
# (milestones), ExponentialLR (a factor per call).
_PERIODS = {"StepLR": ("step_size", 1), "MultiStepLR": ("milestones", 1), "ExponentialLR": ("gamma", 1)}
# A period written in iterations: `step_size=len(loader) * 30`, `milestones=[s * iters_per_epoch ...]`.
_IN_ITERATIONS = re.compile(r"len|iter|step|batch", re.IGNORECASE)
# Beyond this many calls a literal period reads as iterations: epochs run in the tens to hundreds.
_MAX_EPOCHS = 1000


def _epoch_sized(ctx: SourceContext, site: Site, kind: str) -> Optional[str]:
    """The period's source text when it reads as epochs, else None."""
    keyword, position = _PERIODS[kind]
    arg = argument(site.node, position, keyword)
    if arg is None:
        return None
    text = ctx.code(arg.value)
    if kind == "ExponentialLR":
        gamma = number(arg.value, ctx.facts.constants)
        # gamma per call: 0.95 per batch leaves 0.95 ** 1000 ~ 5e-23 of lr after 1000 batches.
        return text if gamma is not None and gamma < 0.99 else None
    if any(_IN_ITERATIONS.search(n) for n in identifiers(arg.value)):
        return None
    values = [number(e.value, ctx.facts.constants) for e in arg.value.elements] if isinstance(
        arg.value, (syntax.List, syntax.Tuple)) else [number(arg.value, ctx.facts.constants)]
    if all(v is not None and v < _MAX_EPOCHS for v in values):
        return text
    if any("epoch" in n.lower() for n in identifiers(arg.value)):
        return text
    return None


class EpochSchedulerPerBatch(StaticRule):
    """What it does:
    Finds ``StepLR`` / ``MultiStepLR`` / ``ExponentialLR`` schedulers whose period reads as
    epochs (a literal ``step_size`` or milestones under 1000, a name mentioning ``epoch``;
    ``ExponentialLR`` with gamma < 0.99) stepped inside the batch loop: the loop that runs
    ``backward()`` inside an epoch loop (or in a function called per epoch: one named
    ``*epoch*`` or taking an ``epoch`` argument). Periods written in iterations
    (``step_size=30 * len(loader)``, names with ``iter``/``step``/``batch``) pass.

    Why it matters:
    These schedulers count ``scheduler.step()`` calls, not epochs. ``StepLR(step_size=30,
    gamma=0.1)`` stepped per batch decays the rate every 30 batches: after a 300-batch epoch
    it is 1e-10 times the initial rate and the model stops learning in its first epoch. An
    ``ExponentialLR(gamma=0.95)`` per batch is 5e-23 of the rate after 1000 batches.

    Example:
        scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
        for epoch in range(90):
            for x, y in loader:
                ...
                optimizer.step()
                scheduler.step()      # GH211: 30 batches, not 30 epochs

    Fix:
    Call ``scheduler.step()`` once per epoch, after the batch loop; or give the period in
    iterations (``step_size=30 * len(loader)``).
    """

    CODE = "GH211"
    NAME = "epoch-scheduler-per-batch"
    SEVERITY = Severity.WARNING
    TRIGGER = r"StepLR|ExponentialLR"
    GOOD = (
        example("""
            from torch.optim.lr_scheduler import StepLR

            scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
            for epoch in range(90):
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
                scheduler.step()
        """),
        example("""
            import torch

            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[30 * len(loader), 60 * len(loader)])
            for epoch in range(90):
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                    sched.step()
        """),
        example("""
            from torch.optim import lr_scheduler

            sched = lr_scheduler.StepLR(opt, step_size=10000)
            step = 0
            while step < max_steps:
                opt.zero_grad()
                model(next(batches)).backward()
                opt.step()
                sched.step()
                step += 1
        """),
    )
    BAD = (
        example("""
            from torch.optim.lr_scheduler import StepLR as S

            scheduler = S(optimizer, step_size=30, gamma=0.1)
            for epoch in range(90):
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
                    scheduler.step()
        """),
        example("""
            import torch

            class Trainer:
                def __init__(self, opt):
                    self.sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[30, 60, 80])

                def train_one_epoch(self, loader):
                    for batch in loader:
                        self.opt.zero_grad()
                        self.model(batch).backward()
                        self.opt.step()
                        self.sched.step()
        """),
        example("""
            from torch.optim import lr_scheduler

            def train(model, opt, scaler, loader, epochs):
                sched = lr_scheduler.ExponentialLR(opt, gamma=0.95)
                for epoch in range(epochs):
                    for x in loader:
                        scaler.scale(model(x)).backward()
                        scaler.step(opt)
                        scaler.update()
                        opt.zero_grad()
                        sched.step()
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        schedulers = {}
        for site in ctx.facts.calls:
            kind = last(site.name)
            target = ctx.facts.assigned_to.get(site.node)
            if kind in _PERIODS and "lr_scheduler" in (site.name or "") and target:
                period = _epoch_sized(ctx, site, kind)
                if period is not None:
                    schedulers[target] = (site, kind, period)
        if not schedulers:
            return
        for it in ctx.iterations:
            if not it.is_loop or not it.of(Kind.BACKWARD):
                continue
            scope = ctx.facts.loop_scope.get(it.node)
            for site in ctx.facts.by_scope.get(scope, ()):
                if not (site.method == "step" and site.receiver in schedulers and it.node in site.loops
                        and _per_batch(scope, site.loops.index(it.node))):
                    continue
                made, kind, period = schedulers[site.receiver]
                yield self.finding(
                    ctx, site.node,
                    f"`{ctx.code(site.node)}` runs once per batch, but {kind}'s period "
                    f"`{period}` (line {ctx.line(made.node)}) reads as epochs: the rate decays "
                    "that many batches, not epochs, apart",
                    evidence={"scheduler": kind, "period": period, "scheduler_line": ctx.line(made.node),
                              "loop_line": ctx.line(it.node)},
                    fix=display(f"Call `{ctx.code(site.node)}` once per epoch, after the batch loop, "
                                "or give the period in iterations (e.g. `30 * len(loader)`)."),
                )


def _per_batch(scope: syntax.CSTNode, depth: int) -> bool:
    """A loop inside another loop of its function (the epoch loop), or the loop of a
    function that runs once per epoch (named ``*epoch*`` or taking an ``epoch`` argument)."""
    if depth > 0:
        return True
    if isinstance(scope, syntax.FunctionDef):
        names = [scope.name.value] + [p.name.value for p in scope.params.params]
        return any("epoch" in n.lower() for n in names)
    return False
