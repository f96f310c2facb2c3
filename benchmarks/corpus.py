"""A deterministic tree of realistic PyTorch training and model files, for benchmarking linters.

    python benchmarks/corpus.py DIR [--files 100] [--seed 0] [--real]

Files are composed from templates with a seeded ``random.Random``: training scripts with
argparse mains, trainer classes, AMP loops with a GradScaler, Lightning-style modules, model
definitions (MLPs, CNNs, transformers, RNNs, VAEs) with their ``nn.init`` calls, data-loading
and utility modules. Names, optimizers, learning rates, loop shapes (epoch/batch nesting,
step-based ``while`` loops, gradient accumulation), clipping placement and ``zero_grad``
placement vary from file to file, so some files carry the training mistakes a static
checker looks for and most do not. Every file is 80-400 lines and is checked to compile.

``--real`` replaces up to half of the files with copies of real source installed next to
this interpreter: ``torch/nn/modules/*.py`` and ``transformers/models/*/modeling_*.py``
(found without importing either package). The same seed, file count and installed
versions always give the same tree.
"""
from __future__ import annotations

import argparse
import importlib.util
import random
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Callable, Optional

MIN_LINES, MAX_LINES = 80, 400


@dataclass(frozen=True)
class CorpusFile:
    path: Path  # relative to the corpus root
    kind: str  # train, trainer, amp, lightning, model, data, utils, or real-torch / real-transformers
    lines: int


def t(source: str, **names: object) -> str:
    """A template block: dedented, ``$name`` placeholders filled (code has no ``$`` of its own)."""
    return Template(textwrap.dedent(source).strip("\n")).substitute(**{k: str(v) for k, v in names.items()})


def indent(lines: list[str], level: int) -> list[str]:
    pad = "    " * level
    return [pad + line if line else "" for line in lines]


# --------------------------------------------------------------------------------------
# Per-file style: the choices a real author makes once and then follows through a file.
# --------------------------------------------------------------------------------------

OPTIMIZERS = {
    # name: (sane literal learning rates, too-high ones, extra keyword arguments)
    "SGD": (["0.1", "0.01", "0.05", "1e-3"], ["5.0", "10.0"], ["momentum=0.9", "momentum=0.9, nesterov=True",
                                                               "momentum=0.9, weight_decay=5e-4"]),
    "Adam": (["1e-3", "3e-4", "5e-4", "1e-4", "2e-4"], ["0.1", "0.05"], ["", "betas=(0.9, 0.999)",
                                                                        "weight_decay=1e-5"]),
    "AdamW": (["3e-4", "1e-4", "5e-5", "2e-5", "6e-4"], ["0.1", "0.5"], ["weight_decay=0.01",
                                                                        "weight_decay=0.05, betas=(0.9, 0.95)"]),
    "RMSprop": (["1e-3", "1e-4", "5e-4"], ["0.1"], ["alpha=0.99", "alpha=0.9, momentum=0.9"]),
    "Adagrad": (["0.01", "0.05"], ["1.0"], ["lr_decay=1e-4", ""]),
}
ACTIVATIONS = ["ReLU", "GELU", "SiLU", "LeakyReLU", "Tanh", "ELU", "Mish"]
CLIP_FUNCS = {
    "torch.nn.utils.clip_grad_norm_": "",
    "nn.utils.clip_grad_norm_": "",
    "clip_grad_norm_": "from torch.nn.utils import clip_grad_norm_",
    "torch.nn.utils.clip_grad_value_": "",
}
PREFIXES = ["Simple", "Deep", "Tiny", "Base", "Residual", "Wide", "Small", "Fast", "Light", "Dense", "Multi",
            "Cond", "Gated", "Sparse", "Robust", "Compact", "Hybrid", "Stacked", "Shallow", "Efficient"]
TASKS = ["cifar", "mnist", "imdb", "tabular", "speech", "tiny_shakespeare", "ag_news", "housing",
         "fashion", "svhn", "wikitext", "sentiment", "criteo", "omniglot", "ecg", "weather"]


@dataclass
class Style:
    rng: random.Random
    optimizer: str
    optim_ref: str  # "torch.optim", "optim" or "" (imported directly)
    lr: str
    opt_extra: str
    opt_var: str
    clip: str  # none, before_step, after_step, before_backward
    clip_func: str
    zero: str  # start, after_step, none, set_to_none, model
    amp: bool
    unscale: bool
    accum: bool
    use_logger: bool
    loop: str  # epoch_function, inline, while_steps
    optim_import: str = ""
    imports: set = field(default_factory=set)
    from_imports: dict = field(default_factory=dict)

    @classmethod
    def draw(cls, rng: random.Random, *, amp: Optional[bool] = None) -> "Style":
        name = rng.choices(list(OPTIMIZERS), weights=[3, 4, 6, 1, 1])[0]
        sane, high, extras = OPTIMIZERS[name]
        lr = rng.choice(high) if rng.random() < 0.08 else rng.choice(sane)
        amp = rng.random() < 0.3 if amp is None else amp
        style = cls(
            rng=rng, optimizer=name, optim_ref=rng.choice(["torch.optim", "torch.optim", "optim", ""]),
            lr=lr, opt_extra=rng.choice(extras), opt_var=rng.choice(["optimizer", "optimizer", "opt"]),
            clip=rng.choices(["none", "before_step", "after_step", "before_backward"], weights=[40, 50, 5, 5])[0],
            clip_func=rng.choice(list(CLIP_FUNCS)),
            zero=rng.choices(["start", "after_step", "none", "set_to_none", "model"], weights=[40, 25, 8, 20, 7])[0],
            amp=amp, unscale=rng.random() < 0.8, accum=rng.random() < 0.25,
            use_logger=rng.random() < 0.5,
            loop=rng.choices(["epoch_function", "inline", "while_steps"], weights=[5, 3, 2])[0],
        )
        style.imports.update({"torch", rng.choice(["torch.nn as nn", "FROM torch:nn"])})
        style.optim_import = rng.choice(["torch.optim as optim", "FROM torch:optim"])
        return style

    def need(self, module: str, *names: str) -> None:
        if names:
            self.from_imports.setdefault(module, set()).update(names)
        else:
            self.imports.add(module)

    def optim_module(self) -> None:
        """Import what the optimizer and scheduler references need, once they are used."""
        if self.optim_ref == "optim":
            self.imports.add(self.optim_import)
        elif self.optim_ref == "torch.optim" and self.optim_import.startswith("torch.optim"):
            self.imports.add("torch.optim")  # some authors spell the submodule import out

    def clip_call(self, params: str, value: str) -> str:
        if CLIP_FUNCS[self.clip_func]:
            self.need("torch.nn.utils", self.clip_func)
        return f"{self.clip_func}({params}, {value})"

    def optimizer_call(self, params: str, lr: Optional[str] = None) -> str:
        self.optim_module()
        if not self.optim_ref:
            self.need("torch.optim", self.optimizer)
        ref = f"{self.optim_ref}.{self.optimizer}" if self.optim_ref else self.optimizer
        extra = f", {self.opt_extra}" if self.opt_extra else ""
        return f"{ref}({params}, lr={lr or self.lr}{extra})"

    def scheduler_ref(self) -> str:
        self.optim_module()
        if self.optim_ref:
            return f"{self.optim_ref}.lr_scheduler"
        self.need("torch.optim", "lr_scheduler")
        return "lr_scheduler"

    def log(self, message: str) -> str:
        return f'logger.info(f"{message}")' if self.use_logger else f'print(f"{message}")'

    def header(self, docstring: str) -> str:
        plain = sorted(self.imports)
        lines = [f'"""{docstring}"""', "from __future__ import annotations", ""]
        std = [m for m in plain if m.split()[0] in STDLIB]
        third = [m for m in plain if m.split()[0] not in STDLIB and not m.startswith("FROM ")]
        lines += [f"import {m}" for m in std]
        if self.use_logger and "logging" not in std:
            lines.append("import logging")
        if std or self.use_logger:
            lines.append("")
        for m in third:
            lines.append(f"import {m}")
        froms = dict(self.from_imports)
        for m in plain:
            if m.startswith("FROM "):
                module, name = m[5:].split(":")
                froms.setdefault(module, set()).add(name)
        for module in sorted(froms):
            lines.append(f"from {module} import {', '.join(sorted(froms[module]))}")
        if self.use_logger:
            lines += ["", "logger = logging.getLogger(__name__)"]
        return "\n".join(lines)


STDLIB = {"argparse", "os", "time", "math", "json", "random", "logging", "csv", "dataclasses", "typing",
          "pathlib", "collections", "shutil", "functools"}


# --------------------------------------------------------------------------------------
# Model definitions
# --------------------------------------------------------------------------------------

def init_body(rng: random.Random, layer: str, activation: str = "relu") -> list[str]:
    """The loop body of a weight-init helper, over ``m`` for the given layer type."""
    kind = rng.choices(["kaiming", "xavier", "normal002", "fan_in", "trunc", "unscaled"],
                       weights=[30, 25, 20, 10, 10, 5])[0]
    weight = {
        "kaiming": f'nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="{activation}")',
        "xavier": "nn.init.xavier_uniform_(m.weight)",
        "normal002": "nn.init.normal_(m.weight, mean=0.0, std=0.02)",
        "fan_in": "nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.weight.shape[1]))",
        "trunc": "nn.init.trunc_normal_(m.weight, std=0.02)",
        "unscaled": rng.choice(["nn.init.normal_(m.weight)", "m.weight.data.normal_(0, 1)"]),
    }[kind]
    return [f"if isinstance(m, {layer}):", f"    {weight}", "    if m.bias is not None:",
            "        nn.init.zeros_(m.bias)"]


def mlp_model(rng: random.Random, style: Style, name: str) -> str:
    style.need("math")
    act = rng.choice(ACTIVATIONS)
    depth = rng.randint(2, 8)
    norm = rng.choice(["nn.LayerNorm(hidden)", "nn.BatchNorm1d(hidden)", None, None])
    norm_line = f"\n            layers.append({norm})" if norm else ""
    inits = "\n".join(indent(init_body(rng, "nn.Linear", "relu" if act != "Tanh" else "tanh"), 3))
    return t('''
        class $name(nn.Module):
            """A $depth-layer perceptron with $act activations$normdoc."""

            def __init__(self, in_features: int = $inp, hidden: int = $hid, num_classes: int = $out,
                         depth: int = $depth, dropout: float = $drop) -> None:
                super().__init__()
                layers: list[nn.Module] = []
                dim = in_features
                for _ in range(depth):
                    layers.append(nn.Linear(dim, hidden))$norm_line
                    layers.append(nn.$act())
                    if dropout > 0:
                        layers.append(nn.Dropout(dropout))
                    dim = hidden
                self.body = nn.Sequential(*layers)
                self.head = nn.Linear(dim, num_classes)
                self.reset_parameters()

            def reset_parameters(self) -> None:
                for m in self.modules():
        $inits

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = x.flatten(1)
                return self.head(self.body(x))
        ''', name=name, depth=depth, act=act, normdoc=f" and {norm.split('(')[0]}" if norm else "",
             inp=rng.choice([16, 32, 64, 784, 3072, 128]), hid=rng.choice([64, 128, 256, 512, 1024]),
             out=rng.choice([1, 2, 10, 100]), drop=rng.choice([0.0, 0.1, 0.2, 0.5]), norm_line=norm_line,
             inits=inits)


def explicit_mlp(rng: random.Random, style: Style, name: str) -> str:
    style.need("torch.nn.functional as F")
    act = rng.choice(["relu", "gelu", "tanh", "sigmoid", "silu"])
    return t('''
        class $name(nn.Module):
            def __init__(self, n_in: int = $inp, n_hidden: int = $hid, n_out: int = $out) -> None:
                super().__init__()
                self.fc1 = nn.Linear(n_in, n_hidden)
                self.fc2 = nn.Linear(n_hidden, n_hidden)
                self.fc3 = nn.Linear(n_hidden, n_hidden // 2)
                self.out = nn.Linear(n_hidden // 2, n_out)
                self.dropout = nn.Dropout($drop)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = F.$act(self.fc1(x))
                x = self.dropout(F.$act(self.fc2(x)))
                x = F.$act(self.fc3(x))
                return self.out(x)
        ''', name=name, act=act, inp=rng.choice([13, 20, 54, 100]), hid=rng.choice([64, 128, 256]),
             out=rng.choice([1, 2, 5]), drop=rng.choice([0.1, 0.25, 0.3]))


def deep_saturating(rng: random.Random, style: Style, name: str) -> str:
    act = rng.choice(["Sigmoid", "Tanh"])
    return t('''
        class $name(nn.Module):
            """Old-school deep net kept for the ablation table."""

            def __init__(self, width: int = $width, depth: int = $depth) -> None:
                super().__init__()
                layers = []
                for _ in range(depth):
                    layers.append(nn.Linear(width, width))
                    layers.append(nn.$act())
                self.body = nn.Sequential(*layers)
                self.head = nn.Linear(width, 1)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.head(self.body(x))
        ''', name=name, act=act, width=rng.choice([32, 64, 128]), depth=rng.randint(6, 12))


def cnn_model(rng: random.Random, style: Style, name: str) -> str:
    style.need("math")
    widths = rng.choice([(32, 64, 128), (64, 128, 256), (16, 32, 64, 128), (64, 128, 256, 512)])
    blocks = rng.randint(1, 3)
    return t('''
        class ConvBNAct(nn.Sequential):
            def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1) -> None:
                super().__init__(
                    nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                )


        class ResidualBlock(nn.Module):
            def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
                super().__init__()
                self.conv1 = ConvBNAct(c_in, c_out, stride=stride)
                self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(c_out)
                self.shortcut = nn.Identity()
                if stride != 1 or c_in != c_out:
                    self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                                  nn.BatchNorm2d(c_out))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                out = self.bn2(self.conv2(self.conv1(x)))
                return torch.relu(out + self.shortcut(x))


        class $name(nn.Module):
            def __init__(self, in_channels: int = $cin, num_classes: int = $out,
                         widths: tuple[int, ...] = $widths, blocks_per_stage: int = $blocks) -> None:
                super().__init__()
                self.stem = ConvBNAct(in_channels, widths[0])
                stages = []
                c_in = widths[0]
                for i, c_out in enumerate(widths):
                    for j in range(blocks_per_stage):
                        stride = 2 if (j == 0 and i > 0) else 1
                        stages.append(ResidualBlock(c_in, c_out, stride))
                        c_in = c_out
                self.stages = nn.Sequential(*stages)
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.fc = nn.Linear(c_in, num_classes)
                self._init_weights()

            def _init_weights(self) -> None:
                for m in self.modules():
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                        nn.init.constant_(m.weight, 1)
                        nn.init.constant_(m.bias, 0)
                    elif isinstance(m, nn.Linear):
                        nn.init.$lin_init
                        nn.init.zeros_(m.bias)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = self.stages(self.stem(x))
                return self.fc(torch.flatten(self.pool(x), 1))
        ''', name=name, cin=rng.choice([1, 3]), out=rng.choice([10, 100, 200]), widths=widths, blocks=blocks,
             lin_init=rng.choice(["normal_(m.weight, 0, 0.01)", "xavier_uniform_(m.weight)",
                                  "kaiming_uniform_(m.weight, a=math.sqrt(5))"]))


def transformer_model(rng: random.Random, style: Style, name: str) -> str:
    style.need("math")
    style.need("torch.nn.functional as F")
    tied = rng.random() < 0.6
    return t('''
        class CausalSelfAttention(nn.Module):
            def __init__(self, d_model: int, n_head: int, dropout: float = 0.1) -> None:
                super().__init__()
                assert d_model % n_head == 0, "d_model must be divisible by n_head"
                self.n_head = n_head
                self.qkv = nn.Linear(d_model, 3 * d_model)
                self.proj = nn.Linear(d_model, d_model)
                self.dropout = nn.Dropout(dropout)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                B, T, C = x.shape
                q, k, v = self.qkv(x).split(C, dim=2)
                q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                mask = torch.ones(T, T, device=x.device, dtype=torch.bool).tril()
                att = att.masked_fill(~mask, float("-inf"))
                att = self.dropout(F.softmax(att, dim=-1))
                y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
                return self.proj(y)


        class Block(nn.Module):
            def __init__(self, d_model: int, n_head: int, dropout: float) -> None:
                super().__init__()
                self.ln1 = nn.LayerNorm(d_model)
                self.attn = CausalSelfAttention(d_model, n_head, dropout)
                self.ln2 = nn.LayerNorm(d_model)
                self.mlp = nn.Sequential(
                    nn.Linear(d_model, 4 * d_model),
                    nn.GELU(),
                    nn.Linear(4 * d_model, d_model),
                    nn.Dropout(dropout),
                )

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = x + self.attn(self.ln1(x))
                return x + self.mlp(self.ln2(x))


        class $name(nn.Module):
            def __init__(self, vocab_size: int = $vocab, block_size: int = $block, d_model: int = $d,
                         n_head: int = $heads, n_layer: int = $layers, dropout: float = 0.1) -> None:
                super().__init__()
                self.block_size = block_size
                self.tok_emb = nn.Embedding(vocab_size, d_model)
                self.pos_emb = nn.Embedding(block_size, d_model)
                self.drop = nn.Dropout(dropout)
                self.blocks = nn.ModuleList([Block(d_model, n_head, dropout) for _ in range(n_layer)])
                self.ln_f = nn.LayerNorm(d_model)
                self.lm_head = nn.Linear(d_model, vocab_size, bias=False)$tie
                self.apply(self._init_weights)
                for pn, p in self.named_parameters():
                    if pn.endswith("proj.weight"):
                        nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

            def _init_weights(self, module: nn.Module) -> None:
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, mean=0.0, std=0.02)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.Embedding):
                    nn.init.normal_(module.weight, mean=0.0, std=$emb_std)

            def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
                B, T = idx.shape
                assert T <= self.block_size, f"sequence of {T} longer than block size {self.block_size}"
                pos = torch.arange(T, device=idx.device)
                x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
                for block in self.blocks:
                    x = block(x)
                logits = self.lm_head(self.ln_f(x))
                loss = None
                if targets is not None:
                    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
                return logits, loss

            @torch.no_grad()
            def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0) -> torch.Tensor:
                for _ in range(max_new_tokens):
                    idx_cond = idx[:, -self.block_size:]
                    logits, _ = self(idx_cond)
                    probs = F.softmax(logits[:, -1, :] / temperature, dim=-1)
                    idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
                return idx
        ''', name=name, vocab=rng.choice([65, 256, 5000, 32000, 50257]), block=rng.choice([64, 128, 256, 1024]),
             d=rng.choice([128, 256, 384, 512]), heads=rng.choice([4, 8]), layers=rng.randint(2, 12),
             tie="\n        self.tok_emb.weight = self.lm_head.weight" if tied else "",
             emb_std=rng.choice(["0.02", "0.02", "1.0"]))


def encoder_transformer(rng: random.Random, style: Style, name: str) -> str:
    style.need("math")
    return t('''
        class PositionalEncoding(nn.Module):
            def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.1) -> None:
                super().__init__()
                self.dropout = nn.Dropout(p=dropout)
                position = torch.arange(max_len).unsqueeze(1)
                div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
                pe = torch.zeros(max_len, 1, d_model)
                pe[:, 0, 0::2] = torch.sin(position * div_term)
                pe[:, 0, 1::2] = torch.cos(position * div_term)
                self.register_buffer("pe", pe)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.dropout(x + self.pe[: x.size(0)])


        class $name(nn.Module):
            def __init__(self, ntoken: int = $vocab, d_model: int = $d, nhead: int = $heads, d_hid: int = $hid,
                         nlayers: int = $layers, num_classes: int = $out, dropout: float = 0.2) -> None:
                super().__init__()
                self.d_model = d_model
                self.embedding = nn.Embedding(ntoken, d_model)
                self.pos_encoder = PositionalEncoding(d_model, dropout=dropout)
                layer = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout, norm_first=$norm_first)
                self.encoder = nn.TransformerEncoder(layer, nlayers)
                self.classifier = nn.Linear(d_model, num_classes)
                self.init_weights()

            def init_weights(self) -> None:
                initrange = 0.1
                self.embedding.weight.data.uniform_(-initrange, initrange)
                self.classifier.bias.data.zero_()
                self.classifier.weight.data.uniform_(-initrange, initrange)

            def forward(self, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
                x = self.embedding(src) * math.sqrt(self.d_model)
                x = self.pos_encoder(x)
                x = self.encoder(x, src_key_padding_mask=src_key_padding_mask)
                return self.classifier(x.mean(dim=0))
        ''', name=name, vocab=rng.choice([10000, 20000, 30522]), d=rng.choice([128, 256, 512]),
             heads=rng.choice([2, 4, 8]), hid=rng.choice([512, 1024, 2048]), layers=rng.randint(2, 6),
             out=rng.choice([2, 4, 20]), norm_first=rng.choice(["True", "False"]))


def rnn_model(rng: random.Random, style: Style, name: str) -> str:
    cell = rng.choice(["LSTM", "GRU", "LSTM", "RNN"])
    bidir = rng.choice(["True", "False"])
    forget = "\n".join(indent([
        "if \"bias_hh\" in name:",
        "    n = param.size(0)",
        "    param.data[n // 4: n // 2].fill_(1.0)  # forget-gate bias",
    ], 4)) if cell == "LSTM" else ""
    return t('''
        class $name(nn.Module):
            def __init__(self, vocab_size: int = $vocab, embed_dim: int = $emb, hidden_size: int = $hid,
                         num_layers: int = $layers, num_classes: int = $out, bidirectional: bool = $bidir,
                         dropout: float = 0.3) -> None:
                super().__init__()
                self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
                self.rnn = nn.$cell(embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
                                    bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
                directions = 2 if bidirectional else 1
                self.dropout = nn.Dropout(dropout)
                self.fc = nn.Linear(hidden_size * directions, num_classes)
                self._init_rnn()

            def _init_rnn(self) -> None:
                for name, param in self.rnn.named_parameters():
                    if "weight_ih" in name:
                        nn.init.xavier_uniform_(param.data)
                    elif "weight_hh" in name:
                        nn.init.orthogonal_(param.data)
                    elif "bias" in name:
                        param.data.zero_()
        $forget

            def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
                embedded = self.dropout(self.embedding(tokens))
                if lengths is not None:
                    packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                                               enforce_sorted=False)
                    output, _ = self.rnn(packed)
                    output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True)
                else:
                    output, _ = self.rnn(embedded)
                pooled = output.max(dim=1).values
                return self.fc(self.dropout(pooled))
        ''', name=name, cell=cell, bidir=bidir, forget=forget, vocab=rng.choice([5000, 20000, 50000]),
             emb=rng.choice([100, 128, 300]), hid=rng.choice([128, 256, 512]), layers=rng.randint(1, 3),
             out=rng.choice([2, 5, 10]))


def vae_model(rng: random.Random, style: Style, name: str) -> str:
    style.need("torch.nn.functional as F")
    return t('''
        class $name(nn.Module):
            """Variational autoencoder with a Gaussian posterior and a Bernoulli decoder."""

            def __init__(self, input_dim: int = $inp, hidden_dim: int = $hid, latent_dim: int = $lat) -> None:
                super().__init__()
                self.encoder = nn.Sequential(
                    nn.Linear(input_dim, hidden_dim), nn.ReLU(),
                    nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                )
                self.fc_mu = nn.Linear(hidden_dim, latent_dim)
                self.fc_logvar = nn.Linear(hidden_dim, latent_dim)
                self.decoder = nn.Sequential(
                    nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                    nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                    nn.Linear(hidden_dim, input_dim),
                )

            def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
                std = torch.exp(0.5 * logvar)
                return mu + torch.randn_like(std) * std

            def forward(self, x: torch.Tensor):
                h = self.encoder(x.flatten(1))
                mu, logvar = self.fc_mu(h), self.fc_logvar(h)
                z = self.reparameterize(mu, logvar)
                return self.decoder(z), mu, logvar


        def vae_loss(recon_logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                     beta: float = $beta) -> torch.Tensor:
            recon = F.binary_cross_entropy_with_logits(recon_logits, x.flatten(1), reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            return (recon + beta * kld) / x.size(0)
        ''', name=name, inp=rng.choice([784, 1024]), hid=rng.choice([256, 400, 512]), lat=rng.choice([2, 16, 32]),
             beta=rng.choice(["1.0", "0.5", "4.0"]))


MODELS: dict[str, Callable[[random.Random, Style, str], str]] = {
    "mlp": mlp_model, "explicit_mlp": explicit_mlp, "cnn": cnn_model, "gpt": transformer_model,
    "encoder": encoder_transformer, "rnn": rnn_model, "vae": vae_model, "deep_saturating": deep_saturating,
}
MODEL_WEIGHTS = [20, 8, 18, 14, 10, 16, 6, 3]
MODEL_SUFFIX = {"mlp": "MLP", "explicit_mlp": "Net", "cnn": "CNN", "gpt": "GPT", "encoder": "TransformerClassifier",
                "rnn": "RNNClassifier", "vae": "VAE", "deep_saturating": "SigmoidNet"}


def pick_model(rng: random.Random) -> tuple[str, str]:
    kind = rng.choices(list(MODELS), weights=MODEL_WEIGHTS)[0]
    return kind, rng.choice(PREFIXES) + MODEL_SUFFIX[kind]


# --------------------------------------------------------------------------------------
# Training code
# --------------------------------------------------------------------------------------

def step_lines(s: Style, model: str, opt: str, scaler: str, loss: str, sched: Optional[str]) -> list[str]:
    """Backward, clipping, optimizer step and zero_grad, in the style's order."""
    clip_arg = "max_norm" if "norm" in s.clip_func else "clip_value"
    clip = s.clip_call(f"{model}.parameters()", clip_arg) if s.clip in ("before_step", "after_step") else ""
    zero = {"start": None, "none": None, "after_step": f"{opt}.zero_grad()",
            "set_to_none": f"{opt}.zero_grad(set_to_none=True)", "model": f"{model}.zero_grad()"}[s.zero]
    backward = f"{scaler}.scale({loss}).backward()" if s.amp else f"{loss}.backward()"
    out = [backward]
    update: list[str] = []
    if s.amp and s.unscale and s.clip in ("before_step", "after_step"):
        update.append(f"{scaler}.unscale_({opt})")
    if s.clip == "before_step":
        update.append(clip)
    update += [f"{scaler}.step({opt})", f"{scaler}.update()"] if s.amp else [f"{opt}.step()"]
    if s.clip == "after_step":
        update.append(clip)
    if sched:
        update.append(f"{sched}.step()")
    if zero:
        update.append(zero)
    if s.accum:
        out += ["if (step + 1) % accum_steps == 0:", *indent(update, 1)]
    else:
        out += update
    return out


def forward_lines(s: Style, model: str, criterion: str, device: str) -> list[str]:
    fwd = [f"outputs = {model}(inputs)", f"loss = {criterion}(outputs, targets)"]
    if s.amp:
        ctx = s.rng.choice([f'torch.autocast(device_type={device}.type, dtype=torch.float16)',
                            "torch.cuda.amp.autocast()", 'torch.autocast("cuda", enabled=use_amp)'])
        fwd = [f"with {ctx}:", *indent(fwd, 1)]
    if s.accum:
        fwd.append("loss = loss / accum_steps")
    return fwd


def batch_body(s: Style, model: str, opt: str, scaler: str, criterion: str, device: str,
               sched: Optional[str], epoch: str) -> list[str]:
    rng = s.rng
    lines = []
    if rng.random() < 0.5:
        lines += [f"inputs = inputs.to({device}, non_blocking=True)",
                  f"targets = targets.to({device}, non_blocking=True)"]
    else:
        lines += [f"inputs, targets = inputs.to({device}), targets.to({device})"]
    if s.zero == "start":
        lines.append(rng.choice([f"{opt}.zero_grad()", f"{opt}.zero_grad(set_to_none=True)"]))
    if s.clip == "before_backward":
        lines.append(s.clip_call(f"{model}.parameters()", "1.0"))
    lines += forward_lines(s, model, criterion, device)
    lines += step_lines(s, model, opt, scaler, "loss", sched)
    lines += ["", "batch_size = inputs.size(0)", "running_loss += loss.item() * batch_size",
              "seen += batch_size"]
    if rng.random() < 0.6:
        lines += ["if outputs.dim() > 1:",
                  "    correct += (outputs.argmax(dim=1) == targets).sum().item()"]
    lines += ["if step % log_every == 0:",
              "    " + s.log(f"epoch {{{epoch}}} step {{step}}/{{len(loader)}} loss {{loss.item():.4f}} "
                              f"lr {{{opt}.param_groups[0]['lr']:.2e}}")]
    return lines


def train_epoch_function(s: Style, fname: str, *, method: bool = False) -> str:
    """``def train_one_epoch(...)`` or ``def train_epoch(self, ...)`` over one pass of the loader."""
    p = "self." if method else ""
    model, opt, scaler, criterion, device = (f"{p}model", f"{p}{s.opt_var if not method else 'optimizer'}",
                                             f"{p}scaler", f"{p}criterion", f"{p}device")
    args = ["self", "loader", "epoch"] if method else \
        ["model", "loader", s.opt_var, "criterion", "device", "epoch"] + (["scaler"] if s.amp else [])
    args += ["log_every: int = 50"] + (["accum_steps: int = 4"] if s.accum else []) + \
        (["max_norm: float = 1.0"] if s.clip in ("before_step", "after_step") and "norm" in s.clip_func else []) + \
        (["clip_value: float = 0.5"] if s.clip in ("before_step", "after_step") and "norm" not in s.clip_func else [])
    body = ['"""One pass over ``loader``; returns mean loss and accuracy."""', f"{model}.train()",
            "running_loss, correct, seen = 0.0, 0, 0", "start = time.time()"]
    if s.amp and not method:
        body.append("use_amp = scaler.is_enabled()")
    elif s.amp:
        body.append("use_amp = self.scaler.is_enabled()")
    if s.zero == "none" and s.rng.random() < 0.5:
        body.append(f"{opt}.zero_grad()")
    body.append("for step, (inputs, targets) in enumerate(loader):")
    body += indent(batch_body(s, model, opt, scaler, criterion, device, None, "epoch"), 1)
    body += ["elapsed = time.time() - start",
             s.log("epoch {epoch} done in {elapsed:.1f}s ({seen / max(elapsed, 1e-9):.0f} samples/s)"),
             "return running_loss / max(seen, 1), correct / max(seen, 1)"]
    s.need("time")
    sig = f"def {fname}({', '.join(args)}):"
    return "\n".join([sig, *indent(body, 1)])


def evaluate_function(s: Style, *, method: bool = False) -> str:
    p = "self." if method else ""
    args = "self, loader" if method else "model, loader, criterion, device"
    return t('''
        @torch.no_grad()
        def evaluate($args):
            ${p}model.eval()
            total_loss, correct, seen = 0.0, 0, 0
            for inputs, targets in loader:
                inputs, targets = inputs.to(${p}device), targets.to(${p}device)
                outputs = ${p}model(inputs)
                total_loss += ${p}criterion(outputs, targets).item() * inputs.size(0)
                if outputs.dim() > 1:
                    correct += (outputs.argmax(dim=1) == targets).sum().item()
                seen += inputs.size(0)
            return total_loss / max(seen, 1), correct / max(seen, 1)
        ''', args=args, p=p)


def scaler_ctor(s: Style, enabled: str) -> str:
    if s.rng.random() < 0.5:
        return f"torch.cuda.amp.GradScaler(enabled={enabled})"
    return f'torch.amp.GradScaler("cuda", enabled={enabled})'


def scheduler_ctor(s: Style, opt: str, epochs: str) -> str:
    ref = s.scheduler_ref()
    return s.rng.choice([
        f"{ref}.CosineAnnealingLR({opt}, T_max={epochs})",
        f"{ref}.StepLR({opt}, step_size=30, gamma=0.1)",
        f"{ref}.MultiStepLR({opt}, milestones=[60, 120, 160], gamma=0.2)",
        f"{ref}.ExponentialLR({opt}, gamma=0.97)",
    ])


def loop_locals(s: Style) -> list[str]:
    """Names an epoch function takes as parameters, bound as locals for a loop inlined in main."""
    lines = ["loader = train_loader", "log_every = args.log_every"]
    if s.accum:
        lines.append("accum_steps = 4")
    if s.clip in ("before_step", "after_step"):
        lines.append("max_norm = clip_value = args.grad_clip")
    return lines


def while_steps_main_loop(s: Style) -> list[str]:
    """A step-based loop in main: ``while step < max_steps`` with a restartable iterator."""
    opt = s.opt_var
    lines = ["data_iter = iter(train_loader)", "step = 0", "running_loss, correct, seen = 0.0, 0, 0",
             "epoch = 0", *loop_locals(s), "model.train()", "while step < args.max_steps:",
             "    try:", "        inputs, targets = next(data_iter)", "    except StopIteration:",
             "        epoch += 1", "        data_iter = iter(train_loader)",
             "        inputs, targets = next(data_iter)"]
    lines += indent(batch_body(s, "model", opt, "scaler", "criterion", "device", None, "epoch"), 1)
    lines += ["    step += 1", "    if step % args.eval_every == 0:",
              "        val_loss, val_acc = evaluate(model, val_loader, criterion, device)",
              "        " + s.log("step {step}: val_loss={val_loss:.4f} val_acc={val_acc:.3f}"),
              "        model.train()"]
    return lines


def parse_args_function(s: Style, model_name: str) -> str:
    rng = s.rng
    s.need("argparse")
    options = [
        ('"--data-dir"', 'type=str, default="./data"', "where the dataset lives"),
        ('"--epochs"', f"type=int, default={rng.choice([10, 20, 50, 90, 200])}", "number of epochs"),
        ('"--batch-size"', f"type=int, default={rng.choice([32, 64, 128, 256])}", "mini-batch size"),
        ('"--lr"', f"type=float, default={s.lr}", "peak learning rate"),
        ('"--weight-decay"', f"type=float, default={rng.choice(['0.0', '1e-4', '5e-4', '0.01'])}", "L2 penalty"),
        ('"--seed"', "type=int, default=42", "random seed"),
        ('"--num-workers"', "type=int, default=4", "data loader workers"),
        ('"--output-dir"', f'type=str, default="runs/{model_name.lower()}"', "checkpoints and logs"),
        ('"--log-every"', "type=int, default=50", "log every N steps"),
        ('"--max-steps"', f"type=int, default={rng.choice([1000, 5000, 20000])}", "stop after N optimizer steps"),
        ('"--eval-every"', "type=int, default=500", "evaluate every N steps"),
        ('"--amp"', 'action="store_true"', "mixed precision"),
        ('"--resume"', "type=str, default=None", "checkpoint to resume from"),
        ('"--grad-clip"', "type=float, default=1.0", "max gradient norm"),
        ('"--warmup-steps"', "type=int, default=500", "linear warmup steps"),
        ('"--hidden-size"', f"type=int, default={rng.choice([128, 256, 512])}", "hidden width"),
        ('"--dropout"', "type=float, default=0.1", "dropout probability"),
        ('"--val-fraction"', "type=float, default=0.1", "held-out fraction"),
    ]
    lines = ["def parse_args() -> argparse.Namespace:",
             f'    parser = argparse.ArgumentParser(description="Train {model_name}.")']
    for flag, rest, help_ in options:
        lines.append(f'    parser.add_argument({flag}, {rest}, help="{help_}")')
    lines.append("    return parser.parse_args()")
    return "\n".join(lines)


def main_function(s: Style, model_name: str, epoch_fn: Optional[str]) -> str:
    rng = s.rng
    opt = s.opt_var
    s.need("os")
    lines = ["def main() -> None:", "    args = parse_args()", "    set_seed(args.seed)",
             '    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")',
             "    os.makedirs(args.output_dir, exist_ok=True)",
             "    train_loader, val_loader = build_dataloaders(args)",
             f"    model = {model_name}().to(device)",
             '    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")']
    lr = "args.lr" if rng.random() < 0.6 else None
    lines.append(f"    {opt} = {s.optimizer_call('model.parameters()', lr)}")
    lines.append(f"    scheduler = {scheduler_ctor(s, opt, 'args.epochs')}")
    lines.append("    criterion = nn.CrossEntropyLoss(" + rng.choice(["", "label_smoothing=0.1"]) + ")")
    if s.amp:
        lines.append(f"    scaler = {scaler_ctor(s, 'args.amp')}")
        lines.append("    use_amp = args.amp")
    lines += ["    start_epoch, best_acc = 1, 0.0", "    if args.resume:",
              f"        start_epoch = load_checkpoint(args.resume, model, {opt}) + 1"]
    if s.loop == "while_steps":
        lines += indent(while_steps_main_loop(s), 1)
        lines += ['    torch.save(model.state_dict(), os.path.join(args.output_dir, "final.pt"))']
    else:
        lines.append("    for epoch in range(start_epoch, args.epochs + 1):")
        if s.loop == "inline" or epoch_fn is None:
            lines += ["        model.train()", "        running_loss, correct, seen = 0.0, 0, 0",
                      *indent(loop_locals(s), 2)]
            lines.append("        for step, (inputs, targets) in enumerate(train_loader):")
            lines += indent(batch_body(s, "model", opt, "scaler", "criterion", "device", None, "epoch"), 3)
            lines.append("        train_loss, train_acc = running_loss / max(seen, 1), correct / max(seen, 1)")
        else:
            call_args = ["model", "train_loader", opt, "criterion", "device", "epoch"] + (["scaler"] if s.amp else [])
            lines.append(f"        train_loss, train_acc = {epoch_fn}({', '.join(call_args)})")
        lines += ["        val_loss, val_acc = evaluate(model, val_loader, criterion, device)",
                  "        scheduler.step()",
                  "        " + s.log("epoch {epoch}: train_loss={train_loss:.4f} train_acc={train_acc:.3f} "
                                     "val_loss={val_loss:.4f} val_acc={val_acc:.3f}"),
                  "        is_best = val_acc > best_acc", "        best_acc = max(best_acc, val_acc)",
                  f'        save_checkpoint({{"epoch": epoch, "model": model.state_dict(), '
                  f'"optimizer": {opt}.state_dict(), "best_acc": best_acc}}, args.output_dir, is_best)']
    lines.append("    " + s.log("best validation accuracy {best_acc:.4f}" if s.loop != "while_steps"
                                else "finished after {step} steps"))
    return "\n".join(lines)


def trainer_class(s: Style, model_name: str) -> str:
    """A Trainer class: optimizer/scheduler/scaler built in __init__, epoch method, fit loop."""
    rng = s.rng
    s.need("os")
    name = rng.choice(["Trainer", "SupervisedTrainer", "Runner", "Engine", "Learner"])
    init = [f"class {name}:", f'    """Owns the model, optimizer and loop for {model_name}."""', "",
            "    def __init__(self, model: nn.Module, train_loader, val_loader, config: TrainConfig) -> None:",
            "        self.config = config",
            '        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")',
            "        self.model = model.to(self.device)", "        self.train_loader = train_loader",
            "        self.val_loader = val_loader", "        self.criterion = nn.CrossEntropyLoss()"]
    if rng.random() < 0.5:
        init += ['        decay, no_decay = [], []', '        for n, p in self.model.named_parameters():',
                 '            (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)',
                 '        groups = [{"params": decay, "weight_decay": config.weight_decay},',
                 '                  {"params": no_decay, "weight_decay": 0.0}]',
                 f"        self.optimizer = {s.optimizer_call('groups', 'config.lr' if rng.random() < 0.5 else None)}"]
    else:
        init.append(f"        self.optimizer = {s.optimizer_call('self.model.parameters()')}")
    init.append(f"        self.scheduler = {scheduler_ctor(s, 'self.optimizer', 'config.epochs')}")
    if s.amp:
        init.append(f"        self.scaler = {scaler_ctor(s, 'config.amp')}")
    init += ["        self.epoch = 0", "        self.best_metric = float(\"-inf\")",
             "        self.history: list[dict] = []"]
    s_method = Style(**{**s.__dict__, "opt_var": "optimizer"})
    epoch = train_epoch_function(s_method, "train_epoch", method=True)
    if s.accum:
        epoch = epoch.replace("accum_steps: int = 4", "accum_steps: int = 2")
    ev = evaluate_function(s, method=True)
    fit = t('''
        def fit(self) -> dict:
            for epoch in range(self.epoch, self.config.epochs):
                self.epoch = epoch
                train_loss, train_acc = self.train_epoch(self.train_loader, epoch)
                val_loss, val_acc = self.evaluate(self.val_loader)
                self.scheduler.step()
                record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                          "val_loss": val_loss, "val_acc": val_acc, "lr": self.optimizer.param_groups[0]["lr"]}
                self.history.append(record)
                if val_acc > self.best_metric:
                    self.best_metric = val_acc
                    self.save(os.path.join(self.config.output_dir, "best.pt"))
            return {"best_val_acc": self.best_metric, "epochs": len(self.history)}

        def save(self, path: str) -> None:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                        "epoch": self.epoch, "best_metric": self.best_metric}, path)

        def load(self, path: str) -> None:
            state = torch.load(path, map_location=self.device)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.epoch = state["epoch"] + 1
            self.best_metric = state.get("best_metric", float("-inf"))
        ''')
    return "\n".join(init + [""] + indent(epoch.splitlines(), 1) + [""] + indent(ev.splitlines(), 1) + [""]
                     + indent(fit.splitlines(), 1))


def train_config_dataclass(s: Style) -> str:
    s.need("dataclasses", "dataclass")
    return t('''
        @dataclass
        class TrainConfig:
            epochs: int = $epochs
            batch_size: int = $bs
            lr: float = $lr
            weight_decay: float = $wd
            amp: bool = $amp
            grad_clip: float = 1.0
            num_workers: int = 4
            output_dir: str = "checkpoints"
            seed: int = 0
        ''', epochs=s.rng.choice([10, 30, 100]), bs=s.rng.choice([32, 64, 128]), lr=s.lr,
             wd=s.rng.choice(["0.0", "0.01", "0.05"]), amp=str(s.amp))


def lightning_module(s: Style, model_name: str) -> str:
    rng = s.rng
    s.need("pytorch_lightning as pl")
    manual = rng.random() < 0.3
    clip_manual = "\n    self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm=\"norm\")" \
        if rng.random() < 0.6 else ""
    if manual:
        step = t('''
            def training_step(self, batch, batch_idx):
                opt = self.optimizers()
                x, y = batch
                logits = self(x)
                loss = self.criterion(logits, y)
                opt.zero_grad()
                self.manual_backward(loss)$clip
                opt.step()
                self.log("train/loss", loss, prog_bar=True)
                return loss
            ''', clip=clip_manual)
    else:
        step = t('''
            def training_step(self, batch, batch_idx):
                x, y = batch
                logits = self(x)
                loss = self.criterion(logits, y)
                acc = (logits.argmax(dim=-1) == y).float().mean()
                self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
                self.log("train/acc", acc, on_epoch=True)
                return loss
            ''')
    body = t('''
        class Lit$model(pl.LightningModule):
            def __init__(self, lr: float = $lr, weight_decay: float = $wd, warmup_epochs: int = $warm) -> None:
                super().__init__()
                self.save_hyperparameters()
                self.model = $model()
                self.criterion = nn.CrossEntropyLoss()$manual_flag

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.model(x)

        $step

            def validation_step(self, batch, batch_idx):
                x, y = batch
                logits = self(x)
                loss = self.criterion(logits, y)
                acc = (logits.argmax(dim=-1) == y).float().mean()
                self.log_dict({"val/loss": loss, "val/acc": acc}, prog_bar=True, sync_dist=True)

            def test_step(self, batch, batch_idx):
                x, y = batch
                acc = (self(x).argmax(dim=-1) == y).float().mean()
                self.log("test/acc", acc)

            def configure_optimizers(self):
                optimizer = $ctor
                scheduler = $sched
                return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        ''', model=model_name, lr=s.lr, wd=rng.choice(["0.0", "0.01", "1e-4"]), warm=rng.choice([0, 1, 5]),
             manual_flag="\n        self.automatic_optimization = False" if manual else "",
             step="\n".join(indent(step.splitlines(), 1)),
             ctor=s.optimizer_call("self.parameters()", rng.choice(["self.hparams.lr", s.lr])),
             sched=scheduler_ctor(s, "optimizer", "self.trainer.max_epochs"))
    return body


def lightning_datamodule(s: Style) -> str:
    s.need("torch.utils.data", "DataLoader", "TensorDataset", "random_split")
    return t('''
        class RandomDataModule(pl.LightningDataModule):
            def __init__(self, batch_size: int = $bs, num_samples: int = 10000, num_features: int = $feat,
                         num_classes: int = 10) -> None:
                super().__init__()
                self.save_hyperparameters()

            def setup(self, stage: str | None = None) -> None:
                g = torch.Generator().manual_seed(0)
                x = torch.randn(self.hparams.num_samples, self.hparams.num_features, generator=g)
                y = torch.randint(0, self.hparams.num_classes, (self.hparams.num_samples,), generator=g)
                full = TensorDataset(x, y)
                n_val = len(full) // 10
                self.train_set, self.val_set = random_split(full, [len(full) - n_val, n_val], generator=g)

            def train_dataloader(self) -> DataLoader:
                return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True, num_workers=2)

            def val_dataloader(self) -> DataLoader:
                return DataLoader(self.val_set, batch_size=self.hparams.batch_size, num_workers=2)
        ''', bs=s.rng.choice([32, 64, 256]), feat=s.rng.choice([32, 64, 784]))


def lightning_main(s: Style, model_name: str) -> str:
    rng = s.rng
    clip = rng.choice(["gradient_clip_val=1.0, ", "gradient_clip_val=0.5, gradient_clip_algorithm=\"value\", ", ""])
    precision = rng.choice(['"16-mixed"', '"bf16-mixed"', "32"])
    return t('''
        def main() -> None:
            pl.seed_everything($seed, workers=True)
            dm = RandomDataModule()
            model = Lit$model()
            trainer = pl.Trainer(max_epochs=$epochs, accelerator="auto", devices=1, precision=$precision,
                                 ${clip}log_every_n_steps=$log, deterministic=True)
            trainer.fit(model, datamodule=dm)
            trainer.validate(model, datamodule=dm)


        if __name__ == "__main__":
            main()
        ''', seed=rng.randint(0, 9999), model=model_name, epochs=rng.choice([5, 20, 100]), precision=precision,
             clip=clip, log=rng.choice([10, 50]))


# --------------------------------------------------------------------------------------
# Data loading and utilities
# --------------------------------------------------------------------------------------

DATASET_ARGS = {"synthetic": "seed=args.seed", "csv": 'os.path.join(args.data_dir, "train.csv")',
                "numpy": "args.data_dir"}


def dataset_block(s: Style, name: str, kind: Optional[str] = None) -> str:
    rng = s.rng
    kind = kind or rng.choice(["synthetic", "csv", "text", "numpy"])
    s.need("torch.utils.data", "DataLoader", "Dataset")
    if kind == "synthetic":
        return t('''
            class $name(Dataset):
                """Gaussian blobs: a stand-in until the real data pipeline lands."""

                def __init__(self, num_samples: int = $n, num_features: int = $f, num_classes: int = $c,
                             seed: int = 0) -> None:
                    g = torch.Generator().manual_seed(seed)
                    centers = torch.randn(num_classes, num_features, generator=g) * 3
                    self.targets = torch.randint(0, num_classes, (num_samples,), generator=g)
                    self.data = centers[self.targets] + torch.randn(num_samples, num_features, generator=g)

                def __len__(self) -> int:
                    return len(self.targets)

                def __getitem__(self, idx: int):
                    return self.data[idx], self.targets[idx]
            ''', name=name, n=rng.choice([1000, 5000, 60000]), f=rng.choice([16, 32, 784]), c=rng.choice([2, 10]))
    if kind == "csv":
        s.need("csv")
        return t('''
            class $name(Dataset):
                """Rows of a CSV file: feature columns, then the label in column ``$label``."""

                def __init__(self, path: str, label_column: str = "$label", normalize: bool = True) -> None:
                    with open(path, newline="") as f:
                        rows = list(csv.DictReader(f))
                    if not rows:
                        raise ValueError(f"{path} has no rows")
                    self.feature_names = [k for k in rows[0] if k != label_column]
                    features = [[float(r[k]) for k in self.feature_names] for r in rows]
                    self.features = torch.tensor(features, dtype=torch.float32)
                    self.labels = torch.tensor([int(r[label_column]) for r in rows], dtype=torch.long)
                    if normalize:
                        mean = self.features.mean(dim=0, keepdim=True)
                        std = self.features.std(dim=0, keepdim=True).clamp_min(1e-6)
                        self.features = (self.features - mean) / std

                def __len__(self) -> int:
                    return self.features.shape[0]

                def __getitem__(self, idx: int):
                    return self.features[idx], self.labels[idx]
            ''', name=name, label=rng.choice(["label", "target", "y", "class"]))
    if kind == "numpy":
        s.need("numpy as np")
        s.need("os")
        return t('''
            class $name(Dataset):
                def __init__(self, root: str, split: str = "train", transform=None) -> None:
                    self.images = np.load(os.path.join(root, f"{split}_images.npy"), mmap_mode="r")
                    self.labels = np.load(os.path.join(root, f"{split}_labels.npy"))
                    self.transform = transform

                def __len__(self) -> int:
                    return len(self.labels)

                def __getitem__(self, idx: int):
                    image = torch.from_numpy(np.asarray(self.images[idx], dtype=np.float32) / 255.0)
                    if image.ndim == 2:
                        image = image.unsqueeze(0)
                    if self.transform is not None:
                        image = self.transform(image)
                    return image, int(self.labels[idx])
            ''', name=name)
    s.need("collections", "Counter")
    return t('''
        class Vocab:
            def __init__(self, texts, min_freq: int = $minf, specials=("<pad>", "<unk>")) -> None:
                counts = Counter(tok for text in texts for tok in text.lower().split())
                self.itos = list(specials) + sorted(t for t, c in counts.items() if c >= min_freq)
                self.stoi = {t: i for i, t in enumerate(self.itos)}

            def __len__(self) -> int:
                return len(self.itos)

            def encode(self, text: str) -> list[int]:
                unk = self.stoi["<unk>"]
                return [self.stoi.get(tok, unk) for tok in text.lower().split()]


        class $name(Dataset):
            def __init__(self, texts: list[str], labels: list[int], vocab: Vocab, max_len: int = $maxlen) -> None:
                self.samples = [vocab.encode(t)[:max_len] for t in texts]
                self.labels = labels

            def __len__(self) -> int:
                return len(self.samples)

            def __getitem__(self, idx: int):
                return torch.tensor(self.samples[idx], dtype=torch.long), self.labels[idx]


        def pad_collate(batch):
            tokens, labels = zip(*batch)
            lengths = torch.tensor([len(t) for t in tokens])
            padded = nn.utils.rnn.pad_sequence(tokens, batch_first=True, padding_value=0)
            return padded, torch.tensor(labels), lengths
        ''', name=name, minf=rng.choice([1, 2, 5]), maxlen=rng.choice([128, 256, 512]))


def build_dataloaders_function(s: Style, dataset: str, ds_args: str) -> str:
    s.need("torch.utils.data", "DataLoader", "random_split")
    return t('''
        def build_dataloaders(args) -> tuple[DataLoader, DataLoader]:
            dataset = $dataset($ds_args)
            n_val = int(len(dataset) * $frac)
            generator = torch.Generator().manual_seed(args.seed)
            train_set, val_set = random_split(dataset, [len(dataset) - n_val, n_val], generator=generator)
            train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                                      num_workers=args.num_workers, pin_memory=torch.cuda.is_available(),
                                      drop_last=True, persistent_workers=args.num_workers > 0)
            val_loader = DataLoader(val_set, batch_size=args.batch_size * 2, shuffle=False,
                                    num_workers=args.num_workers)
            return train_loader, val_loader
        ''', dataset=dataset, ds_args=ds_args, frac=s.rng.choice(["0.1", "0.2", "args.val_fraction"]))


UTILS: dict[str, str] = {
    "set_seed": '''
        def set_seed(seed: int) -> None:
            """Seed every RNG we use so runs are comparable."""
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            torch.cuda.manual_seed_all(seed)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        ''',
    "average_meter": '''
        class AverageMeter:
            """Computes and stores the average and current value."""

            def __init__(self, name: str, fmt: str = ":f") -> None:
                self.name = name
                self.fmt = fmt
                self.reset()

            def reset(self) -> None:
                self.val = 0.0
                self.avg = 0.0
                self.sum = 0.0
                self.count = 0

            def update(self, val: float, n: int = 1) -> None:
                self.val = val
                self.sum += val * n
                self.count += n
                self.avg = self.sum / max(self.count, 1)

            def __str__(self) -> str:
                fmtstr = "{name} {val" + self.fmt + "} ({avg" + self.fmt + "})"
                return fmtstr.format(**self.__dict__)
        ''',
    "count_parameters": '''
        def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
            return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
        ''',
    "save_checkpoint": '''
        def save_checkpoint(state: dict, output_dir: str, is_best: bool, filename: str = "last.pt") -> None:
            os.makedirs(output_dir, exist_ok=True)
            path = os.path.join(output_dir, filename)
            torch.save(state, path)
            if is_best:
                shutil.copyfile(path, os.path.join(output_dir, "best.pt"))
        ''',
    "load_checkpoint": '''
        def load_checkpoint(path: str, model: nn.Module, optimizer=None, map_location="cpu") -> int:
            """Restore weights (and optimizer state if given); returns the epoch stored."""
            checkpoint = torch.load(path, map_location=map_location)
            model.load_state_dict(checkpoint["model"])
            if optimizer is not None and "optimizer" in checkpoint:
                optimizer.load_state_dict(checkpoint["optimizer"])
            return int(checkpoint.get("epoch", 0))
        ''',
    "accuracy": '''
        def accuracy(output: torch.Tensor, target: torch.Tensor, topk=(1,)) -> list[float]:
            """Top-k accuracy, in percent, for each k in ``topk``."""
            with torch.no_grad():
                maxk = max(topk)
                batch_size = target.size(0)
                _, pred = output.topk(maxk, 1, True, True)
                pred = pred.t()
                correct = pred.eq(target.view(1, -1).expand_as(pred))
                res = []
                for k in topk:
                    correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
                    res.append(correct_k.mul_(100.0 / batch_size).item())
                return res
        ''',
    "get_logger": '''
        def get_logger(name: str, log_dir: str | None = None, level: int = logging.INFO) -> logging.Logger:
            log = logging.getLogger(name)
            log.setLevel(level)
            fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            handler = logging.StreamHandler()
            handler.setFormatter(fmt)
            log.addHandler(handler)
            if log_dir is not None:
                os.makedirs(log_dir, exist_ok=True)
                file_handler = logging.FileHandler(os.path.join(log_dir, "train.log"))
                file_handler.setFormatter(fmt)
                log.addHandler(file_handler)
            return log
        ''',
    "warmup_cosine": '''
        def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
            """Multiplier for LambdaLR: linear warmup, then cosine decay to ``min_ratio``."""
            if step < warmup_steps:
                return (step + 1) / max(1, warmup_steps)
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            return min_ratio + (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        ''',
    "early_stopping": '''
        class EarlyStopping:
            """Stop when the monitored metric has not improved for ``patience`` evaluations."""

            def __init__(self, patience: int = 10, min_delta: float = 0.0, mode: str = "min") -> None:
                if mode not in ("min", "max"):
                    raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
                self.patience = patience
                self.min_delta = min_delta
                self.mode = mode
                self.best: float | None = None
                self.bad_epochs = 0

            def step(self, metric: float) -> bool:
                if self.best is None:
                    self.best = metric
                    return False
                if self.mode == "min":
                    better = metric < self.best - self.min_delta
                else:
                    better = metric > self.best + self.min_delta
                if better:
                    self.best = metric
                    self.bad_epochs = 0
                else:
                    self.bad_epochs += 1
                return self.bad_epochs >= self.patience
        ''',
    "to_device": '''
        def to_device(batch, device: torch.device):
            """Move tensors nested in lists, tuples and dicts to ``device``."""
            if isinstance(batch, torch.Tensor):
                return batch.to(device, non_blocking=True)
            if isinstance(batch, dict):
                return {k: to_device(v, device) for k, v in batch.items()}
            if isinstance(batch, (list, tuple)):
                return type(batch)(to_device(v, device) for v in batch)
            return batch
        ''',
    "format_time": '''
        def format_time(seconds: float) -> str:
            minutes, seconds = divmod(int(seconds), 60)
            hours, minutes = divmod(minutes, 60)
            if hours:
                return f"{hours}h{minutes:02d}m{seconds:02d}s"
            return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
        ''',
    "log_metrics": '''
        def log_metrics(metrics: dict, step: int, path: str = "metrics.jsonl") -> None:
            record = {"step": step, "time": time.time()}
            record.update({k: float(v) for k, v in metrics.items()})
            with open(path, "a") as f:
                f.write(json.dumps(record) + "\\n")
        ''',
    "get_device": '''
        def get_device(prefer: str = "auto") -> torch.device:
            if prefer != "auto":
                return torch.device(prefer)
            if torch.cuda.is_available():
                return torch.device("cuda")
            if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        ''',
    "confusion_matrix": '''
        def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
            indices = targets * num_classes + preds
            counts = torch.bincount(indices, minlength=num_classes * num_classes)
            return counts.reshape(num_classes, num_classes)


        def per_class_accuracy(matrix: torch.Tensor) -> list[float]:
            totals = matrix.sum(dim=1).clamp_min(1)
            return (matrix.diag() / totals).tolist()
        ''',
}
UTIL_IMPORTS = {"set_seed": ["random", "numpy as np"], "save_checkpoint": ["os", "shutil"],
                "get_logger": ["logging", "os"], "warmup_cosine": ["math"], "log_metrics": ["json", "time"]}


def util_block(s: Style, name: str) -> str:
    for module in UTIL_IMPORTS.get(name, []):
        s.need(module)
    return t(UTILS[name])


def smoke_test_main(s: Style, models: list[str]) -> str:
    lines = ['if __name__ == "__main__":']
    for model in models:
        lines += [f"    net = {model}()",
                  f'    print("{model}", sum(p.numel() for p in net.parameters()), "parameters")']
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------

def pad_with_utils(s: Style, blocks: list[str], target: int, used: set[str]) -> list[str]:
    """Append utility blocks until the file reaches about ``target`` lines."""
    names = [n for n in UTILS if n not in used]
    s.rng.shuffle(names)
    for name in names:
        if sum(b.count("\n") + 3 for b in blocks) >= target:
            break
        blocks.append(util_block(s, name))
        used.add(name)
    return blocks


def train_script(rng: random.Random, s: Style) -> tuple[str, str]:
    kind, model_name = pick_model(rng)
    dataset = rng.choice(["Blobs", "Tabular", "Images", "Records"]) + "Dataset"
    epoch_fn = rng.choice(["train_one_epoch", "train_epoch", "run_epoch"])
    data_kind = rng.choice(list(DATASET_ARGS))
    s.need("os")
    used = {"set_seed", "save_checkpoint", "load_checkpoint"}
    blocks = [util_block(s, "set_seed"), MODELS[kind](rng, s, model_name), dataset_block(s, dataset, data_kind),
              build_dataloaders_function(s, dataset, DATASET_ARGS[data_kind]), util_block(s, "save_checkpoint"),
              util_block(s, "load_checkpoint")]
    if s.loop == "epoch_function":
        blocks.append(train_epoch_function(s, epoch_fn))
    blocks += [evaluate_function(s), parse_args_function(s, model_name),
               main_function(s, model_name, epoch_fn if s.loop == "epoch_function" else None)]
    room = rng.randint(MIN_LINES, MAX_LINES) - sum(b.count("\n") + 3 for b in blocks)
    body = blocks[:1] + pad_with_utils(s, [], room, used) + blocks[1:]
    body.append('if __name__ == "__main__":\n    main()')
    task = rng.choice(TASKS)
    return f"train_{task}_{kind}", s.header(f"Train a {model_name} on {task}.") + "\n\n\n" + "\n\n\n".join(body)


def trainer_module(rng: random.Random, s: Style) -> tuple[str, str]:
    kind, model_name = pick_model(rng)
    used: set[str] = set()
    blocks = [train_config_dataclass(s), MODELS[kind](rng, s, model_name), trainer_class(s, model_name)]
    blocks = pad_with_utils(s, blocks, rng.randint(MIN_LINES, MAX_LINES), used)
    name = rng.choice(["trainer", "engine", "runner", "loop"])
    return f"{name}_{kind}", s.header(f"Training loop for {model_name}.") + "\n\n\n" + "\n\n\n".join(blocks)


def lightning_file(rng: random.Random, s: Style) -> tuple[str, str]:
    kind, model_name = pick_model(rng)
    used: set[str] = set()
    blocks = [MODELS[kind](rng, s, model_name), lightning_module(s, model_name), lightning_datamodule(s)]
    blocks = pad_with_utils(s, blocks, rng.randint(MIN_LINES, MAX_LINES) - 15, used)
    blocks.append(lightning_main(s, model_name))
    return f"lit_{kind}", s.header(f"LightningModule wrapping {model_name}.") + "\n\n\n" + "\n\n\n".join(blocks)


def model_file(rng: random.Random, s: Style) -> tuple[str, str]:
    picks = [pick_model(rng) for _ in range(rng.randint(1, 3))]
    seen: dict[str, str] = {}
    for kind, name in picks:  # one of each kind: helper classes (Block, ConvBNAct) must not repeat
        seen.setdefault(kind, name)
    used: set[str] = set()
    blocks = [MODELS[kind](rng, s, name) for kind, name in seen.items()]
    blocks = pad_with_utils(s, blocks, rng.randint(MIN_LINES, MAX_LINES) - 8, used)
    blocks.append(smoke_test_main(s, list(seen.values())))
    kinds = "_".join(seen)
    return f"models_{kinds}", s.header(f"Model definitions: {', '.join(seen.values())}.") + "\n\n\n" + \
        "\n\n\n".join(blocks)


def data_file(rng: random.Random, s: Style) -> tuple[str, str]:
    s.use_logger = False
    used: set[str] = set()
    names = rng.sample(["TrainDataset", "EvalDataset", "ShardDataset", "FeatureDataset"], 2)
    blocks = [dataset_block(s, names[0]), dataset_block(s, names[1]).replace("class Vocab", "class Vocab2")
              .replace("vocab: Vocab,", "vocab: Vocab2,").replace("def pad_collate", "def pad_collate2")]
    blocks.append(util_block(s, "to_device"))
    used.add("to_device")
    blocks = pad_with_utils(s, blocks, rng.randint(MIN_LINES, MAX_LINES), used)
    return "datasets", s.header("Datasets and loaders.") + "\n\n\n" + "\n\n\n".join(blocks)


def utils_file(rng: random.Random, s: Style) -> tuple[str, str]:
    used: set[str] = set()
    blocks = pad_with_utils(s, [], rng.randint(MIN_LINES, MAX_LINES), used)
    return rng.choice(["utils", "helpers", "common", "misc"]), s.header("Shared helpers.") + "\n\n\n" + \
        "\n\n\n".join(blocks)


KINDS: dict[str, tuple[Callable, str, int]] = {
    # kind: (generator, folder, weight)
    "train": (train_script, "", 26),
    "amp": (lambda rng, s: train_script(rng, s), "", 10),
    "trainer": (trainer_module, "training", 16),
    "lightning": (lightning_file, "lightning", 12),
    "model": (model_file, "models", 20),
    "data": (data_file, "data", 8),
    "utils": (utils_file, "utils", 8),
}


def synthetic_file(rng: random.Random, kind: str) -> tuple[str, str]:
    style = Style.draw(rng, amp=True if kind == "amp" else None)
    name, source = KINDS[kind][0](rng, style)
    return name, source.rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------
# Real files
# --------------------------------------------------------------------------------------

def package_dir(name: str) -> Optional[Path]:
    """The installed package's folder, found without importing it (torch takes seconds)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def real_candidates() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    torch_dir = package_dir("torch")
    if torch_dir and (torch_dir / "nn" / "modules").is_dir():
        found["real-torch"] = sorted(p for p in (torch_dir / "nn" / "modules").glob("*.py")
                                     if p.name != "__init__.py")
    hf_dir = package_dir("transformers")
    if hf_dir and (hf_dir / "models").is_dir():
        found["real-transformers"] = sorted((hf_dir / "models").glob("*/modeling_*.py"))
    return found


# --------------------------------------------------------------------------------------

def generate(root: Path, files: int = 100, seed: int = 0, real: bool = False) -> list[CorpusFile]:
    """Write the corpus under ``root`` (created if missing) and describe what was written."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    out: list[CorpusFile] = []
    n_real = 0
    if real:
        pools = real_candidates()
        share = files // 2 // max(len(pools), 1)
        for kind, pool in pools.items():
            chosen = sorted(rng.sample(pool, min(share, len(pool))))
            for src in chosen:
                rel = Path("third_party") / kind.split("-")[1] / f"{src.parent.name}_{src.name}"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, root / rel)
                out.append(CorpusFile(rel, kind, _count_lines((root / rel).read_text(encoding="utf-8"))))
                n_real += 1
    names = list(KINDS)
    weights = [KINDS[k][2] for k in names]
    projects = [f"project_{i:02d}" for i in range(max(1, (files - n_real) // 12))]
    taken: set[Path] = set()
    for i in range(files - n_real):
        kind = rng.choices(names, weights=weights)[0]
        name, source = synthetic_file(rng, kind)
        compile(source, name, "exec")  # a template bug must fail here, not show up as a parse error
        folder = Path(rng.choice(projects)) / KINDS[kind][1]
        rel = folder / f"{name}.py"
        n = 2
        while rel in taken:
            rel = folder / f"{name}_{n}.py"
            n += 1
        taken.add(rel)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(source, encoding="utf-8")
        out.append(CorpusFile(rel, kind, _count_lines(source)))
    return out


def _count_lines(source: str) -> int:
    return source.count("\n") + (0 if source.endswith("\n") or not source else 1)


def describe(files: list[CorpusFile]) -> str:
    total = sum(f.lines for f in files)
    kinds: dict[str, int] = {}
    for f in files:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    lines = sorted(f.lines for f in files)
    mix = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return (f"{len(files)} files, {total:,} lines (per file min {lines[0]}, median {lines[len(lines) // 2]}, "
            f"max {lines[-1]}): {mix}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="where to write the corpus (created if missing)")
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", action="store_true", help="include copies of installed torch/transformers files")
    args = parser.parse_args(argv)
    if args.directory.exists() and any(args.directory.iterdir()):
        print(f"corpus: {args.directory} is not empty; give a new or empty directory", file=sys.stderr)
        return 2
    print(describe(generate(args.directory, args.files, args.seed, args.real)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
