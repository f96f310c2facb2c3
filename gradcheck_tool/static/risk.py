"""Why a file's model is prone to gradient spikes: what decides GH201's severity."""
from __future__ import annotations

import re
from typing import Optional

from gradcheck_tool.static.base import SourceContext
from gradcheck_tool.static.names import is_torch_nn, last
from gradcheck_tool.static.optim import high_learning_rates

_SEQUENCE_LAYERS = (
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "MultiheadAttention",
    "Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer",
    "TransformerDecoderLayer",
)
_SEQUENCE_CLASS = re.compile(r"Attention|Transformer|RNN|LSTM|GRU")


def explosion_risk(ctx: SourceContext) -> Optional[str]:
    """The first reason found (recurrent or attention layers, a GH208 learning rate), or None
    for a plain feed-forward net."""
    for site in ctx.facts.calls:
        name = site.name or ""
        if is_torch_nn(name, *_SEQUENCE_LAYERS):
            return f"the file builds nn.{last(name)} (line {ctx.line(site.node)})"
        if name.startswith("transformers.") or last(name) == "scaled_dot_product_attention":
            return f"the file builds an attention model ({name}, line {ctx.line(site.node)})"
    for local, target in ctx.facts.imports.aliases.items():
        if target == "transformers" or target.startswith("transformers."):
            return f"the file imports transformers ({local})"
    for klass in ctx.facts.classes:
        if _SEQUENCE_CLASS.search(klass.name.value):
            return f"the file defines {klass.name.value} (line {ctx.line(klass)})"
    for rate in high_learning_rates(ctx):
        line = ctx.line(rate.node)
        return f"{rate.optimizer} runs at lr={rate.value:g} (line {line}, see GH208)"
    return None
