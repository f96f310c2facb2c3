"""Attention entropy collapse: softmax attention that is near one-hot at initialisation (GH114)."""
from __future__ import annotations

from typing import Iterator, Optional

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import AttentionStats, ProbeRecord
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule
from gradcheck_tool.rules.signals import fmt


def _ratio(stats: AttentionStats) -> float:
    return stats.entropy / stats.max_entropy if stats.max_entropy > 0 else 1.0


def _measure(record: ProbeRecord, module: Optional[str]) -> Optional[float]:
    ratios = [_ratio(s) for s in record.attention if s.name == module]
    return min(ratios) if ratios else None


class AttentionEntropyCollapse(RuntimeRule):
    """Softmax attention whose entropy is far below log(keys): near one-hot at initialisation.

    What it does: on the probe's first forward, reads every attention softmax (a softmax over
    the last axis of a 3-D or larger tensor, ``F.scaled_dot_product_attention``,
    ``nn.MultiheadAttention``) on a sample of up to 256 query rows, and compares the mean
    entropy of a row, H = -sum p log p, with log(n), the entropy of uniform attention over its
    n allowed keys (masked keys excluded).  Fires when H is below half of log(n) (warning), on
    sites with at least 8 keys.

    Why it matters: attention whose softmax saturates passes gradient to one key per query and
    almost none through the softmax itself; Zhai et al. (2023, "Stabilizing Transformer
    Training by Preventing Attention Entropy Collapse") show training then becomes unstable
    or stalls.  With logits q.k of variance s^2 the entropy is about log(n) - s^2/2 while s^2 is
    small, and collapses toward 0 once s^2 passes log(n).  Scaled attention at init keeps
    s^2 near 1: measured 0.90-0.92 log(n) for d = 64, n = 128-512; without the 1/sqrt(d) scale
    s^2 = d and the entropy falls to 0.13-0.14 log(n).  Half of log(n) separates the two by a
    wide margin.

    Example: ``attn = (q @ k.transpose(-2, -1)).softmax(-1)`` with no ``/ math.sqrt(d)``;
    ``nn.Embedding`` left at N(0, 1) and multiplied by ``sqrt(d_model)`` before
    ``nn.MultiheadAttention``.

    Fix: divide the scores by ``math.sqrt(head_dim)`` (or use
    ``F.scaled_dot_product_attention``, which does); keep the attention inputs at unit scale
    (an embedding multiplied by sqrt(d_model) wants std d_model**-0.5); QK-LayerNorm or
    sigma-Reparam (Zhai et al. 2023) keep the logits bounded in training.
    """

    CODE = "GH114"
    NAME = "attention-entropy-collapse"
    SEVERITY = Severity.WARNING
    METRIC = "attention entropy / log(keys)"
    BETTER = 1
    measure = classmethod(lambda cls, record, module: _measure(record, module))
    GOOD = (examples.mlp(), examples.attention(4.4), examples.attention(3.4, keys=65.0,
                                                                      kind="scaled_dot_product_attention"))
    BAD = (examples.attention(0.69), examples.attention(0.28, keys=64.0, kind="MultiheadAttention"))

    MIN_RATIO = 0.5

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for stats in record.attention:
            ratio = _ratio(stats)
            if ratio >= self.MIN_RATIO:
                continue
            yield self.finding(
                f"{stats.name}'s attention ({stats.kind}) is near one-hot at init: entropy {fmt(stats.entropy)} "
                f"nats vs log({stats.keys:.0f} keys) = {fmt(stats.max_entropy)} ({ratio:.0%})",
                module=stats.name,
                evidence={"site": stats.name, "kind": stats.kind, "rows": stats.rows, "keys": round(stats.keys, 2),
                          "entropy": round(stats.entropy, 4), "max_entropy": round(stats.max_entropy, 4),
                          "ratio": round(ratio, 4)},
                fix=("Scale the attention scores by 1/sqrt(head_dim): (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1)), "
                     "or use F.scaled_dot_product_attention; keep its inputs at unit scale (an embedding multiplied "
                     "by sqrt(d_model) wants nn.init.normal_(emb.weight, std=d_model ** -0.5))."),
            )
