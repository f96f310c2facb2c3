"""Optimizer constructors: literal learning rates against what each optimizer tolerates (read by
GH208 and GH201's risk), and the constructors the probe can rebuild on the model (GH140, GH143)."""
from __future__ import annotations

import re
from typing import Any, Iterator, NamedTuple, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Position
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.analysis.events import Kind
from gradcheck_tool.static.analysis.facts import Site
from gradcheck_tool.static.analysis.names import argument, dotted, identifiers, last, number


class Limit(NamedTuple):
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


class HighRate(NamedTuple):
    node: syntax.BaseExpression  # the lr argument's value
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


def _one_layer(ctx: SourceContext, params: Optional[syntax.Arg]) -> Optional[str]:
    """``Net`` when ``params`` is ``model.parameters()`` of a class of this file whose
    ``__init__`` builds a single layer: a linear model (SGC, logistic regression), convex in
    its weights, with no product of layers for a large step to compound through."""
    func = params.value.func if params is not None and isinstance(params.value, syntax.Call) else None
    if not (isinstance(func, syntax.Attribute) and func.attr.value == "parameters"):
        return None
    made = last(ctx.facts.constructed(dotted(func.value)) or "")
    models = [k for k in ctx.facts.classes if any("Module" in n for b in k.bases for n in identifiers(b))]
    # `model, data = Net().to(device), ...` binds no value to follow: a file's only model class is it.
    klass = next((k for k in models if k.name.value == made), models[0] if len(models) == 1 else None)
    if klass is None:
        return None
    made = klass.name.value
    init = next((f for f in ctx.facts.functions.get("__init__", ()) if ctx.facts.owner.get(f) is klass), None)
    layers = [s for s in ctx.facts.by_scope.get(init, ()) if isinstance(s.node, syntax.Call)
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
            constant = lr.value.value if isinstance(lr.value, syntax.Name) else None
            tolerated = ""
            if leaf in ("SGD", "ASGD") and _clipped(ctx, site):
                # A clipped SGD step moves the weights by at most lr * max_norm, whatever the
                # gradient: the classic word-LM recipe runs SGD at lr 20 clipped at 0.25.
                tolerated = "every step of it is clipped, which bounds the step to lr * max_norm"
            elif _one_layer(ctx, argument(site.node, 0, "params")):
                tolerated = "the model is a single layer, convex in its weights"
            yield HighRate(lr.value, leaf, value, LIMITS[leaf], constant, tolerated)


class OptimizerCall(NamedTuple):
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


def _literal(node: syntax.BaseExpression, ctx: SourceContext) -> tuple[bool, Any]:
    """(True, value) for a number, bool, None, string or tuple of them; (False, None) otherwise."""
    if isinstance(node, syntax.Name) and node.value in ("True", "False", "None"):
        return True, {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, syntax.SimpleString):
        return True, node.evaluated_value
    if isinstance(node, syntax.Tuple):
        items = [_literal(e.value, ctx) for e in node.elements if not isinstance(e, syntax.StarredElement)]
        if len(items) == len(node.elements) and all(ok for ok, _ in items):
            return True, tuple(v for _, v in items)
        return False, None
    value = number(node, ctx.facts.constants)
    if value is None:
        return False, None
    is_int = isinstance(node, syntax.Integer) or (isinstance(node, syntax.UnaryOperation) and isinstance(node.expression, syntax.Integer))
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
        if isinstance(positional[0].value, (syntax.List, syntax.Dict, syntax.Tuple)):
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
