"""What a file's model is, and whether something else clips for it: what decides whether
GH201 speaks, and how loudly."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.analysis.names import dotted, is_torch_nn, last, subtree
from gradcheck_tool.static.analysis.optim import high_learning_rates

_RECURRENT = ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")
_ATTENTION = ("MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerDecoder",
              "TransformerEncoderLayer", "TransformerDecoderLayer")
# torch.nn layers with weights: a file building only these (and no recurrent or attention
# layer) trains a feed-forward net, whose gradients have no product over time steps or
# softmax logits to blow up through.
_FEED_FORWARD = re.compile(r"^(Linear|Bilinear|LazyLinear|Conv\w*|LazyConv\w*|ConvTranspose\w*|Embedding\w*|"
                           r"BatchNorm\w*|LayerNorm|GroupNorm|InstanceNorm\w*|RMSNorm|PReLU)$")
_ZOO = ("torchvision.models.", "timm.create_model", "timm.models.")
# Libraries whose layers say what they are: attention (x-transformers, PyG's attention
# convolutions) or message passing without it (PyG's other convolutions and models).
_LIBRARY_ATTENTION = re.compile(r"^(x_transformers\.\w+|torch_geometric\.nn\.(\w+\.)*"
                                r"(GATConv|GATv2Conv|SuperGATConv|TransformerConv|GAT|AttentiveFP)\w*)$")
_LIBRARY_FEED_FORWARD = re.compile(r"^torch_geometric\.nn\.(\w+\.)*[A-Z]\w*$")
# transformers' model classes: AutoModel*, BertForSequenceClassification, GPT2Model (and
# its attention modules). Its tokenizers, configs, collators, schedulers and utilities
# (check_min_version, get_linear_schedule_with_warmup) build no layers.
_MODEL_CLASS = re.compile(r"^(AutoModel\w*|\w+For[A-Z]\w*|\w*Model|\w*Attention)$")
_NOT_A_MODEL = re.compile(r"Collator|Tokenizer|Processor|Config|Extractor|PreTrainedModel$")
_BUILDERS = frozenset({"from_pretrained", "from_config"})
_SOFTMAX = frozenset({"softmax", "Softmax", "log_softmax"})
_MATMUL = frozenset({"matmul", "bmm", "einsum", "baddbmm"})
# DeepSpeed and Megatron engines clip inside their own step (`gradient_clipping` in the
# DeepSpeed config, `clip_grad` in Megatron's OptimizerConfig); accelerate hands the step to
# them when their plugin is configured.
ENGINE_CLIPS = re.compile(r"\b(deepspeed|DeepSpeed\w*|megatron|Megatron\w*)\b")
# A clip threshold the file reads from its options: configured clipping a loop never applies.
# (`--clip_value` is left out: WGAN scripts use it for clamping weights, not gradients.)
_CLIP_OPTION = re.compile(
    r"""add_argument\(\s*['"](--(?:clip|grad[-_]?clip\w*|clip[-_]?grad\w*|gradient[-_]clip\w*|"""
    r"""clip[-_]norm|max[-_]grad[-_]norm))['"]""", re.IGNORECASE)
# Only a plain-gradient step grows with the gradient: an adaptive optimizer (Adam,
# RMSprop, Adagrad...) moves each weight by about lr whatever the gradient's size, so
# clipping does nothing about its too-high rate.
_SGD_FAMILY = frozenset({"SGD", "ASGD"})


class Risk(NamedTuple):
    severity: Optional[Severity]  # None: nothing worth saying about this file's loops
    reason: str
    # Why, in one word (GH201's evidence "risk"): engine, high-lr, unread-clip-option, ungated-rnn,
    # gated-rnn, attention, feed-forward or unknown.
    kind: str


def transformers_model(name: str) -> Optional[str]:
    """The model class a resolved call name builds (``transformers.BertModel(...)``,
    ``transformers.AutoModelForCausalLM.from_pretrained(...)``), else None."""
    if not name.startswith("transformers."):
        return None
    parts = name.split(".")
    klass = parts[-2] if parts[-1] in _BUILDERS and len(parts) > 2 else parts[-1]
    return klass if _MODEL_CLASS.match(klass) and not _NOT_A_MODEL.search(klass) else None


def _computes_attention(klass: syntax.ClassDef) -> bool:
    """A class of the file whose code takes a softmax and a matrix product: attention
    written by hand (``softmax(q @ k.transpose(-2, -1))``), whatever the class is called."""
    softmax = matmul = False
    for node in subtree(klass):
        if isinstance(node, syntax.BinaryOperation) and isinstance(node.operator, syntax.MatrixMultiply):
            matmul = True
        elif isinstance(node, syntax.Call):
            func = node.func
            leaf = func.attr.value if isinstance(func, syntax.Attribute) else last(dotted(func) or "")
            softmax = softmax or leaf in _SOFTMAX
            matmul = matmul or leaf in _MATMUL
        if softmax and matmul:
            return True
    return False


def _zoo_by_name(ctx: SourceContext, site) -> bool:
    """``models.__dict__[args.arch]()``: a torchvision model chosen by name (pytorch/examples'
    ImageNet trainer)."""
    func = getattr(site.node, "func", None)
    return (isinstance(func, syntax.Subscript)
            and (ctx.facts.imports.resolve(func.value) or "").startswith(_ZOO))


def model_kind(ctx: SourceContext) -> tuple[str, str]:
    """("recurrent" | "attention" | "feed-forward" | "unknown", why), from the layers the
    file builds and the classes it defines: what the model is, not what it is called."""
    feed_forward = None
    for site in ctx.facts.calls:
        name = site.name or ""
        if is_torch_nn(name, *_RECURRENT):
            return "recurrent", f"the file builds nn.{last(name)} (line {ctx.line(site.node)})"
        if is_torch_nn(name, *_ATTENTION) or last(name) == "scaled_dot_product_attention":
            return "attention", f"the file builds {ctx.code(site.node.func)} (line {ctx.line(site.node)})"
        if _LIBRARY_ATTENTION.match(name):
            return "attention", f"the file builds {last(name)} (line {ctx.line(site.node)})"
        model = transformers_model(name)
        if model:
            how = "fine-tunes" if last(name) == "from_pretrained" else "builds"
            return "attention", f"the file {how} the transformers model {model} (line {ctx.line(site.node)})"
        if feed_forward is None and ((is_torch_nn(name, last(name)) and _FEED_FORWARD.match(last(name)))
                                     or name.startswith(_ZOO) or _LIBRARY_FEED_FORWARD.match(name)
                                     or _zoo_by_name(ctx, site)):
            feed_forward = f"the file builds `{ctx.code(site.node.func)}` (line {ctx.line(site.node)})"
    for local, target in ctx.facts.imports.aliases.items():
        if transformers_model(target):  # `MODEL_CLASSES = {"bert": BertForSequenceClassification}`
            return "attention", f"the file imports the transformers model class {last(target)} ({local})"
    for klass in ctx.facts.classes:
        if _computes_attention(klass):
            return "attention", f"{klass.name.value} (line {ctx.line(klass)}) computes attention"
    if feed_forward:
        return "feed-forward", feed_forward
    return _sibling_kind(ctx) or ("unknown", "the source does not show what kind of model this loop trains")


# (Patterns compiled by `re` on first use: only a file with a model module beside it needs them.)
# Layer constructors as `nn.X(` or, imported from torch.nn, `X(`.
_SIBLING_RECURRENT = r"\b(?:nn\.)?(RNN|LSTM|GRU)(?:Cell)?\("
_SIBLING_ATTENTION = r"MultiheadAttention|scaled_dot_product_attention|\bnn\.Transformer\w*\("
_SIBLING_SOFTMAX = r"softmax\(|Softmax\("
_SIBLING_MATMUL = r" @ |matmul\(|einsum\(|bmm\("
_SIBLING_LAYERS = r"\b(?:nn\.)?(?:Lazy)?(?:Linear|Conv[123]d|ConvTranspose[123]d)\("
_RELATIVE_IMPORT = r"^[ \t]*from[ \t]+(\.+)([\w.]*)[ \t]+import[ \t]+\(?([\w\s,]+)"
_MAX_SIBLINGS = 32  # modules read per file, at most


def _project_modules(ctx: SourceContext, here: Path) -> Iterator[Path]:
    """The files of the modules this file imports from its own project: beside it (``from
    model import GPT``, ``from src.model import Translator``, ``from models import *``), in its
    package (``from .core import MLP``, ``from . import core``) or by the package's absolute
    name (``import spinup.algos.pytorch.ddpg.core as core`` from inside ``spinup/``); ``here``:
    the file's folder."""
    wanted: list[tuple[Path, list[str]]] = []  # (where the dotted path starts, its parts)
    dotted_names = set(ctx.facts.imports.aliases.values())
    dotted_names |= set(re.findall(r"^from\s+(\w[\w.]*)\s+import\s+\*", ctx.source, re.MULTILINE))
    for name in sorted(dotted_names):
        parts = name.split(".")
        wanted.append((here, parts))
        if parts[0] in here.parts:  # the file's own package, by its name
            top = len(here.parts) - 1 - here.parts[::-1].index(parts[0])
            wanted.append((Path(*here.parts[:top]), parts))
    for dots, module, names in re.findall(_RELATIVE_IMPORT, ctx.source, re.MULTILINE):
        base = here.parents[len(dots) - 2] if len(dots) > 1 and len(dots) - 2 < len(here.parents) else here
        for imported in names.split(","):
            parts = [*(module.split(".") if module else []), *imported.split()[:1]]
            if parts:
                wanted.append((base, parts))
    seen: set[Path] = set()
    for base, parts in wanted:
        for k in range(len(parts), 0, -1):  # the longest prefix that is a module: `models.gan.G` -> models/gan.py
            stem = base.joinpath(*parts[:k])
            path = next((p for p in (stem.with_name(stem.name + ".py"), stem / "__init__.py") if p.is_file()), None)
            if path is not None:
                if path not in seen and len(seen) < _MAX_SIBLINGS:
                    seen.add(path)
                    yield path
                break


def _sibling_kind(ctx: SourceContext) -> Optional[tuple[str, str]]:
    """What the model is when a module of the file's own project builds it (see
    ``_project_modules``): read from those files' text, without parsing or importing them."""
    here = Path(ctx.filename).parent
    if not ctx.filename or not here.is_dir():
        return None
    kinds = []
    for path in _project_modules(ctx, here):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        where = os.path.relpath(path, here)
        where = f"{where} next to this file" if not where.startswith("..") else f"{where}, which this file imports,"
        recurrent = re.search(_SIBLING_RECURRENT, text)
        if recurrent:
            kinds.append(("recurrent", f"{where} builds nn.{recurrent.group(1)}"))
        elif re.search(_SIBLING_ATTENTION, text) or (re.search(_SIBLING_SOFTMAX, text)
                                                      and re.search(_SIBLING_MATMUL, text)):
            kinds.append(("attention", f"{where} builds attention layers"))
        elif re.search(_SIBLING_LAYERS, text):
            kinds.append(("feed-forward", f"{where} builds only feed-forward layers"))
    order = ("recurrent", "attention", "feed-forward")
    return min(kinds, key=lambda k: order.index(k[0])) if kinds else None


def explosion_risk(ctx: SourceContext) -> Risk:
    """How loudly GH201 speaks about an unclipped step in this file."""
    match = ENGINE_CLIPS.search(ctx.source)
    if match:
        return Risk(None, f"the {match.group(1)} engine clips inside its own step", "engine")
    for rate in high_learning_rates(ctx):
        if rate.optimizer in _SGD_FAMILY and not rate.mild:
            line = ctx.line(rate.node)
            return Risk(Severity.WARNING, f"{rate.optimizer} runs at lr={rate.value:g} (line {line}, see GH208)",
                        "high-lr")
    option = _CLIP_OPTION.search(ctx.source)
    dest = option.group(1).lstrip("-").replace("-", "_") if option else ""
    # `args.clip` read anywhere (a clip call, `Trainer(gradient_clip_val=args.clip)`) is an
    # option in use; one never read is clipping the author asked for and never got.
    if option and not re.search(rf"\.{dest}\b", ctx.source):
        return Risk(Severity.WARNING, f"the file takes a `{option.group(1)}` option but never reads it",
                    "unread-clip-option")
    kind, why = model_kind(ctx)
    if kind == "recurrent" and not re.search(r"GRU|LSTM", why):
        # An ungated RNN multiplies the backward signal by the same recurrent Jacobian at
        # every time step: Pascanu et al. (2013)'s exploding case, which clipping was made for.
        return Risk(Severity.WARNING, why, "ungated-rnn")
    if kind == "feed-forward":
        return Risk(None, why, kind)
    if kind == "unknown":
        # Only a probe can tell (api.calibrate_clipping): reported when it measures norms that call for clipping.
        return Risk(Severity.INFO, why, kind)
    return Risk(Severity.INFO, f"informational: {why}, the kind of model usually trained with clipping "
                               "(Pascanu et al. 2013; GPT/BERT recipes clip at 1.0)",
                "gated-rnn" if kind == "recurrent" else kind)
