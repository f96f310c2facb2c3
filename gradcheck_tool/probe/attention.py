"""Attention entropy on the first probe forward (GH114), from the three ways models attend:

- a softmax over the last axis of a tensor with three or more dimensions (hand-written
  attention, ``nn.Softmax``, transformers' eager attention) whose input is not a module's own
  output (that is a classifier or a router over a Linear): the rows are read from its input;
- ``F.scaled_dot_product_attention``: the probabilities are computed for a sample of queries
  from ``q``, ``k``, the mask, ``is_causal`` and ``scale``;
- ``nn.MultiheadAttention`` (``F.multi_head_attention_forward``): called again, without
  dropout and without gradient, on the first batch row with ``need_weights=True`` and per-head
  weights.

Each site's sampled rows give the mean entropy H = -sum p log p and the mean log(n), n the keys
a row may attend to.  Masked keys are not keys: for a softmax they are entries more than
``MASK_MARGIN`` below the row's maximum (masks add -inf, finfo.min, -1e4 or -1e9); for SDPA and
MultiheadAttention the mask and causal flag themselves say which (the attention module is
called once more with a zero query projection: uniform over exactly the allowed keys).
Cost: at most ``MAX_ROWS`` rows per call, first forward only.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gradcheck_tool.probe.record import AttentionStats

MAX_ROWS = 256  # query rows sampled per call
MIN_KEYS = 8  # a softmax over fewer entries is not judged: log(n) too small to tell collapse apart
MASK_MARGIN = 1e3  # a logit this far below its row's maximum is a masked key

SOFTMAX = frozenset({F.softmax, torch.softmax, torch.Tensor.softmax})
SDPA = F.scaled_dot_product_attention
MHA = F.multi_head_attention_forward
OPS = SOFTMAX | {SDPA, MHA}
_SDPA_SIGNATURE = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d) for n, d in (
    ("query", None), ("key", None), ("value", None), ("attn_mask", None), ("dropout_p", 0.0), ("is_causal", False),
    ("scale", None), ("enable_gqa", False))])
_MHA_SIGNATURE = inspect.signature(MHA)


def _sample(n: int, limit: int) -> torch.Tensor:
    return torch.arange(0, n, max(1, -(-n // limit)))[:limit]


def _entropy(log_p: torch.Tensor) -> torch.Tensor:
    p = log_p.exp()
    return -torch.where(p > 0, p * log_p, torch.zeros_like(p)).sum(-1)


class AttentionProbe:
    """Accumulates per-site entropy; ``note`` is called by the probe's function mode on every op in ``OPS``."""

    def __init__(self, named_modules: list[tuple[str, nn.Module]]):
        self._sites: dict[tuple[str, str], list[float]] = {}  # (name, kind) -> [rows, keys, entropy, log n]
        self._mha = {id(p): name for name, m in named_modules if isinstance(m, nn.MultiheadAttention)
                     for p in (m.in_proj_weight, m.q_proj_weight) if p is not None}

    def note(self, func, args, kwargs, site: Callable[[], str], from_module: bool) -> None:
        """``from_module``: the op's input is a module's own output.  A softmax straight over a Linear's
        output is a classifier's or a router's, not attention (whose scores come from q @ k)."""
        try:
            with torch.no_grad():
                if func in SOFTMAX and not from_module:
                    self._softmax(args, kwargs, site)
                elif func is SDPA:
                    self._sdpa(_SDPA_SIGNATURE.bind(*args, **kwargs).arguments, site)
                elif func is MHA:
                    self._multihead(_MHA_SIGNATURE.bind(*args, **kwargs), site)
        except (RuntimeError, TypeError, ValueError, IndexError):
            return  # an attention layout this reader does not know: the site is not judged, the forward goes on

    def stats(self) -> tuple[AttentionStats, ...]:
        return tuple(AttentionStats(name, kind, int(rows), keys / rows, entropy / rows, log_n / rows)
                     for (name, kind), (rows, keys, entropy, log_n) in self._sites.items() if rows)

    def _add(self, name: str, kind: str, entropy: torch.Tensor, allowed: torch.Tensor) -> None:
        n = allowed.sum(-1).double()
        keep = (n >= 2) & torch.isfinite(entropy)
        if not bool(keep.any()) or float(n[keep].mean()) < MIN_KEYS:
            return
        acc = self._sites.setdefault((name, kind), [0, 0.0, 0.0, 0.0])
        acc[0] += int(keep.sum())
        acc[1] += float(n[keep].sum())
        acc[2] += float(entropy.double()[keep].sum())
        acc[3] += float(n[keep].log().sum())

    def _from_logits(self, name: str, kind: str, logits: torch.Tensor) -> None:
        rows = logits.reshape(-1, logits.shape[-1])
        rows = rows[_sample(rows.shape[0], MAX_ROWS).to(rows.device)].float()
        allowed = rows > rows.amax(-1, keepdim=True) - MASK_MARGIN
        self._add(name, kind, _entropy(rows.log_softmax(-1)), allowed)

    def _softmax(self, args, kwargs, site) -> None:
        x = args[0] if args else kwargs.get("input")
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 3 or not isinstance(dim, int):
            return
        if dim % x.dim() == x.dim() - 1 and x.shape[-1] >= MIN_KEYS:
            self._from_logits(site(), "softmax", x.detach())

    def _sdpa(self, a: dict, site) -> None:
        q, k, mask = a["query"], a["key"], a.get("attn_mask")
        if not isinstance(q, torch.Tensor) or q.dim() < 2 or k.shape[-2] < MIN_KEYS:
            return
        if mask is not None:
            mask = mask.expand(*q.shape[:-1], k.shape[-2])
        while q.dim() > 3:  # the first batch row: (heads, L, E)
            q, k = q[0], k[0] if k.dim() > 3 else k
            mask = mask[0] if mask is not None else None
        q, k = q.reshape(-1, *q.shape[-2:]), k.reshape(-1, *k.shape[-2:])
        if k.shape[0] != q.shape[0]:
            if q.shape[0] % k.shape[0]:
                return
            k = k.repeat_interleave(q.shape[0] // k.shape[0], 0)  # grouped-query attention
        length, keys = q.shape[-2], k.shape[-2]
        idx = _sample(length, max(1, MAX_ROWS // q.shape[0])).to(q.device)
        scale = a.get("scale") or 1 / math.sqrt(q.shape[-1])
        logits = (q[:, idx].float() @ k.float().transpose(-1, -2)) * scale
        bias = torch.zeros_like(logits)
        if a.get("is_causal"):
            bias.masked_fill_(torch.arange(keys, device=q.device) > idx[:, None], -math.inf)
        if mask is not None:
            mask = mask.reshape(-1, length, keys)[:, idx]
            bias = bias.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else bias + mask.float()
        allowed = bias > bias.amax(-1, keepdim=True) - MASK_MARGIN
        rows = (logits + bias).reshape(-1, keys)
        self._add(site(), "scaled_dot_product_attention", _entropy(rows.log_softmax(-1)), allowed.reshape(-1, keys))

    def _multihead(self, bound: inspect.BoundArguments, site) -> None:
        a = bound.arguments
        weight = a.get("q_proj_weight") if a.get("use_separate_proj_weight") else a.get("in_proj_weight")
        name = self._mha.get(id(weight)) or site()
        mask = a.get("attn_mask")
        if a["query"].dim() == 3 and (mask is None or mask.dim() == 2):  # (L, N, E): the first batch row
            for key in ("query", "key", "value"):
                a[key] = a[key][:, :1]
            if a.get("key_padding_mask") is not None:
                a["key_padding_mask"] = a["key_padding_mask"][:1]
        a.update(need_weights=True, average_attn_weights=False, dropout_p=0.0, training=False)
        probs = MHA(*bound.args, **bound.kwargs)[1]
        if probs is None or probs.shape[-1] < MIN_KEYS:
            return
        for key in ("in_proj_weight", "in_proj_bias", "q_proj_weight"):
            if isinstance(a.get(key), torch.Tensor):
                a[key] = torch.zeros_like(a[key])
        uniform = MHA(*bound.args, **bound.kwargs)[1]
        keys = probs.shape[-1]
        rows, flat_uniform = probs.float().reshape(-1, keys), uniform.float().reshape(-1, keys)
        idx = _sample(rows.shape[0], MAX_ROWS).to(rows.device)
        self._add(name, "MultiheadAttention", _entropy(rows[idx].log()), flat_uniform[idx] > 0)
