"""GH114: the probe's attention entropy checked against direct softmax computations, and the rule on real
hand-written, SDPA and nn.MultiheadAttention models."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.rules import run_rules


def _entropy(p):
    return -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)


class HandWritten(nn.Module):
    """Self-attention on fixed unit-scale q, k (buffers) so the expected entropy is computable."""

    def __init__(self, scaled=True, causal=False, zero_query=False, sdpa=False, heads=4, length=48, dim=64):
        super().__init__()
        torch.manual_seed(1)
        self.register_buffer("q", torch.zeros(heads, length, dim) if zero_query else torch.randn(heads, length, dim))
        self.register_buffer("k", torch.randn(heads, length, dim))
        self.proj = nn.Linear(dim, dim)
        self.scaled, self.causal, self.sdpa = scaled, causal, sdpa

    def logits(self):
        att = self.q @ self.k.transpose(-2, -1) / (math.sqrt(self.q.shape[-1]) if self.scaled else 1.0)
        if self.causal:
            att = att.masked_fill(torch.ones_like(att, dtype=torch.bool).tril().logical_not(), float("-inf"))
        return att

    def forward(self, x):
        v = self.proj(x)  # (heads, length, dim)
        if self.sdpa:
            out = F.scaled_dot_product_attention(self.q, self.k, v, is_causal=self.causal,
                                                 scale=None if self.scaled else 1.0)
        else:
            out = F.softmax(self.logits(), dim=-1) @ v
        return out


def _site(model):
    record = run_probe(model, lambda: torch.randn(4, 48, 64), probes=1)
    (site,) = record.attention
    return record, site


@pytest.mark.parametrize("sdpa", [False, True])
@pytest.mark.parametrize("scaled,causal", [(True, False), (False, False), (True, True)])
def test_entropy_matches_the_softmax(sdpa, scaled, causal):
    model = HandWritten(scaled=scaled, causal=causal, sdpa=sdpa)
    _, site = _site(model)
    p = F.softmax(model.logits(), dim=-1)  # 4 heads x 48 rows: all sampled (<= 256)
    keys = (p > 0).sum(-1).float() if causal else torch.full((4, 48), 48.0)
    judged = keys >= 2  # a row with one allowed key has nothing to choose (log 1 = 0): not judged
    assert site.rows == int(judged.sum()) == (4 * 47 if causal else 4 * 48)
    assert site.entropy == pytest.approx(float(_entropy(p)[judged].mean()), rel=1e-4)
    assert site.keys == pytest.approx(float(keys[judged].mean()))
    assert site.max_entropy == pytest.approx(float(keys[judged].log().mean()))
    assert site.kind == ("scaled_dot_product_attention" if sdpa else "softmax")


def test_uniform_attention_has_entropy_log_keys():
    _, site = _site(HandWritten(zero_query=True, causal=True))
    assert site.entropy == pytest.approx(site.max_entropy, rel=1e-5)


def test_scaled_attention_is_quiet_unscaled_fires():
    scaled, _ = _site(HandWritten(scaled=True))
    unscaled, site = _site(HandWritten(scaled=False))
    assert run_rules(scaled, ["GH114"]) == []
    (finding,) = run_rules(unscaled, ["GH114"])
    assert finding.evidence["ratio"] < 0.5 and site.entropy / site.max_entropy < 0.5


class MHA(nn.Module):
    def __init__(self, embed_scale, dim=64, heads=4):
        super().__init__()
        torch.manual_seed(0)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True, dropout=0.1)
        self.embed_scale = embed_scale

    def forward(self, x):
        x = x * self.embed_scale
        return self.attn(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("embed_scale", [1.0, 8.0])
def test_multihead_attention_matches_its_own_weights(embed_scale):
    model = MHA(embed_scale)
    torch.manual_seed(0)
    x = torch.randn(4, 40, 64)
    record = run_probe(model, lambda: x, probes=1)
    (site,) = record.attention
    assert site.name == "attn" and site.kind == "MultiheadAttention" and site.keys == 40
    model.eval()
    with torch.no_grad():
        s = x[:1] * embed_scale
        _, w = model.attn(s, s, s, need_weights=True, average_attn_weights=False)  # (1, heads, 40, 40)
    rows = w.reshape(-1, 40)  # 160 rows: all sampled (<= 256)
    assert site.rows == 160
    assert site.entropy == pytest.approx(float(_entropy(rows).mean()), rel=1e-4)
    fired = run_rules(record, ["GH114"])
    assert bool(fired) == (embed_scale == 8.0)


def test_key_padding_mask_reduces_the_keys():
    model = MHA(1.0)

    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model.attn

        def forward(self, x):
            pad = torch.zeros(x.shape[0], x.shape[1], dtype=torch.bool)
            pad[:, 30:] = True
            return self.inner(x, x, x, key_padding_mask=pad)[0]

    (site,) = run_probe(Padded(), lambda: torch.randn(4, 40, 64), probes=1).attention
    assert site.keys == 30


def test_small_softmax_is_not_attention():
    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            return F.softmax(self.fc(x) * 100, dim=-1)  # 5 classes: not judged

    assert run_probe(Classifier(), lambda: torch.randn(4, 7, 16), probes=1).attention == ()


def test_softmax_over_a_linear_output_is_a_classifier_not_attention():
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(64, 1000)
            nn.init.normal_(self.head.weight, std=1.0)  # sharp output distribution: not attention's business

        def forward(self, x):
            return F.softmax(self.head(x), dim=-1)

    assert run_probe(LM(), lambda: torch.randn(4, 7, 64), probes=1).attention == ()


def test_an_unknown_attention_layout_is_skipped_not_fatal():
    from gradcheck_tool.probe.attention import SDPA, AttentionProbe

    probe = AttentionProbe([])
    q = torch.randn(2, 4, 10, 16)
    probe.note(SDPA, (q, q, q), {"attn_mask": torch.ones(3, 3, dtype=torch.bool)}, lambda: "odd", False)
    assert probe.stats() == ()
    probe.note(SDPA, (q, q, q), {}, lambda: "fine", False)
    assert [s.name for s in probe.stats()] == ["fine"]
