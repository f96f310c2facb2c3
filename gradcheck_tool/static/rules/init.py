"""GH206: weights drawn from N(0, 1) (or any fixed std near 1), whatever their fan-in."""
from __future__ import annotations

import re
from typing import Iterator, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.rules.base import StaticRule, display, example
from gradcheck_tool.static.analysis.facts import Site
from gradcheck_tool.static.analysis.names import argument, dotted, integer, keyword_arg, last, number
from gradcheck_tool.static.analysis.weights import Uses, is_parameter, used_as_weight

_STD_CEILING = 0.5
# Embeddings, tokens, positions and biases are not fan-in-scaled maps: N(0, 1) is their
# normal init (nn.Embedding's own default), so a unit std there is not a defect.
# (Patterns compiled by `re` on first use: only a file that draws from a normal needs them.)
_NOT_A_WEIGHT = r"(?i)emb|tok|pos|cls|query|queries|latent|prompt|probe|pad|buf|codebook|noise|mask|bias|eps"
_WEIGHT_LIKE = r"(?i)weight|kernel|param|(^|\.)w\w?\d*(\.|$)|\.data$"
class UnscaledNormalInit(StaticRule):
    """What it does:
    Finds weights drawn with a standard deviation that ignores fan-in: ``nn.init.normal_(w)``,
    ``normal_(w, 0, 1)``, ``w.data.normal_()``, ``w.normal_(0, 1.0)``, and
    ``nn.Parameter(torch.randn(out, in))`` / ``torch.randn(a, b, requires_grad=True)`` with
    no scaling factor. A literal std counts when it is >= 0.5. A trainable ``randn`` counts
    only as a weight: used as a matmul operand in the file (``x @ w``, ``x.mm(w)``,
    ``F.linear``, ``einsum``...) or named like one (``weight``, ``w1``, ``W``, ``kernel``,
    ``proj``); never when it is passed to a module (``G(G_ideas)``) or named like a score
    table or an input (``transitions``, ``crf``, ``logits``, ``noise``, ``latent``, ``z``).

    Why it matters:
    A layer with fan-in n and weights of std s multiplies the signal's scale by about
    ``s * sqrt(n)``. Variance-preserving inits (LeCun/Glorot/He) pick ``s ~ 1/sqrt(n)`` so
    that factor is ~1. With ``s = 1`` and n = 256 it is 16 per layer: activations explode
    (or saturate a tanh) and gradients follow, exponentially in depth. The 0.5 ceiling is
    ``1/sqrt(4)``: below it a fixed std can still suit a real layer (GPT-2's 0.02 fits
    n ~ 768-2500); at or above it, the std matches no layer with a fan-in above 4.
    Embeddings (and biases, tokens, positional tables) are skipped: N(0, 1) is their default.
    So are tensors no activation is multiplied by: a CRF's transition scores are added to
    scores, and a GAN's input noise is data, whatever requires_grad says.

    Example:
        self.w = nn.Parameter(torch.randn(512, 256))   # GH206: std 1, fan-in 256

    Fix:
    Scale by fan-in: ``torch.randn(out, in) / math.sqrt(in)``, ``normal_(w, std=in ** -0.5)``,
    or use ``nn.init.kaiming_normal_`` (ReLU) / ``nn.init.xavier_normal_`` (tanh, sigmoid).
    """

    CODE = "GH206"
    NAME = "unscaled-normal-init"
    SEVERITY = Severity.WARNING
    TRIGGER = r"normal_?\(|randn\("
    GOOD = (
        example("""
            import math
            import torch
            from torch import nn

            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.w = nn.Parameter(torch.randn(512, 256) / math.sqrt(256))
                    self.v = nn.Parameter(torch.randn(512, 256) * 0.02)
        """),
        example("""
            from torch.nn import init

            init.normal_(layer.weight, std=0.02)
            init.normal_(layer.weight, 0.0, 1 / 16)
            nn.init.normal_(self.embed.weight)
        """),
        example("""
            def _init_weights(module):
                if isinstance(module, nn.Embedding):
                    module.weight.data.normal_(mean=0.0, std=1.0)
                elif isinstance(module, nn.Linear):
                    module.weight.data.normal_(0.0, 0.02)
        """),
        example("""
            x = torch.randn(64, 784)
            eps = torch.empty_like(std).normal_()
            self.cls_token = nn.Parameter(torch.randn(1, 1, 768))
            self.pos_embedding = nn.Parameter(torch.randn(197, 768))
            self.scale = nn.Parameter(torch.randn(64))
        """),
        example("""
            import torch

            G = torch.nn.Sequential(torch.nn.Linear(5, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 15))
            G_ideas = torch.randn(64, 5, requires_grad=True)
            G_paintings = G(G_ideas)
        """),
        example("""
            import torch
            from torch import nn

            class BiLSTM_CRF(nn.Module):
                def __init__(self, tagset_size):
                    super().__init__()
                    self.transitions = nn.Parameter(torch.randn(tagset_size, tagset_size))

                def score(self, feats, tags):
                    return self.transitions[tags[1:], tags[:-1]].sum() + feats.sum()
        """),
        example("""
            import torch

            z = torch.randn(16, 64, requires_grad=True)
            recon = z @ decoder
            net = Classifier()
            inputs = torch.randn(8, 784, requires_grad=True)  # optimised as an input
            logits = net(inputs)
            gram = inputs @ inputs.T
        """),
    )
    BAD = (
        example("""
            import torch.nn as nn

            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(256, 256)
                    nn.init.normal_(self.fc.weight)
        """),
        example("""
            from torch.nn.init import normal_

            for m in model.modules():
                if isinstance(m, nn.Linear):
                    normal_(m.weight, 0, 1)
        """),
        example("""
            w1.data.normal_()
            w2.normal_(0, 1.0)
        """),
        example("""
            import torch
            from torch import nn

            class M(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.W = nn.Parameter(torch.randn(d, 4 * d))
        """),
        example("""
            import torch

            w = torch.randn(784, 10, requires_grad=True)
            b = torch.zeros(10, requires_grad=True)
        """),
        example("""
            import torch
            from torch import nn

            class Cell(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.U = nn.Parameter(torch.randn(n, n))

                def forward(self, x, h):
                    return torch.tanh(x + h @ self.U)
        """),
        example("""
            import torch

            x = torch.randn(64, 1000)
            w1 = torch.randn(1000, 100, requires_grad=True)
            h = x.mm(w1).clamp(min=0)
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        uses = Uses(ctx)
        for site in ctx.facts.calls:
            if site.embedding_branch:
                continue
            found = self._normal(ctx, site, uses) or self._randn(ctx, site, uses)
            if found is not None:
                yield found

    def _normal(self, ctx: SourceContext, site: Site, uses: "Uses") -> Optional[Finding]:
        name, call = site.name or "", site.node
        if last(name) not in ("normal_", "normal"):
            return None
        if name.endswith(("init.normal_", "init.normal")):
            target, std = argument(call, 0, "tensor"), argument(call, 2, "std")
            target_code = ctx.code(target.value) if target else ""
        elif last(name) == "normal_" and isinstance(call.func, syntax.Attribute):
            std, target_code = argument(call, 1, "std"), ctx.code(call.func.value)
            if is_parameter(ctx, site.grandparent):
                target_code = ctx.facts.assigned_to.get(site.grandparent, target_code)
            elif not re.search(_WEIGHT_LIKE, target_code):
                return None  # noise, not a weight
        else:
            return None
        value = 1.0 if std is None else number(std.value, ctx.facts.constants)
        if not target_code or value is None or abs(value) < _STD_CEILING or self._exempt(
                ctx, target_code, site, uses):
            return None
        return self.finding(
            ctx, call, f"`{ctx.code(call)}` draws `{target_code}` with std {value:g} whatever its "
            "fan-in: each layer scales activations by ~std * sqrt(fan_in)",
            evidence={"std": value, "target": target_code, "ceiling": _STD_CEILING},
            fix=display(f"Scale by fan-in: `nn.init.normal_({target_code}, std=fan_in ** -0.5)`, "
                        f"or `nn.init.kaiming_normal_({target_code})` / `xavier_normal_`."),
        )

    def _randn(self, ctx: SourceContext, site: Site, uses: "Uses") -> Optional[Finding]:
        if site.name not in ("torch.randn", "randn") or site.parent is None:
            return None
        call = site.node
        grad_kw = keyword_arg(call, "requires_grad")
        unscaled = (
            (isinstance(site.parent, syntax.Arg) and is_parameter(ctx, site.grandparent))
            or (grad_kw is not None and dotted(grad_kw.value) == "True"
                and isinstance(site.parent, (syntax.Assign, syntax.AnnAssign)))
            or (isinstance(site.parent, syntax.Attribute)
                and site.parent.attr.value == "requires_grad_")
        )
        shape = [a.value for a in call.args if a.keyword is None and not a.star]
        if len(shape) == 1 and isinstance(shape[0], (syntax.Tuple, syntax.List)):
            shape = [e.value for e in shape[0].elements]
        # A literal 1 in the shape makes it a vector or a token, not a fan-in map.
        if not unscaled or len(shape) < 2 or 1 in [integer(d, ctx.facts.constants) for d in shape]:
            return None
        # A tensor a test builds is a fixture, never trained; a (heads, heads) matrix mixes
        # attention heads: its fan-in is the head count (8-16), a gain of at most ~4 into a
        # softmax or a norm, not a map compounded layer after layer.
        scope = site.scope
        if (isinstance(scope, syntax.FunctionDef) and scope.name.value.startswith("test")) or any(
                "head" in ctx.code(d).lower() for d in shape[-2:]):
            return None
        owner = site.outer_call if is_parameter(ctx, site.grandparent) else call
        target = ctx.facts.assigned_to.get(owner, "") if owner is not None else ""
        if not used_as_weight(uses, target) or self._exempt(ctx, target, site, uses):
            return None
        dims = [ctx.code(d) for d in shape]
        sizes = [integer(d, ctx.facts.constants) for d in shape[-2:]]
        evidence = {"std": 1.0, "shape": dims, "target": target or None, "ceiling": _STD_CEILING}
        if all(sizes):
            # (out, in) for F.linear, (in, out) for x @ w: the smaller side bounds the gain.
            evidence["min_gain_per_layer"] = round(min(sizes) ** 0.5, 3)
        return self.finding(
            ctx, call, f"`{ctx.code(call)}` is an N(0, 1) weight of shape ({', '.join(dims)}): "
            "each layer scales activations by ~sqrt(fan_in)",
            evidence=evidence,
            fix=display(f"Divide by sqrt(fan_in): `{ctx.code(call)} / math.sqrt(fan_in)` "
                        "(fan_in is the input dimension), or init with nn.init.kaiming_normal_."),
        )

    @staticmethod
    def _exempt(ctx: SourceContext, target: str, site: Site, uses: "Uses") -> bool:
        owner = target.rsplit(".weight", 1)[0]
        klass = ctx.facts.owner.get(site.scope)  # `self.weight` inside class Embedding
        return bool(re.search(_NOT_A_WEIGHT, target)) or "Embedding" in (
            ctx.facts.constructed(owner) or "") or bool(
            klass and owner == "self" and re.search(_NOT_A_WEIGHT, klass.name.value)
        ) or target in uses.normalized
