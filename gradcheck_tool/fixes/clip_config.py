"""Clipping that a framework's trainer does for you, when configured: where GH201 finds it
missing or turned off, and the edit in the framework's own spelling.

- Lightning: ``L.Trainer(...)`` / ``pl.Trainer(...)`` clips only with ``gradient_clip_val``
  (default None: no clipping) -> add ``gradient_clip_val=1.0``.  Not under manual optimization
  (``self.automatic_optimization = False``), where the Trainer never clips.
- Hugging Face: ``TrainingArguments`` clips at ``max_grad_norm=1.0`` by default; an explicit
  ``max_grad_norm=0`` (or ``None``) turns it off -> ``max_grad_norm=1.0``.

Accelerate's ``accelerator.clip_grad_norm_`` goes in the loop, like torch's (``clip_fix``).
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Edit, Position
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.analysis.names import keyword_arg

_LIGHTNING = ("lightning.Trainer", "lightning.pytorch.Trainer", "pytorch_lightning.Trainer",
              "lightning.pytorch.trainer.Trainer", "pytorch_lightning.trainer.Trainer")
_HF_ARGUMENTS = ("transformers.TrainingArguments", "transformers.Seq2SeqTrainingArguments")


class ConfigGap(NamedTuple):
    node: syntax.Call  # the Trainer / TrainingArguments call
    message: str
    advice: str
    edit: Optional[Edit]


def config_gaps(ctx: SourceContext) -> Iterator[ConfigGap]:
    manual = "automatic_optimization = False" in ctx.source
    for site in ctx.facts.calls:
        call = site.node
        if site.name in _LIGHTNING and not manual and not _splat(call):
            value = keyword_arg(call, "gradient_clip_val")
            if value is None or _off(value.value):
                yield ConfigGap(call, "the Lightning Trainer is built without `gradient_clip_val`: it never "
                                "clips gradients", "Pass `gradient_clip_val=1.0` to the Trainer",
                                _set(ctx, call, value, "gradient_clip_val"))
        elif site.name in _HF_ARGUMENTS:
            value = keyword_arg(call, "max_grad_norm")
            if value is not None and _off(value.value):
                yield ConfigGap(call, f"`max_grad_norm={ctx.code(value.value)}` turns off the clipping the "
                                "Hugging Face Trainer does by default", "Set `max_grad_norm=1.0` (the default)",
                                _set(ctx, call, value, "max_grad_norm"))


def _splat(call: syntax.Call) -> bool:
    return any(arg.star for arg in call.args)  # **config may set it: cannot tell


def _off(value: syntax.BaseExpression) -> bool:
    if isinstance(value, syntax.Name):
        return value.value == "None"
    if isinstance(value, (syntax.Integer, syntax.Float)):
        try:
            return float(value.value) == 0.0
        except ValueError:
            return False
    return False


def _set(ctx: SourceContext, call: syntax.Call, value: Optional[syntax.Arg], name: str) -> Optional[Edit]:
    """``name=1.0``: replacing the value that turns it off, or a new last keyword."""
    if value is not None:
        return ctx.replace(value.value, "1.0")
    if not call.args:
        _, end = ctx.span(call)
        if end is None or not ctx.code(call).endswith("()"):
            return None
        inside = Position(end.row, end.column - 1)
        return Edit(f"{name}=1.0", inside, inside)
    last = call.args[-1]
    start, end = ctx.span(last.value)
    if start is None or end is None:
        return None
    line = ctx.lines[start.row - 1]
    indent = line[: len(line) - len(line.lstrip())]
    if isinstance(last.comma, syntax.Comma) and start.row == end.row and line.strip().endswith(",") \
            and line.strip().startswith(ctx.code(last).rstrip(",").strip()[:8]):
        # one argument per line with trailing commas: the new one gets its own line
        below = Position(end.row + 1, 1)
        return Edit(f"{indent}{name}=1.0,\n", below, below)
    return Edit(f", {name}=1.0", end, end)
