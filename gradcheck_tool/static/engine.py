"""Parse a file once, derive its facts once, run every static rule over them."""
from __future__ import annotations

import re
from typing import NamedTuple, Optional

from gradcheck_tool.findings import Finding, Position, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.analysis.convert import convert
from gradcheck_tool.static.analysis.facts import collect_facts
from gradcheck_tool.static.analysis.names import parse
from gradcheck_tool.static.analysis.optim import OptimizerCall, rebuildable_optimizers
from gradcheck_tool.static.rules.accumulation import AccumulationWithoutAveraging
from gradcheck_tool.static.rules.amp import ClipWithoutUnscale
from gradcheck_tool.static.rules.architecture import DeepSaturatingStack
from gradcheck_tool.static.rules.base import StaticRule
from gradcheck_tool.static.rules.clip_order import ClipAfterStep, ClipBeforeBackward
from gradcheck_tool.static.rules.clip_threshold import ClipThreshold, ClipThresholdTooLow, literal_clip_thresholds
from gradcheck_tool.static.rules.clipping import MissingGradientClipping
from gradcheck_tool.static.rules.high_lr import HighLearningRate
from gradcheck_tool.static.rules.init import UnscaledNormalInit
from gradcheck_tool.static.rules.loop import MissingZeroGrad
from gradcheck_tool.static.rules.schedule import EpochSchedulerPerBatch
from gradcheck_tool.static.rules.zero_grad_order import ZeroGradBeforeStep

STATIC_RULES: dict[str, type[StaticRule]] = {
    rule.CODE: rule
    for rule in sorted(
        (MissingGradientClipping, ClipAfterStep, ClipBeforeBackward, ClipWithoutUnscale,
         MissingZeroGrad, UnscaledNormalInit, DeepSaturatingStack, HighLearningRate,
         ZeroGradBeforeStep, AccumulationWithoutAveraging, EpochSchedulerPerBatch),
        key=lambda rule: rule.CODE,
    )
}

# Rules whose source facts the static pass collects but which speak only with a probe's
# numbers (api.calibrate_clipping): registered like any rule, with no GOOD/BAD of their own.
PROBE_CHECKED_RULES: dict[str, type] = {ClipThresholdTooLow.CODE: ClipThresholdTooLow}

_TRIGGERS = {code: re.compile(rule.TRIGGER) for code, rule in STATIC_RULES.items()}
_OPTIM = re.compile(r"\boptim\b")  # every torch.optim spelling names the module


class Analysis(NamedTuple):
    findings: list[Finding]  # the static rules' findings (GH001 for a file that does not parse)
    optimizers: tuple[OptimizerCall, ...]  # torch.optim constructors the probe can rebuild
    clip_thresholds: tuple[ClipThreshold, ...] = ()  # literal max_norms, for GH212 once a probe ran
    # GH201 on loops whose model the source does not show (a library's, a caller's): only a probe's
    # numbers can say whether they need clipping (api.calibrate_clipping); never reported alone.
    undecided: tuple[Finding, ...] = ()


def probe_decides(finding: Finding) -> bool:
    """A finding the source alone cannot settle: GH201 where what the model is is unknown."""
    return finding.code == MissingGradientClipping.CODE and finding.evidence.get("risk") == "unknown"


def python_error(source: str, filename: str) -> Optional[BaseException]:
    """CPython's parse error for ``source``, or None."""
    tree = parse(source, filename)
    return tree if isinstance(tree, BaseException) else None


def analyse(source: str, filename: str, *, rules: bool = True, optimizers: bool = False) -> Analysis:
    """One parse of a file for everything the source tells: the static findings (``rules``),
    sorted by position, and the optimizers the probe can rebuild (``optimizers``; none for a
    file CPython cannot parse).  Never raises on bad input: a file that does not parse
    yields one GH001 finding."""
    tree = parse(source, filename)
    if isinstance(tree, BaseException):
        return Analysis([_syntax_error(filename, tree, source)] if rules else [], ())
    # A rule runs only on a file its trigger matches (a file it cannot fire on); the
    # analyses it needs are derived on first use (SourceContext).
    triggered = [rule for code, rule in STATIC_RULES.items() if _TRIGGERS[code].search(source)] if rules else []
    optimizers = optimizers and bool(_OPTIM.search(source))
    if not (triggered or optimizers):
        return Analysis([], ())
    # The analyses recurse over expressions, and CPython accepts `a + b + ...` chains
    # thousands of terms long, past Python's recursion limit: what cannot be analysed
    # is skipped (per rule where possible) rather than failing the whole scan.
    try:
        module = convert(tree, source)
        facts = collect_facts(module)
        ctx = SourceContext(filename, source, module, facts)
        found = tuple(rebuildable_optimizers(ctx)) if optimizers else ()
    except RecursionError:
        return Analysis([], ())
    unique: dict[tuple, Finding] = {}
    for rule in triggered:
        try:
            results = list(rule().check(ctx))
        except RecursionError:
            continue
        for finding in results:
            unique.setdefault((finding.code, finding.location, finding.end_location), finding)
    try:
        thresholds = tuple(literal_clip_thresholds(ctx)) if triggered else ()
    except RecursionError:
        thresholds = ()
    ordered = sorted(unique.values(), key=lambda f: f.sort_key)
    return Analysis([f for f in ordered if not probe_decides(f)], found, thresholds,
                    tuple(f for f in ordered if probe_decides(f)))


def check_source(source: str, filename: str) -> list[Finding]:
    """Every static finding for one file's source, sorted by position (see ``analyse``)."""
    return analyse(source, filename).findings


def optimizer_calls(source: str) -> tuple[OptimizerCall, ...]:
    """The ``torch.optim`` constructors in ``source`` that the probe can rebuild (literal
    arguments); empty for a file that does not parse."""
    return analyse(source, "<optimizer>", rules=False, optimizers=True).optimizers


def _syntax_error(filename: str, error: BaseException, source: str) -> Finding:
    row, column, message = 1, 1, str(error) or type(error).__name__
    if isinstance(error, SyntaxError):
        row, column, message = error.lineno or 1, error.offset or 1, error.msg
    elif isinstance(error, (RecursionError, MemoryError)):
        message = "nesting too deep for the Python parser"
    if "\0" in source and "null" in message:  # CPython gives no position for these
        before = source[: source.index("\0")]
        row = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
    return Finding(
        code="GH001", name="syntax-error", severity=Severity.ERROR,
        message=f"Syntax error: {message} (static checks skipped for this file)",
        filename=filename, location=Position(row, max(column, 1)),
        end_location=Position(row, max(column, 1) + 1),
        evidence={"parser_message": message},
    )
