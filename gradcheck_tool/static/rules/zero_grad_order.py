"""GH209: gradients reset between backward() and the step that should use them."""
from __future__ import annotations

from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.rules.base import StaticRule, display, example
from gradcheck_tool.static.analysis.events import Event, Iteration, Kind
from gradcheck_tool.static.analysis.names import last


def _clears(reset: Event, step: Event, ctx: SourceContext) -> bool:
    """Whether ``reset`` empties the gradients ``step`` reads: the same optimizer's
    ``zero_grad()``, or a model's (``model.zero_grad()`` clears every parameter). Another
    optimizer's ``zero_grad()`` (a GAN's discriminator) leaves this one's alone."""
    if not reset.target or reset.on_grad:
        return False  # `p.grad = None`, `p.grad.zero_()`: one tensor, not the whole optimizer
    if reset.target == step.target:
        return True
    made = ctx.facts.constructed(reset.target) or ""
    optimizer = "opt" in last(reset.target).lower() or made.startswith(("torch.optim.", "optim."))
    return not optimizer  # `model.zero_grad()`


def _cleared_step(it: Iteration, ctx: SourceContext) -> Optional[tuple[Event, Event, Event]]:
    events = it.events
    for i, step in enumerate(events):
        if step.kind is not Kind.STEP or step.manual or step.closure:
            continue
        # Walk back from the step: a reset of its gradients met before any backward()
        # means the step sees zeros.
        for earlier in reversed(events[:i]):
            if earlier.site.exclusive(step.site):
                continue
            if earlier.kind is Kind.BACKWARD:
                break
            if earlier.kind is Kind.ZERO_GRAD and _clears(earlier, step, ctx):
                backward = next((e for e in reversed(events[:events.index(earlier)])
                                 if e.kind is Kind.BACKWARD), None)
                if backward is not None:
                    return backward, earlier, step
                break
    return None


class ZeroGradBeforeStep(StaticRule):
    """What it does:
    Finds an iteration that calls ``backward()``, then ``zero_grad()`` (or
    ``model.zero_grad()``), then ``optimizer.step()`` with no ``backward()`` in between: the
    reset lands between the gradients and the step that should use them. Helpers called
    from the loop are read inline; ``if``/``else`` arms that exclude each other are not
    mixed up; another optimizer's ``zero_grad()`` (a GAN's other network) does not count.

    Why it matters:
    ``zero_grad()`` sets every ``.grad`` to zero (or None). The step then sees no gradient:
    SGD moves only by momentum and weight decay, Adam by its stale moments, and the loss
    does not fall however long it trains. No exception, no NaN: just a flat loss curve.

    Example:
        loss.backward()
        optimizer.zero_grad()     # GH209: wipes the gradients just computed
        optimizer.step()

    Fix:
    Reset before ``backward()`` (at the top of the iteration) or after ``step()``.
    """

    CODE = "GH209"
    NAME = "zero-grad-before-step"
    SEVERITY = Severity.ERROR
    TRIGGER = r"zero_grad"
    GOOD = (
        example("""
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """),
        example("""
            for i, (x, y) in enumerate(loader):
                (loss_fn(model(x), y) / 4).backward()
                if (i + 1) % 4 == 0:
                    optimizer.step()
                    optimizer.zero_grad()
        """),
        example("""
            for real in loader:
                loss_g = -disc(gen(noise())).mean()
                loss_g.backward()
                opt_d.zero_grad()
                opt_g.step()
                opt_g.zero_grad()
                loss_d = disc(real).mean()
                loss_d.backward()
                opt_d.step()
        """),
        example("""
            class Trainer:
                def step(self, loss):
                    if self.amp:
                        self.scaler.scale(loss).backward()
                        self.scaler.step(self.opt)
                        self.scaler.update()
                    else:
                        loss.backward()
                        self.opt.step()
                    self.opt.zero_grad()
        """),
    )
    BAD = (
        example("""
            from torch.optim import SGD as S

            opt = S(model.parameters(), lr=0.1)
            for x, y in loader:
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.zero_grad()
                opt.step()
        """),
        example("""
            class Trainer:
                def _reset(self):
                    self.model.zero_grad()

                def fit(self, loader):
                    for epoch in range(10):
                        for batch in loader:
                            self.model(batch).backward()
                            self._reset()
                            self.optimizer.step()
        """),
        example("""
            def train(model, opt, scaler, loader):
                for x in loader:
                    with torch.autocast("cuda"):
                        loss = model(x)
                    scaler.scale(loss).backward()
                    opt.zero_grad(set_to_none=True)
                    scaler.step(opt)
                    scaler.update()
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        for it in ctx.iterations:
            found = _cleared_step(it, ctx)
            if found is None:
                continue
            backward, reset, step = found
            yield self.finding(
                ctx, reset.node,
                f"`{ctx.code(reset.node)}` runs after `{ctx.code(backward.node)}` (line "
                f"{ctx.line(backward.node)}) and before `{ctx.code(step.node)}` (line "
                f"{ctx.line(step.node)}): the step sees zeroed gradients and nothing learns",
                evidence={"backward_line": ctx.line(backward.node), "zero_grad_line": ctx.line(reset.node),
                          "step_line": ctx.line(step.node)},
                fix=display(f"Move `{ctx.code(reset.node)}` before the backward() or after "
                            f"`{ctx.code(step.node)}`."),
            )
