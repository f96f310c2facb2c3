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
# transformers' model classes: AutoModel*, BertForSequenceClassification, GPT2Model (and
# its attention modules). Its tokenizers, configs, collators, schedulers and utilities
# (check_min_version, get_linear_schedule_with_warmup) build no layers.
_MODEL_CLASS = re.compile(r"^(AutoModel\w*|\w+For[A-Z]\w*|\w*Model|\w*Attention)$")
_NOT_A_MODEL = re.compile(r"Collator|Tokenizer|Processor|Config|Extractor|PreTrainedModel$")
_BUILDERS = frozenset({"from_pretrained", "from_config"})
# Only a plain-gradient step grows with the gradient: an adaptive optimizer (Adam,
# RMSprop, Adagrad...) moves each weight by about lr whatever the gradient's size, so
# clipping does nothing about its too-high rate.
_SGD_FAMILY = frozenset({"SGD", "ASGD"})


def transformers_model(name: str) -> Optional[str]:
    """The model class a resolved call name builds (``transformers.BertModel(...)``,
    ``transformers.AutoModelForCausalLM.from_pretrained(...)``), else None."""
    if not name.startswith("transformers."):
        return None
    parts = name.split(".")
    klass = parts[-2] if parts[-1] in _BUILDERS and len(parts) > 2 else parts[-1]
    return klass if _MODEL_CLASS.match(klass) and not _NOT_A_MODEL.search(klass) else None


def explosion_risk(ctx: SourceContext) -> Optional[str]:
    """The first reason found (recurrent or attention layers, a GH208 learning rate for a
    plain-gradient optimizer), or None for a plain feed-forward net."""
    for site in ctx.facts.calls:
        name = site.name or ""
        if is_torch_nn(name, *_SEQUENCE_LAYERS):
            return f"the file builds nn.{last(name)} (line {ctx.line(site.node)})"
        if transformers_model(name) or last(name) == "scaled_dot_product_attention":
            return (f"the file builds an attention model (`{ctx.code(site.node.func)}(...)`, "
                    f"line {ctx.line(site.node)})")
    # `MODEL_CLASSES = {"bert": BertForSequenceClassification}` reached through a variable.
    for local, target in ctx.facts.imports.aliases.items():
        if transformers_model(target):
            return f"the file imports the transformers model class {last(target)} ({local})"
    for klass in ctx.facts.classes:
        if _SEQUENCE_CLASS.search(klass.name.value):
            return f"the file defines {klass.name.value} (line {ctx.line(klass)})"
    for rate in high_learning_rates(ctx):
        if rate.optimizer in _SGD_FAMILY and not rate.mild:
            line = ctx.line(rate.node)
            return f"{rate.optimizer} runs at lr={rate.value:g} (line {line}, see GH208)"
    return None
