"""GH202, GH203: clipping that runs, but at a point in the iteration where it does nothing."""
from __future__ import annotations

from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.rules.base import StaticRule, example
from gradcheck_tool.fixes.clip_move import move_or_display
from gradcheck_tool.static.analysis.events import CLIP_TRIGGER, Event, Iteration, Kind


def _between(it: Iteration, first: int, kind: Kind, last: int) -> Optional[Event]:
    return next((e for e in it.events[first + 1:last] if e.kind is kind), None)


def _after_step(it: Iteration, clip: Event) -> Optional[Event]:
    """GH202's condition: the last step before ``clip``, when no step follows it."""
    at = it.index(clip)
    before = [e for e in it.events[:at] if e.kind is Kind.STEP]
    return before[-1] if before and _between(it, at, Kind.STEP, len(it.events)) is None else None


def _before_backward(it: Iteration, clip: Event) -> Optional[tuple[Event, Event]]:
    """GH203's condition: (backward, step) following ``clip``, with no backward before it."""
    at = it.index(clip)
    if any(e.kind is Kind.BACKWARD for e in it.events[:at]):
        return None
    backward = _between(it, at, Kind.BACKWARD, len(it.events))
    step = backward and _between(it, it.index(backward), Kind.STEP, len(it.events))
    return (backward, step) if step is not None else None


def misplaced(it: Iteration, clip: Event) -> bool:
    """Whether GH202 or GH203 reports ``clip``: it has to move, and inserting anything
    around where it stands (GH204's ``unscale_``) would only make things worse."""
    return _after_step(it, clip) is not None or _before_backward(it, clip) is not None


class ClipAfterStep(StaticRule):
    """What it does:
    Finds gradient clipping that runs after the last optimizer step of an iteration.

    Why it matters:
    The step has already consumed the unclipped gradients, and the clipped ones are
    zeroed or overwritten before the next step: the clipping never affects any update,
    so the model trains exactly as if it were absent - spikes included.

    Example:
        loss.backward()
        optimizer.step()
        clip_grad_norm_(model.parameters(), 1.0)   # GH202: too late

    Fix:
    Move the clipping between ``loss.backward()`` and ``optimizer.step()``.
    """

    CODE = "GH202"
    NAME = "clip-after-step"
    SEVERITY = Severity.ERROR
    TRIGGER = CLIP_TRIGGER
    GOOD = (
        example("""
            from torch.nn.utils import clip_grad_norm_ as clip

            for batch in loader:
                opt.zero_grad()
                model(batch).backward()
                clip(model.parameters(), 1.0)
                opt.step()
        """),
        example("""
            for real, z in loader:
                opt_d.zero_grad()
                d_loss(real, z).backward()
                opt_d.step()
                opt_g.zero_grad()
                g_loss(z).backward()
                torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
                opt_g.step()
        """),
        example("""
            for batch in loader:
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
                model(batch).backward()
        """),
    )
    BAD = (
        example("""
            import torch
            from torch.nn.utils import clip_grad_norm_ as clip

            for batch in loader:
                optimizer.zero_grad()
                loss = model(batch)
                loss.backward()
                optimizer.step()
                clip(model.parameters(), max_norm=1.0)
        """),
        example("""
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
        """),
        example("""
            from torch import nn

            def update(model, opt, loss):
                loss.backward()
                opt.step()
                nn.utils.clip_grad_value_(model.parameters(), 0.1)
                opt.zero_grad()
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        for it in ctx.iterations:
            for clip in it.placed_clips():
                step = _after_step(it, clip)
                if step is None:
                    continue
                message = (f"Move `{ctx.code(clip.node)}` above `{ctx.code(step.node)}`, "
                           "after backward().")
                yield self.finding(
                    ctx, clip.node,
                    f"Clipping runs after `{ctx.code(step.node)}` (line {ctx.line(step.node)}):"
                    " that step already used the unclipped gradients",
                    evidence={"clip_line": ctx.line(clip.node),
                              "step_line": ctx.line(step.node)},
                    fix=move_or_display(ctx, it, clip, step, message),
                )


class ClipBeforeBackward(StaticRule):
    """What it does:
    Finds gradient clipping followed, in the same iteration, by ``backward()`` and then the
    optimizer step (``clip -> backward -> step``).

    Why it matters:
    The clipping acts on the gradients left over from the previous iteration (or on
    zeros); ``backward()`` then writes fresh, unclipped gradients, and those are what the
    step uses. Clipping is silently a no-op.

    Example:
        optimizer.zero_grad()
        clip_grad_norm_(model.parameters(), 1.0)   # GH203: nothing to clip yet
        loss.backward()
        optimizer.step()

    Fix:
    Move the clipping after ``loss.backward()`` (``scaler.scale(loss).backward()``), just
    before the step.
    """

    CODE = "GH203"
    NAME = "clip-before-backward"
    SEVERITY = Severity.ERROR
    TRIGGER = CLIP_TRIGGER
    GOOD = (
        example("""
            for x in loader:
                optimizer.zero_grad()
                loss_fn(model(x)).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
        """),
        example("""
            for batch in loader:
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
                model(batch).backward()
        """),
        example("""
            while True:
                for micro in range(accum):
                    scaler.scale(model(next(it))).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
        """),
    )
    BAD = (
        example("""
            import torch

            for x in loader:
                optimizer.zero_grad()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                loss = model(x)
                loss.backward()
                optimizer.step()
        """),
        example("""
            from torch.nn.utils import clip_grad_value_ as cv

            def train(model, opt, scaler, data):
                for x in data:
                    cv(model.parameters(), 0.5)
                    scaler.scale(model(x)).backward()
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad()
        """),
        example("""
            class Loop:
                def run(self):
                    while self.alive:
                        self.optimizer.zero_grad()
                        nn.utils.clip_grad_norm_(self.net.parameters(), 2.0)
                        self.net(self.batch()).backward()
                        self.optimizer.step()
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        for it in ctx.iterations:
            for clip in it.placed_clips():
                found = _before_backward(it, clip)
                if found is None:
                    continue
                backward, step = found
                message = (f"Move `{ctx.code(clip.node)}` after `{ctx.code(backward.node)}`, "
                           f"just before `{ctx.code(step.node)}`.")
                yield self.finding(
                    ctx, clip.node,
                    f"Clipping runs before `{ctx.code(backward.node)}` (line "
                    f"{ctx.line(backward.node)}): it clips stale gradients and the step uses "
                    "fresh, unclipped ones",
                    evidence={"clip_line": ctx.line(clip.node),
                              "backward_line": ctx.line(backward.node),
                              "step_line": ctx.line(step.node)},
                    fix=move_or_display(ctx, it, clip, step, message, backward),
                )
