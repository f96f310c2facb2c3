"""Runtime rules, by code.  ``run_rules(record)`` applies every selected rule to a probe record."""
from __future__ import annotations

from typing import Iterable, Optional

from gradcheck_tool.findings import Finding
from gradcheck_tool.probe.record import ProbeRecord
from gradcheck_tool.rules.activations import CollapsingActivations, ExplodingActivations
from gradcheck_tool.rules.attention import AttentionEntropyCollapse
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.depth import ExplodingGradients, VanishingGradients
from gradcheck_tool.rules.divergence import LossDivergence
from gradcheck_tool.rules.growth import WeightNormGrowth
from gradcheck_tool.rules.losses import BroadcastLossTarget, ProbabilitiesIntoLogitLoss
from gradcheck_tool.rules.memory import ShortRecurrentMemory
from gradcheck_tool.rules.nonfinite import NonFiniteActivations, NonFiniteGradients
from gradcheck_tool.rules.parameters import GradientFreeParameters, InitScaleMismatch
from gradcheck_tool.rules.precision import Fp16OverflowRisk
from gradcheck_tool.rules.underflow import Fp16UnderflowRisk
from gradcheck_tool.rules.recurrent import ExplodingThroughTime, VanishingThroughTime
from gradcheck_tool.rules.registration import UnregisteredParameters
from gradcheck_tool.rules.stability import LrAboveEdgeOfStability
from gradcheck_tool.rules.symmetry import SymmetricInit
from gradcheck_tool.rules.units import DeadUnits, SaturatedActivations
from gradcheck_tool.rules.updates import UpdateRatioTooLarge, UpdateRatioTooSmall

RULES: dict[str, type[RuntimeRule]] = {
    rule.CODE: rule
    for rule in sorted(
        [ExplodingGradients, VanishingGradients, NonFiniteGradients, NonFiniteActivations, ExplodingActivations,
         CollapsingActivations, DeadUnits, SaturatedActivations, GradientFreeParameters, InitScaleMismatch,
         ExplodingThroughTime, VanishingThroughTime, LossDivergence, WeightNormGrowth]
        + [LrAboveEdgeOfStability]
        + [UpdateRatioTooLarge, UpdateRatioTooSmall]
        + [Fp16OverflowRisk, Fp16UnderflowRisk]
        + [ProbabilitiesIntoLogitLoss, BroadcastLossTarget, UnregisteredParameters]
        + [SymmetricInit, AttentionEntropyCollapse, ShortRecurrentMemory],
        key=lambda r: r.CODE,
    )
}

# Rules about the file's optimizer: the probe runs it only when one of them is selected.
OPTIMIZER_CODES = frozenset(code for code, rule in RULES.items() if rule.AT_OPTIMIZER)


def run_rules(record: ProbeRecord, codes: Optional[Iterable[str]] = None) -> list[Finding]:
    selected = RULES if codes is None else {c: RULES[c] for c in codes if c in RULES}
    return [finding for rule in selected.values() for finding in rule().check(record)]
