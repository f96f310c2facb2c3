"""GH210: gradient accumulation over k backward() calls whose loss is never divided by k."""
from __future__ import annotations

from typing import Iterator, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.rules.base import StaticRule, display, example
from gradcheck_tool.static.analysis.events import Event, Kind
from gradcheck_tool.static.analysis.names import dotted, subtree

_AVERAGES = frozenset({"mean", "div", "div_", "true_divide"})
_STACKS = frozenset({"stack", "cat", "tensor"})


def _every_kth(event: Event) -> bool:
    """``if (i + 1) % k == 0: optimizer.step()`` (or a helper called there): the event runs
    on every k-th iteration only."""
    return any(isinstance(n, syntax.BinaryOperation) and isinstance(n.operator, syntax.Modulo)
               for node, arm in event.branches if arm for n in subtree(node.test))


def _divides(node: syntax.CSTNode) -> bool:
    """``loss / k``, ``loss * (1 / k)``, ``loss.div(k)``, ``torch.stack(losses).mean()``."""
    for n in subtree(node):
        if isinstance(n, syntax.BinaryOperation) and isinstance(n.operator, (syntax.Divide, syntax.FloorDivide)):
            return True
        if isinstance(n, syntax.Call) and isinstance(n.func, syntax.Attribute) and n.func.attr.value in _AVERAGES:
            if n.func.attr.value != "mean":
                return True
            inner = n.func.value  # a mean over collected micro-batch losses
            if isinstance(inner, syntax.Call) and (dotted(inner.func) or "").rpartition(".")[2] in _STACKS:
                return True
    return False


def _loss_of(backward: Event) -> syntax.BaseExpression:
    """What ``backward`` differentiates: ``loss`` in ``loss.backward()``,
    ``scaler.scale(loss).backward()`` and ``accelerator.backward(loss)``."""
    node = backward.node
    receiver = node.func.value
    if isinstance(receiver, syntax.Call) and isinstance(receiver.func, syntax.Attribute) \
            and receiver.func.attr.value == "scale" and receiver.args:
        return receiver.args[0].value
    positional = [a for a in node.args if a.keyword is None]
    if positional and "loss" not in (dotted(receiver) or "loss"):
        return positional[0].value  # a framework's backward(loss): accelerator, fabric
    return receiver


def _accelerate_divides(ctx: SourceContext) -> bool:
    """``Accelerator(gradient_accumulation_steps=k)``: its ``backward`` divides by k."""
    return any((s.name or "").startswith("accelerate") and any(
        a.keyword is not None and a.keyword.value == "gradient_accumulation_steps" for a in s.node.args)
        for s in ctx.facts.calls)


def _undivided(ctx: SourceContext, backward: Event) -> Optional[str]:
    """The loss's name when no expression that builds it in this scope divides it."""
    if backward.site.receiver and "accelerator" in backward.site.receiver.lower() and _accelerate_divides(ctx):
        return None
    loss = _loss_of(backward)
    if _divides(loss):
        return None
    name = dotted(loss)
    if name is None:
        return None  # `model(x).sum().backward()` undivided, but also not read
    names = {name, name.partition(".")[0]}  # `out.loss.backward()`: how `out` was built
    built = [s for s in ctx.facts.by_scope.get(backward.site.scope, ())
             if isinstance(s.node, (syntax.Assign, syntax.AugAssign, syntax.AnnAssign))
             and names & _targets(s.node)]
    if not built:
        return None  # a parameter or a helper's result: how it is scaled is not in sight
    for site in built:
        node = site.node
        if isinstance(node, syntax.AugAssign):
            if isinstance(node.operator, (syntax.DivideAssign, syntax.MultiplyAssign)):
                return None
        elif node.value is not None and _divides(node.value):
            return None
    return name


def _targets(node: syntax.CSTNode) -> set[str]:
    if isinstance(node, syntax.Assign):
        return {dotted(t.target) or "" for t in node.targets}
    return {dotted(node.target) or ""}


class AccumulationWithoutAveraging(StaticRule):
    """What it does:
    Finds gradient accumulation - ``backward()`` on every iteration and the optimizer step
    only on every k-th (``if (i + 1) % k == 0: optimizer.step()``) - whose loss is never
    divided by k: no ``loss / k``, ``loss * (1 / k)``, ``loss /= k``, ``loss.div(k)`` or
    mean over collected micro-batch losses anywhere the loss is built in that function.
    Also through ``scaler.scale(loss).backward()`` (AMP) and ``accelerator.backward(loss)``
    (which divides only when the ``Accelerator`` was built with
    ``gradient_accumulation_steps=k``); ``with accelerator.accumulate(model):`` scales for
    you and has no ``% k`` step.

    Why it matters:
    ``backward()`` adds into ``.grad``: after k micro-batches the gradient is the *sum* of
    k batch gradients, k times the gradient of their mean. The step is then k times larger
    than the learning rate says (SGD), and clipping thresholds and weight decay are off by
    the same factor; the run behaves as if lr were multiplied by k and may diverge.

    Example:
        loss.backward()
        if (i + 1) % accum_steps == 0:     # GH210: loss was never divided by accum_steps
            optimizer.step()
            optimizer.zero_grad()

    Fix:
    Divide the loss before ``backward()``: ``(loss / accum_steps).backward()``.
    """

    CODE = "GH210"
    NAME = "accumulation-without-averaging"
    SEVERITY = Severity.WARNING
    TRIGGER = r"(?s)\A(?=.*backward\()(?=.*%)"  # a backward() call and a `% k`, anywhere
    GOOD = (
        example("""
            for i, (x, y) in enumerate(loader):
                loss = loss_fn(model(x), y) / accum
                loss.backward()
                if (i + 1) % accum == 0:
                    optimizer.step()
                    optimizer.zero_grad()
        """),
        example("""
            for i, (x, y) in enumerate(loader):
                loss = loss_fn(model(x), y)
                loss = loss * (1 / accum)
                scaler.scale(loss).backward()
                if i % accum == accum - 1:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
        """),
        example("""
            for step, batch in enumerate(loader):
                with accelerator.accumulate(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    optimizer.step()
                    optimizer.zero_grad()
        """),
        example("""
            class Trainer:
                def fit(self, loader):
                    for i, batch in enumerate(loader):
                        losses = [self.loss(m) for m in batch.chunks()]
                        loss = torch.stack(losses).mean()
                        loss.backward()
                        if i % self.accum == 0:
                            self.opt.step()
                            self.opt.zero_grad()
        """),
    )
    BAD = (
        example("""
            for i, (x, y) in enumerate(loader):
                loss = loss_fn(model(x), y)
                loss.backward()
                if (i + 1) % accum_steps == 0:
                    optimizer.step()
                    optimizer.zero_grad()
        """),
        example("""
            from torch.cuda.amp import GradScaler as GS

            scaler = GS()
            for epoch in range(epochs):
                for it, batch in enumerate(loader):
                    with torch.autocast("cuda"):
                        loss = model(batch).loss
                    scaler.scale(loss).backward()
                    if it % 8 == 7:
                        scaler.step(opt)
                        scaler.update()
                        opt.zero_grad()
        """),
        example("""
            class Trainer:
                def _update(self):
                    self.optimizer.step()
                    self.optimizer.zero_grad()

                def fit(self, loader):
                    for i, batch in enumerate(loader):
                        out = self.model(batch)
                        out.loss.backward()
                        if i % self.grad_accum == 0:
                            self._update()
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        for it in ctx.iterations:
            if not it.is_loop:
                continue
            steps = [e for e in it.of(Kind.STEP) if not e.manual and _every_kth(e)]
            backward = [e for e in it.of(Kind.BACKWARD) if not e.via]
            if not steps or not backward or any(_every_kth(b) for b in backward):
                continue
            name = _undivided(ctx, backward[0])
            if name is None:
                continue
            step = steps[0]
            yield self.finding(
                ctx, backward[0].node,
                f"`{ctx.code(backward[0].node)}` runs every iteration but `{ctx.code(step.node)}` "
                f"only every k-th (line {ctx.line(step.node)}), and `{name}` is never divided by k: "
                "the accumulated gradient is k times the mean, as if lr were k times larger",
                evidence={"backward_line": ctx.line(backward[0].node), "step_line": ctx.line(step.node),
                          "loss": name},
                fix=display(f"Divide the loss by the number of accumulated batches before backward(): "
                            f"`({name} / accum_steps).backward()`."),
            )

