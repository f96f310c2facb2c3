"""GH205: a training loop whose gradients are never reset between steps."""
from __future__ import annotations

from typing import Iterator

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.rules.base import StaticRule, edit_or_display, example
from gradcheck_tool.static.analysis.events import Event, Kind


def _accumulates(step: Event) -> bool:
    """``w = (w - lr * w.grad).detach().requires_grad_()`` builds a new leaf with no
    ``.grad``; only in-place updates keep the tensor whose gradient keeps growing."""
    node = step.node
    return not (step.manual and isinstance(node, syntax.Assign)
                and all(isinstance(t.target, syntax.Name) for t in node.targets))


def _per_context(ctx: SourceContext, step: Event, backward: Event) -> bool:
    """Distributed autograd (``dist_autograd.backward(context_id, ...)``) keeps each
    iteration's gradients in its own context, and ``DistributedOptimizer`` (which has no
    ``zero_grad``) steps on one context's gradients: nothing accumulates across iterations."""
    made = ctx.facts.constructed(step.target) or ""
    return "distributed.autograd" in (backward.site.name or "") or (
        made.endswith("DistributedOptimizer") and "distributed.optim" in made)


class MissingZeroGrad(StaticRule):
    """What it does:
    Finds loops that call ``backward()`` and step the optimizer but never reset gradients
    in the loop body: no ``optimizer.zero_grad()`` / ``model.zero_grad()`` (with or without
    ``set_to_none``), no ``p.grad = None``, no ``p.grad.zero_()``. Helpers defined in the
    same file and called from the loop count; a ``zero_grad()`` inside an ``if`` (gradient
    accumulation) counts too. Distributed autograd is exempt: ``dist_autograd.backward``
    writes each iteration's gradients into that iteration's context, and
    ``torch.distributed.optim.DistributedOptimizer`` (which has no ``zero_grad``) steps on them.

    Why it matters:
    ``backward()`` adds into ``.grad``. Without a reset, step *k* uses the sum of the
    gradients of all *k* batches so far: the effective learning rate grows linearly with
    the step count and the update direction is dominated by stale batches, so training
    diverges or wanders. A single ``zero_grad()`` before the loop runs once and does not help.

    Example:
        for x, y in loader:
            loss_fn(model(x), y).backward()
            optimizer.step()          # GH205: gradients keep accumulating

    Fix:
    Call ``optimizer.zero_grad()`` once per step - right after ``optimizer.step()`` (this
    keeps gradient accumulation intact) or at the top of the loop body.
    """

    CODE = "GH205"
    NAME = "missing-zero-grad"
    SEVERITY = Severity.WARNING
    TRIGGER = r"\.backward\("
    GOOD = (
        example("""
            from torch.optim import SGD as S

            opt = S(model.parameters(), lr=0.1)
            for x, y in loader:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
        """),
        example("""
            def train(model, optimizer, loader, accum=4):
                for i, batch in enumerate(loader):
                    (model(batch) / accum).backward()
                    if (i + 1) % accum == 0:
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
        """),
        example("""
            for batch in loader:
                model(batch).backward()
                optimizer.step()
                for p in model.parameters():
                    p.grad = None
        """),
        example("""
            class Trainer:
                def _reset(self):
                    self.optimizer.zero_grad()

                def fit(self, loader):
                    for batch in loader:
                        self._reset()
                        self.model(batch).backward()
                        self.optimizer.step()
        """),
        example("""
            opt = torch.optim.LBFGS(model.parameters())
            for epoch in range(20):
                def closure():
                    opt.zero_grad()
                    loss = model(x)
                    loss.backward()
                    return loss
                opt.step(closure)
        """),
        example("""
            for xb, yb in data:
                loss = ((xb @ w - yb) ** 2).mean()
                loss.backward()
                w = (w - 0.1 * w.grad).detach().requires_grad_()
        """),
        example("""
            import torch.distributed.autograd as dist_autograd
            from torch.distributed.optim import DistributedOptimizer as DO

            opt = DO(torch.optim.SGD, param_rrefs, lr=0.05)
            for x, y in loader:
                with dist_autograd.context() as cid:
                    loss = loss_fn(model(x), y)
                    dist_autograd.backward(cid, [loss])
                    opt.step(cid)
        """),
        example("""
            for batch in loader:
                for opt in optimizers:
                    opt.zero_grad()
                model(batch).backward()
                for opt in optimizers:
                    opt.step()
        """),
    )
    BAD = (
        example("""
            import torch

            opt = torch.optim.Adam(model.parameters())
            for x, y in loader:
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
        """),
        example("""
            def train(model, optimizer, loader):
                optimizer.zero_grad()
                for batch in loader:
                    model(batch).backward()
                    optimizer.step()
        """),
        example("""
            class Trainer:
                def fit(self, loader):
                    for batch in loader:
                        with torch.autocast('cuda'):
                            loss = self.model(batch)
                        self.scaler.scale(loss).backward()
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
        """),
        example("""
            for xb, yb in data:
                loss = ((xb @ w - yb) ** 2).mean()
                loss.backward()
                with torch.no_grad():
                    w.data -= 0.1 * w.grad
        """),
        example("""
            for epoch in range(10):
                optim.zero_grad()
                for batch in loader:
                    model(batch).backward()
                    optim.step()
        """),
        example("""
            import argparse
            from torch import optim

            opt = argparse.ArgumentParser().parse_args()
            optimizer = optim.SGD(model.parameters(), lr=0.1)
            for it in range(opt.niter):
                loss = model(next(batches)).sum()
                loss.backward()
                optimizer.step()
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        for it in ctx.iterations:
            steps = [e for e in it.of(Kind.STEP) if _accumulates(e)]
            backward = it.of(Kind.BACKWARD)
            if not it.is_loop or not steps or not backward or it.of(Kind.ZERO_GRAD):
                continue
            step = steps[0]
            if _per_context(ctx, step, backward[0]):
                continue
            outside = next((e for e in it.scope_events if e.kind is Kind.ZERO_GRAD), None)
            message = (f"This loop calls `{ctx.code(backward[0].node)}` and "
                       f"`{ctx.code(step.node)}` but never resets gradients: every backward() "
                       "adds into .grad, so each step applies the sum of all batches so far")
            evidence = {"loop_line": ctx.line(it.node), "backward_line": ctx.line(backward[0].node),
                        "step_line": ctx.line(step.node)}
            if outside is not None:
                message += (f" (`{ctx.code(outside.node)}` at line {ctx.line(outside.node)} "
                            "runs outside the loop)")
                evidence["zero_grad_outside_line"] = ctx.line(outside.node)
            reset = f"{step.target}.zero_grad()" if step.target and not step.manual else None
            edit = ctx.insert_lines(step.site, reset, after=True) if reset else None
            advice = (f"Call `{reset or 'optimizer.zero_grad()'}` once per step, right after "
                      f"`{ctx.code(step.node)}`.")
            yield self.finding(ctx, step.node, message, evidence=evidence,
                               fix=edit_or_display(advice, edit))
