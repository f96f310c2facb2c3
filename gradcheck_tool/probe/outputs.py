"""What the probe differentiates: the model's floating outputs and the loss over them.

Outputs may be a tensor, a tuple/list, a dict, or a transformers ``ModelOutput``
(a dict subclass; its ``logits`` are used when present, as the training loss would).

The default loss, used when the file defines no ``loss_fn(output, inputs)``, is the loss a
training script would most likely put on that output, so that absolute gradient norms (and the
``max_norm`` quoted from them) are those of real training, not only their ratios.  In order:

1. **The model's own loss**: a mapping output (a transformers ``ModelOutput``) with a scalar
   ``loss`` that depends on the parameters, i.e. the inputs carried ``labels``.
2. **Cross-entropy against uniformly random labels** when the output is classifier- or LM-shaped:
   the first floating output that is ``logits`` of a mapping output, or a tensor whose last
   dimension (> 1) comes straight from a matrix product (``nn.Linear``, a tied embedding head:
   ``addmm``/``mm``, through a bias add and reshapes that keep the last axis), from
   ``log_softmax`` (then it equals ``nll_loss``), or from a convolutional classifier: a
   convolution with one channel per class, an optional ReLU, global average pooling and the
   flatten of its 1x1 (SqueezeNet, network-in-network; MSE there put the norm 3x under the real
   cross-entropy's).  That last dimension is the class/vocab axis;
   the labels have the other dimensions' shape.  At init the predictions carry no information
   about the labels, so the gradient statistics are those of real labels.  For a transformers
   model this is what its own ``labels`` loss computes (a causal LM's one-position shift aside).
   A transformers CTC model (``*ForCTC``: its config has ``ctc_loss_reduction``) trains with CTC,
   not per-frame cross-entropy, and its gradient norm is another scale (Wav2Vec2: ~700 with the
   config's default ``"sum"``, ~15 with ``"mean"``, 0.5 with frame cross-entropy): its logits
   get the CTC loss its own ``labels`` would, with the config's blank, reduction and
   ``ctc_zero_infinity``, against random transcripts a third as long as the frames (characters of
   read speech, ~15/s, at wav2vec2's 50 frames/s; under ``"sum"`` the norm barely depends on
   the length, under ``"mean"`` it goes as 1/length).
   Where the shape cannot tell, the rule is structural: a ``Linear`` head with several outputs is
   read as a classifier (a multi-output regression head looks the same: define ``loss_fn``);
   anything after the head (an activation, a residual add, a flatten folding an axis into the last
   one) or a head that is not a matrix product (conv, pooling) keeps MSE, as does a single output
   column (``num_labels=1`` regression).
3. **Mean-squared error against N(0, 1) targets** over every floating output otherwise.
4. **A unit-norm random cotangent** (``sum_i <y_i, v_i> / sqrt(N)``, ``v ~ N(0, 1)``) only where no
   target makes sense: complex outputs, or only 0-dim outputs (a model that returns its own scalar).

Labels, targets and the cotangent come from a generator on the output's device (drawn there: a
CPU draw copied over cost 0.18 s of a 0.2 s GPU batch at GPT-2's vocabulary), seeded per batch with
``target_seed(seed + batch)``, independent of the global RNG.  Not with ``seed + batch`` itself:
the probe seeds the global RNG with that before ``example_inputs()``, so random token inputs and
labels (or inputs and MSE targets) of one shape would be the same numbers, an identity task
whose gradients are not those of independent labels (1.5x too large on an LSTM LM).
``describe_default_loss`` names the choice; the report's header and JSON ``loss`` field carry it.  A ``max_norm`` is quoted from every loss but the
unit cotangent, whose gradient norm is a property of the random direction, not of training.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from gradcheck_tool.errors import GradhealthError

DEFAULT_LOSS = "default: unit-norm random cotangent on the output"  # the one loss no max_norm is quoted from
OWN_LOSS = "default: the model's own loss (output.loss)"
MSE_LOSS = "default: mean-squared error against N(0, 1) targets"
CTC_LOSS = "default: the model's CTC loss"
# The grad_fn of a classifier / LM head's output, and of the reshapes between it and the output.
_HEAD_NODES = ("AddmmBackward0", "MmBackward0", "LinearBackward0", "LogSoftmaxBackward0")
_RESHAPE_NODES = ("ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0")
_GLOBAL_POOL = "MeanBackward1"  # AdaptiveAvgPool2d((1, 1)) and x.mean((2, 3)) alike


def floating_outputs(output: Any) -> list[torch.Tensor]:
    if isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        output = output["logits"]
    # An explicit stack, not a recursive closure: a closure that refers to itself forms a reference
    # cycle holding `found`, which kept the logits alive until the cyclic GC ran (+1 GiB on GPT-2).
    found: list[torch.Tensor] = []
    stack = [output]
    while stack:
        obj = stack.pop()
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() or obj.is_complex():
                found.append(obj)
        elif isinstance(obj, Mapping):
            stack.extend(reversed(list(obj.values())))
        elif isinstance(obj, (tuple, list)):
            stack.extend(reversed(obj))
    return found


def first_float_tensor(obj: Any) -> Optional[torch.Tensor]:
    """The main tensor of a module's output (LSTM's output, attention's first element)."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.is_floating_point() else None
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        for value in obj:
            t = first_float_tensor(value)
            if t is not None:
                return t
    return None


def _own_loss(output: Any) -> Optional[torch.Tensor]:
    loss = output.get("loss") if isinstance(output, Mapping) else None
    if isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.is_floating_point() and loss.requires_grad:
        return loss.reshape(())
    return None


def _from_head(t: torch.Tensor) -> bool:
    """Whether ``t`` is a head's output: a matrix product or log_softmax, through reshapes that
    keep the last (class) axis and a bias add (``nn.Linear`` on a non-contiguous input is
    ``mm`` + ``add``); a flatten that folds another axis into the last one is no longer logits,
    and a residual add (two computed inputs) is not a head."""
    node = t.grad_fn
    while node is not None:
        kind = type(node).__name__
        if kind in _RESHAPE_NODES:
            before = tuple(getattr(node, "_saved_self_sym_sizes", None) or ())
            if t.dim() == 2 and len(before) > 2 and before[:2] == tuple(t.shape) and all(d == 1 for d in before[2:]):
                return _pooled_conv(node.next_functions[0][0], t.shape[-1])  # [N, C, 1, 1] -> [N, C]
            if not before or before[-1] != t.shape[-1]:
                return False
            node = node.next_functions[0][0]
        elif kind == _GLOBAL_POOL:
            return t.dim() == 2 and _pooled_conv(node, t.shape[-1])
        elif kind == "AddBackward0":
            kinds = sorted(((type(f).__name__, f) for f, _ in node.next_functions if f is not None),
                           key=lambda pair: pair[0] != "AccumulateGrad")
            if len(node.next_functions) != 2 or len(kinds) != 2 or kinds[0][0] != "AccumulateGrad":
                return False
            node = kinds[1][1]
        else:
            return kind in _HEAD_NODES
    return False


def _pooled_conv(node: Any, classes: int) -> bool:
    """Whether ``node`` is global average pooling, over every spatial axis, of a convolution
    with ``classes`` channels (through an optional ReLU): a convolutional classifier's head."""
    if node is None or type(node).__name__ != _GLOBAL_POOL:
        return False
    sizes = tuple(node._saved_self_sym_sizes)
    if len(sizes) < 3 or sizes[1] != classes or {d % len(sizes) for d in node._saved_dim} != set(range(2, len(sizes))):
        return False
    node = node.next_functions[0][0]
    if node is not None and type(node).__name__ == "ReluBackward0":
        node = node.next_functions[0][0]
    return node is not None and type(node).__name__ == "ConvolutionBackward0"


def _logits(output: Any, tensors: list[torch.Tensor]) -> Optional[torch.Tensor]:
    """The classifier / LM logits among the outputs (the class axis last), or None (module docstring)."""
    shaped = [t for t in tensors if t.is_floating_point() and t.dim() >= 2 and t.shape[-1] > 1]
    if isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        return shaped[0] if shaped and shaped[0] is output["logits"] else None
    return next((t for t in shaped if _from_head(t)), None)


def target_seed(seed: int) -> int:
    """The seed of a batch's random labels/targets: ``seed`` mixed (Weyl constant, mod 2**64) so
    it never replays the stream ``torch.manual_seed(seed)`` gave the inputs."""
    return (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64


def _generator(device: torch.device, seed: int) -> torch.Generator:
    try:
        return torch.Generator(device=device).manual_seed(target_seed(seed))
    except RuntimeError:  # a device without its own generator: draw on the CPU
        return torch.Generator().manual_seed(target_seed(seed))


def _differentiable(output: Any) -> list[torch.Tensor]:
    tensors = [t for t in floating_outputs(output) if t.requires_grad]
    if not tensors:
        raise GradhealthError(
            "the model's output has no floating tensor that depends on its parameters; "
            "define loss_fn(output, inputs) returning a scalar"
        )
    return tensors


@dataclass(frozen=True)
class CtcHead:
    """How a transformers CTC model computes its own loss, read from its config."""

    blank: int
    reduction: str  # "sum" (transformers' default) or "mean"
    zero_infinity: bool

    @classmethod
    def of(cls, model: Any) -> Optional["CtcHead"]:
        config = getattr(model, "config", None)
        reduction = getattr(config, "ctc_loss_reduction", None)
        if reduction not in ("sum", "mean"):
            return None
        return cls(int(getattr(config, "pad_token_id", None) or 0), reduction,
                   bool(getattr(config, "ctc_zero_infinity", False)))

    def loss(self, logits: torch.Tensor, seed: int) -> torch.Tensor:
        batch, frames, classes = logits.shape
        length = transcript_length(frames)
        g = _generator(logits.device, seed)
        labels = torch.randint(0, classes - 1, (batch, length), generator=g, device=g.device).to(logits.device)
        labels = labels + (labels >= self.blank).long()  # never the blank
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)
        return F.ctc_loss(log_probs, labels, torch.full((batch,), frames, dtype=torch.long),
                          torch.full((batch,), length, dtype=torch.long), blank=self.blank,
                          reduction=self.reduction, zero_infinity=self.zero_infinity)


def transcript_length(frames: int) -> int:
    """The random transcripts' length for a CTC model: a third of the frames (module docstring)."""
    return max(1, frames // 3)


def _choice(output: Any, model: Any = None) -> tuple[str, Any]:
    """The default loss for this output (module docstring): its description, and what it acts on."""
    own = _own_loss(output)
    if own is not None:
        return OWN_LOSS, own
    tensors = _differentiable(output)
    logits = _logits(output, tensors)
    ctc = CtcHead.of(model) if logits is not None and logits.dim() == 3 else None
    if ctc is not None:
        return (f"{CTC_LOSS} ({ctc.reduction}, from its config) of logits {list(logits.shape)} against random "
                f"transcripts of {transcript_length(logits.shape[1])} tokens"), (ctc, logits)
    if logits is not None:
        return (f"default: cross-entropy of logits {list(logits.shape)} against uniformly random labels "
                f"({logits.shape[-1]} classes)"), logits
    if any(t.is_complex() for t in tensors) or all(t.dim() == 0 for t in tensors):
        return DEFAULT_LOSS, tensors
    return MSE_LOSS, tensors


def describe_default_loss(output: Any, model: Any = None) -> str:
    """Which loss ``default_loss`` puts on this output, in words (the report's ``loss``)."""
    return _choice(output, model)[0]


def default_loss(output: Any, seed: int, model: Any = None) -> torch.Tensor:
    name, chosen = _choice(output, model)
    if name == OWN_LOSS:
        return chosen
    if name.startswith(CTC_LOSS):
        ctc, logits = chosen
        return ctc.loss(logits, seed)
    if isinstance(chosen, torch.Tensor):  # logits
        classes = chosen.shape[-1]
        g = _generator(chosen.device, seed)
        labels = torch.randint(0, classes, chosen.shape[:-1], generator=g, device=g.device)
        return F.cross_entropy(chosen.reshape(-1, classes).float(), labels.reshape(-1).to(chosen.device))
    total = sum(t.numel() for t in chosen)
    g = _generator(chosen[0].device, seed)  # drawn where the output lives: no host draw, no copy
    if name == DEFAULT_LOSS:
        loss = sum((t.float() * torch.randn(t.shape, generator=g, device=g.device).to(t.device)).sum() for t in chosen)
        return loss / math.sqrt(total)
    return sum((t.float() - torch.randn(t.shape, generator=g, device=g.device).to(t.device)).pow(2).sum()
               for t in chosen) / total


def compute_loss(loss_fn: Optional[Callable], output: Any, inputs: Any, seed: int, model: Any = None) -> torch.Tensor:
    """``loss_fn``'s loss, or the default loss (``model``: where a CTC model's config is read)."""
    if loss_fn is None:
        return default_loss(output, seed, model)
    loss = loss_fn(output, inputs)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.is_floating_point():
        raise GradhealthError("loss_fn(output, inputs) must return a scalar floating tensor")
    if not loss.requires_grad:
        raise GradhealthError("loss_fn's result does not depend on the model's parameters")
    return loss.reshape(())
