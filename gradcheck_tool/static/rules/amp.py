"""GH204: clipping gradients that a GradScaler has not unscaled yet."""
from __future__ import annotations

from typing import Iterator

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.rules.base import StaticRule, display, edit_or_display, example
from gradcheck_tool.static.rules.clip_order import misplaced
from gradcheck_tool.static.analysis.events import CLIP_TRIGGER, Event, Iteration, Kind, clips_raw_grads


class ClipWithoutUnscale(StaticRule):
    """What it does:
    In an AMP loop (a ``GradScaler``: ``scaler.scale(loss).backward()``, ``scaler.step``),
    finds clipping with no ``scaler.unscale_(optimizer)`` before it in the iteration. A clip
    in the other arm of an ``if`` from every scaler call (``if use_amp: ... else: ...``)
    acts on plain gradients and is left alone.

    Why it matters:
    Until ``unscale_`` runs, ``.grad`` holds gradients multiplied by the loss scale
    (65536 by default). The norm compared with ``max_norm`` is that many times too large,
    so nearly every step is clipped hard and, once the scaler divides the scale back out,
    the update is orders of magnitude too small: training stalls while the loss looks fine.

    Example:
        scaler.scale(loss).backward()
        clip_grad_norm_(model.parameters(), 1.0)   # GH204: clips scaled gradients
        scaler.step(optimizer)

    Fix:
    Call ``scaler.unscale_(optimizer)`` right before clipping; ``scaler.step`` knows the
    gradients are already unscaled and will not unscale them twice.
    """

    CODE = "GH204"
    NAME = "clip-without-unscale"
    SEVERITY = Severity.ERROR
    TRIGGER = CLIP_TRIGGER
    GOOD = (
        example("""
            scaler = torch.cuda.amp.GradScaler()
            for x in loader:
                scaler.scale(model(x)).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad()
        """),
        example("""
            for x in loader:
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    loss = model(x)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad()
        """),
        example("""
            def step(self, loss):
                if self.use_amp:
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                    self.optimizer.step()
        """),
        example("""
            for batch in loader:
                accelerator.backward(model(batch))
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
        """),
    )
    BAD = (
        example("""
            import torch

            scaler = torch.amp.GradScaler('cuda')
            for x in loader:
                scaler.scale(model(x)).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad()
        """),
        example("""
            from torch.nn.utils import clip_grad_norm_ as cgn
            from torch.cuda.amp import GradScaler

            class Trainer:
                def __init__(self):
                    self.amp = GradScaler()

                def fit(self, data):
                    for x in data:
                        self.amp.scale(self.model(x)).backward()
                        cgn(self.model.parameters(), 1.0)
                        self.amp.step(self.optimizer)
                        self.amp.update()
                        self.optimizer.zero_grad()
        """),
        example("""
            def train(model, opt, scaler, data):
                for x in data:
                    scaler.scale(model(x)).backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    scaler.unscale_(opt)
                    scaler.step(opt)
                    scaler.update()
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        for it in ctx.iterations:
            amp = [e for e in it.events if e.amp and e.kind is not Kind.UNSCALE]
            if not amp:
                continue
            for clip in it.placed_clips():
                if not clips_raw_grads(clip):
                    continue  # accelerate/fabric clip through their own scaler
                # `if use_amp: scaler...  else: loss.backward(); clip(...)`: the plain arm
                # clips plain gradients.
                scaled = [e for e in amp if not e.site.exclusive(clip.site)]
                if not scaled or any(e.kind is Kind.UNSCALE for e in it.events[:it.index(clip)]):
                    continue
                yield self._finding(ctx, it, clip, scaled[0])

    def _finding(self, ctx: SourceContext, it: Iteration, clip: Event, amp: Event) -> Finding:
        scaler_step = it.scaler_step()
        unscale = scaler_step.unscale_call() if scaler_step else "scaler.unscale_(optimizer)"
        later = next((e for e in it.events[it.index(clip):] if e.kind is Kind.UNSCALE), None)
        evidence = {"clip_line": ctx.line(clip.node), "scaler_line": ctx.line(amp.node)}
        if misplaced(it, clip):
            # After the step, unscale_() raises; before backward(), it marks the scaler
            # unscaled and the step then uses the fresh, still-scaled gradients. GH202/GH203
            # move the clipping and add the unscale_() there.
            fix = display(f"Move the clipping between backward() and the step, with `{unscale}` "
                          "right before it.")
        elif later is not None:
            # A second unscale_() before update() raises: the existing one has to move.
            evidence["unscale_line"] = ctx.line(later.node)
            fix = display(f"Move `{ctx.code(later.node)}` (line {ctx.line(later.node)}) "
                          "above the clipping.")
        else:
            edit = ctx.insert_lines(clip.site, unscale) if scaler_step else None
            fix = edit_or_display(f"Insert `{unscale}` right before the clipping.", edit)
        return self.finding(
            ctx, clip.node,
            f"Clipping runs on gradients still multiplied by the GradScaler's loss scale "
            f"(`{ctx.code(amp.node)}`, line {ctx.line(amp.node)}): call `{unscale}` first",
            evidence=evidence, fix=fix,
        )
