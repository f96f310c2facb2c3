"""GH208: a literal learning rate far above what its optimizer tolerates; and the optimizer
constructors the probe can rebuild on the model (for GH140 and GH143)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import libcst as cst

from gradcheck_tool.findings import Finding, Position, Severity
from gradcheck_tool.static.base import (
    SourceContext,
    StaticRule,
    edit_or_display,
    example,
)
from gradcheck_tool.static.events import Kind
from gradcheck_tool.static.facts import Site
from gradcheck_tool.static.names import argument, dotted, identifiers, last, number


@dataclass(frozen=True)
class Limit:
    ceiling: float  # flagged strictly above this
    typical: str
    suggested: str  # the replacement an unsafe fix writes


# Up to 5x the ceiling is only mildly high: small models (a toy RNN, a CartPole policy, a
# two-layer GCN at Adam 0.04) are tuned there, so it is reported as information; beyond
# it, as a warning.
MILD_RATIO = 5.0
_ADAM = Limit(1e-2, "1e-4 to 3e-3", "1e-3")
LIMITS = {
    "Adam": _ADAM, "AdamW": _ADAM, "RAdam": _ADAM, "SparseAdam": _ADAM,
    "NAdam": Limit(1e-2, "1e-4 to 3e-3", "2e-3"), "Adamax": Limit(1e-2, "1e-4 to 3e-3", "2e-3"),
    "RMSprop": Limit(1e-2, "1e-4 to 1e-2", "1e-3"),
    "SGD": Limit(1.0, "1e-3 to 0.5", "0.1"), "ASGD": Limit(1.0, "1e-3 to 0.5", "0.01"),
    "Adagrad": Limit(1.0, "1e-3 to 0.1", "0.01"),
    "Adadelta": Limit(10.0, "1.0", "1.0"),
}


@dataclass(frozen=True)
class HighRate:
    node: cst.BaseExpression  # the lr argument's value
    optimizer: str
    value: float
    limit: Limit
    constant: Optional[str] = None  # `lr=LR` where `LR = 0.5` is bound once in the file
    tolerated: str = ""  # why this model or step tolerates the rate (reported as information)

    @property
    def ratio(self) -> float:
        return self.value / self.limit.ceiling

    @property
    def mild(self) -> bool:
        # 0.05 / 0.01 is 5.000000000000001: compare with a little slack.
        return bool(self.tolerated) or self.ratio <= MILD_RATIO * (1 + 1e-9)


def _constructors(ctx: SourceContext) -> Iterator[tuple[Site, str]]:
    """``torch.optim`` constructor calls, with the optimizer's class name."""
    for site in ctx.facts.calls:
        module, _, leaf = (site.name or "").rpartition(".")
        if leaf in LIMITS and (module == "optim" or module.startswith("torch.optim")):
            yield site, leaf


_LAYER = re.compile(r"(Linear|Conv\w*|RNN|LSTM|GRU|Embedding|Attention\w*|Transformer\w*)$")


def _one_layer(ctx: SourceContext, params: Optional[cst.Arg]) -> Optional[str]:
    """``Net`` when ``params`` is ``model.parameters()`` of a class of this file whose
    ``__init__`` builds a single layer: a linear model (SGC, logistic regression), convex in
    its weights, with no product of layers for a large step to compound through."""
    func = params.value.func if params is not None and isinstance(params.value, cst.Call) else None
    if not (isinstance(func, cst.Attribute) and func.attr.value == "parameters"):
        return None
    made = last(ctx.facts.constructed(dotted(func.value)) or "")
    models = [k for k in ctx.facts.classes if any("Module" in n for b in k.bases for n in identifiers(b))]
    # `model, data = Net().to(device), ...` binds no value to follow: a file's only model class is it.
    klass = next((k for k in models if k.name.value == made), models[0] if len(models) == 1 else None)
    if klass is None:
        return None
    made = klass.name.value
    init = next((f for f in ctx.facts.functions.get("__init__", ()) if ctx.facts.owner.get(f) is klass), None)
    layers = [s for s in ctx.facts.by_scope.get(init, ()) if isinstance(s.node, cst.Call)
              and _LAYER.search(last(s.name or dotted(s.node.func) or ""))]
    return made if len(layers) == 1 else None


def _clipped(ctx: SourceContext, site: Site) -> bool:
    """Whether every step of the optimizer built at ``site`` is clipped first."""
    target = ctx.facts.assigned_to.get(site.node)
    steps = [it for it in ctx.iterations for e in it.of(Kind.STEP) if target and e.target == target]
    return bool(steps) and all(it.placed_clips() for it in steps)


def high_learning_rates(ctx: SourceContext) -> Iterator[HighRate]:
    for site, leaf in _constructors(ctx):
        lr = argument(site.node, 1, "lr")
        value = number(lr.value, ctx.facts.constants) if lr is not None else None
        if value is not None and value > LIMITS[leaf].ceiling:
            constant = lr.value.value if isinstance(lr.value, cst.Name) else None
            tolerated = ""
            if leaf in ("SGD", "ASGD") and _clipped(ctx, site):
                # A clipped SGD step moves the weights by at most lr * max_norm, whatever the
                # gradient: the classic word-LM recipe runs SGD at lr 20 clipped at 0.25.
                tolerated = "every step of it is clipped, which bounds the step to lr * max_norm"
            elif _one_layer(ctx, argument(site.node, 0, "params")):
                tolerated = "the model is a single layer, convex in its weights"
            yield HighRate(lr.value, leaf, value, LIMITS[leaf], constant, tolerated)


@dataclass(frozen=True)
class OptimizerCall:
    """A ``torch.optim`` constructor whose arguments are all literals, so the probe can rebuild
    it on the model: ``Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.95))``."""

    name: str  # the torch.optim class: "Adam"
    kwargs: tuple[tuple[str, Any], ...]  # every argument after the parameters, by keyword
    start: Position  # the call's span, where a fix to the optimizer goes
    end: Position
    warmup: bool = False  # the file builds a schedule that can start below lr (warmup, LambdaLR, ...)


# Schedules that can start below the optimizer's lr; StepLR, CosineAnnealingLR and the like start at it.
_WARMUP_SCHEDULES = frozenset({"LambdaLR", "LinearLR", "OneCycleLR", "SequentialLR", "ChainedScheduler",
                               "MultiplicativeLR"})


def _warmup(ctx: SourceContext) -> bool:
    for site in ctx.facts.calls:
        name = site.name or ""
        leaf = name.rpartition(".")[2]
        if "warmup" in leaf.lower() or (leaf in _WARMUP_SCHEDULES and "lr_scheduler" in name):
            return True
    return False


def _literal(node: cst.BaseExpression, ctx: SourceContext) -> tuple[bool, Any]:
    """(True, value) for a number, bool, None, string or tuple of them; (False, None) otherwise."""
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return True, {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, cst.SimpleString):
        return True, node.evaluated_value
    if isinstance(node, cst.Tuple):
        items = [_literal(e.value, ctx) for e in node.elements if not isinstance(e, cst.StarredElement)]
        if len(items) == len(node.elements) and all(ok for ok, _ in items):
            return True, tuple(v for _, v in items)
        return False, None
    value = number(node, ctx.facts.constants)
    if value is None:
        return False, None
    is_int = isinstance(node, cst.Integer) or (isinstance(node, cst.UnaryOperation) and isinstance(node.expression, cst.Integer))
    return True, int(value) if is_int else value


def rebuildable_optimizers(ctx: SourceContext) -> Iterator[OptimizerCall]:
    """Constructors built from the parameters and literal keyword arguments (the learning rate
    may be positional).  Parameter groups (``[{"params": ..., "lr": ...}]``) are left out:
    their settings are per group."""
    warmup = None
    for site, leaf in _constructors(ctx):
        if site.in_optimizer_class:
            continue
        call = site.node
        positional = [a for a in call.args if a.keyword is None]
        if not positional or any(a.star for a in call.args) or len(positional) > 2:
            continue
        if isinstance(positional[0].value, (cst.List, cst.Dict, cst.Tuple)):
            continue
        named = [("lr", positional[1].value)] if len(positional) == 2 else []
        named += [(a.keyword.value, a.value) for a in call.args if a.keyword is not None]
        values = [(key, _literal(value, ctx)) for key, value in named]
        if not all(ok for _, (ok, _) in values):
            continue
        start, end = ctx.span(call)
        if start is None or end is None:
            continue
        warmup = _warmup(ctx) if warmup is None else warmup
        yield OptimizerCall(leaf, tuple((key, value) for key, (_, value) in values), start, end, warmup)


class HighLearningRate(StaticRule):
    """What it does:
    Finds optimizer constructors (``torch.optim.Adam``, ``optim.SGD``, ``from torch.optim
    import Adam as A``...) given a literal learning rate - as ``lr=`` or the first positional
    argument after the parameters, or a name bound once to a literal - far above what that
    optimizer tolerates: Adam/AdamW/RAdam/NAdam/Adamax/SparseAdam and RMSprop above 1e-2,
    SGD/ASGD and Adagrad above 1.0, Adadelta above 10. Up to 5x the ceiling is reported as
    information (mildly high for typical models; small ones, such as RL policies and
    two-layer GCNs, are tuned there), beyond that as a warning. Also information, at any
    rate: SGD whose every step is clipped (a clipped step moves by at most
    ``lr * max_norm``; the word-language-model recipe runs lr 20 clipped at 0.25), and a
    model of this file whose ``__init__`` builds a single layer (a linear model such as
    SGC: convex in its weights, no product of layers for a large step to compound through).

    Why it matters:
    Adaptive optimizers normalise the gradient, so each step moves every weight by about
    ``lr`` whatever the loss scale. Typical rates are 1e-4 to 3e-3 (default 1e-3); the 1e-2
    ceiling is 10x the default and ~3x the top of that range. A layer with fan-in 256 has
    weights of std ~0.06, so lr = 0.1 moves each weight by more than its own scale per
    step: an update/weight ratio ~100x past the ~1e-3 that trains well.
    Plain SGD moves by ``lr * grad``: on a quadratic with curvature L it diverges once
    ``lr > 2 / L``, and normalised losses have L of order 1 or more, so lr > 1.0 leaves no
    margin (Adagrad's accumulator only shrinks its steps further from its first one).
    Adadelta's lr is a multiplier on an already unit-scale step (default 1.0).
    Large-batch SGD recipes with warmup (Goyal et al., 2017: lr 3.2 at batch 8k) exceed
    the SGD ceiling on purpose: suppress the finding there.

    Example:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)   # GH208

    Fix:
    Start from the optimizer's usual rate (Adam: 1e-3, SGD: 0.1 with momentum) and tune
    from there; ``gradhealth scan`` runs the optimizer for a few steps and reports how fast
    it grows the weights (GH143).
    """

    CODE = "GH208"
    NAME = "high-learning-rate"
    SEVERITY = Severity.WARNING
    TRIGGER = r"\boptim\b"
    GOOD = (
        example("""
            import torch
            from torch import optim

            opt = torch.optim.Adam(model.parameters(), lr=3e-4)
            sgd = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        """),
        example("""
            from torch.optim import Adam as A

            LR = 1e-3
            opt = A(model.parameters(), LR)
        """),
        example("""
            from torch import optim

            def make(model, lr):
                return optim.AdamW(model.parameters(), lr=lr)

            ada = optim.Adadelta(model.parameters(), lr=1.0)
        """),
        example("""
            import keras

            opt = keras.optimizers.Adam(lr=0.1)
        """),
    )
    BAD = (
        example("""
            import torch

            optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        """),
        example("""
            from torch.optim import Adam as A

            opt = A(model.parameters(), 0.05)
        """),
        example("""
            import torch

            LR = 0.02  # 2x the ceiling: reported as information
            optimizer = torch.optim.Adam(rnn.parameters(), lr=LR)
        """),
        example("""
            from torch import optim

            LR = 3.0
            optimizer = optim.SGD(model.parameters(), lr=LR)
        """),
        example("""
            import torch

            class Net(torch.nn.Module):
                def configure(self):
                    self.opt = torch.optim.RMSprop(self.parameters(), lr=1e-1)
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        for rate in high_learning_rates(ctx):
            limit = rate.limit
            via = ""
            evidence = {"optimizer": rate.optimizer, "lr": rate.value, "ceiling": limit.ceiling,
                        "ratio": round(rate.ratio, 3), "typical": limit.typical}
            if rate.constant:
                line = ctx.line(ctx.facts.constant_nodes[rate.constant])
                via = f" (`{rate.constant}` = {rate.value:g}, line {line})"
                evidence.update(constant=rate.constant, constant_line=line)
            if rate.tolerated:
                message = (f"lr={rate.value:g}{via} for {rate.optimizer} is {rate.ratio:.3g}x the "
                           f"{limit.ceiling:g} ceiling (typical {limit.typical}), tolerated here: "
                           f"{rate.tolerated}")
                evidence["tolerated"] = rate.tolerated
            elif rate.mild:
                message = (f"lr={rate.value:g}{via} for {rate.optimizer} is {rate.ratio:.3g}x the "
                           f"{limit.ceiling:g} ceiling: mildly high for typical models (typical "
                           f"{limit.typical}); small models often tolerate it")
            else:
                message = (f"lr={rate.value:g}{via} for {rate.optimizer} is {rate.ratio:.3g}x "
                           f"above the {limit.ceiling:g} it tolerates (typical {limit.typical}): "
                           "early steps overshoot and can diverge")
            edit = None if rate.constant else ctx.replace(rate.node, limit.suggested)
            fix = edit_or_display(
                f"Use a learning rate in {limit.typical}, e.g. lr={limit.suggested}.", edit)
            yield self.finding(ctx, rate.node, message, evidence=evidence, fix=fix,
                               severity=Severity.INFO if rate.mild else Severity.WARNING)
