"""GH207: many sigmoid/tanh layers in a row, with nothing to keep the gradient alive."""
from __future__ import annotations

from typing import Iterator

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.rules.base import StaticRule, display, example
from gradcheck_tool.static.analysis.facts import Scope
from gradcheck_tool.static.analysis.forward import SATURATING_FUNCTIONS, ForwardDepth, saturating_call
from gradcheck_tool.static.analysis.stacks import SATURATING_LAYERS, LayerStacks

THRESHOLD = 4
_RELEVANT = SATURATING_FUNCTIONS | set(SATURATING_LAYERS)


class DeepSaturatingStack(StaticRule):
    """What it does:
    Finds 4 or more sigmoid/tanh-family nonlinearities (Sigmoid, Tanh, Hardtanh,
    Hardsigmoid, Softsign) applied in a row with no normalisation layer and no residual
    addition in between, where the count is statically knowable: ``nn.Sequential``
    literals, ``[nn.Linear(d, d), nn.Tanh()] * n``, comprehensions and ``for _ in range(n)``
    loops that build the layer list, and forward code that calls ``torch.tanh`` /
    ``torch.sigmoid`` / ``F.sigmoid`` on the result of the previous call (including in a
    loop over ``range(n)`` or over a ModuleList of known length). A name bound once to one
    of those functions counts as the function (``ACTIVATION = torch.tanh``).

    Why it matters:
    The sigmoid's slope is at most 0.25, so each sigmoid scales the backward signal by
    0.25 or less: four in a row leave at most 1/256 of it, more than two orders of
    magnitude, before any saturation. Tanh's slope is 1 only at 0 and falls fast, and a
    deep stack drives pre-activations into the flat tails (Glorot & Bengio, 2010, saw
    exactly this stall in 4-5 layer sigmoid nets). Four is also above what healthy
    designs compose: an LSTM/GRU cell or a gated unit applies at most two in a row.
    Normalisation layers re-centre the pre-activations and residual additions give the
    gradient a path around, so either one breaks the count. A module this rule cannot see
    into (a user block) also breaks it, to avoid guessing.

    Example:
        nn.Sequential(*[nn.Linear(64, 64), nn.Sigmoid()] * 8)   # GH207: 8 in a row

    Fix:
    Use ReLU/GELU in hidden layers (keep sigmoid/tanh for gates and outputs), or insert
    ``nn.LayerNorm``/``nn.BatchNorm1d`` between blocks, or make blocks residual
    (``x = x + block(x)``).
    """

    CODE = "GH207"
    NAME = "deep-saturating-stack"
    SEVERITY = Severity.WARNING
    # Sigmoid/sigmoid/Hardsigmoid, Tanh/tanh/Hardtanh, Softsign/softsign: the common tails, case-
    # sensitive (a case-insensitive alternation costs 1 ms per 500 lines, 5x this one).
    TRIGGER = r"igmoid|anh|oftsign"
    GOOD = (
        example("""
            from torch import nn

            net = nn.Sequential(
                nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
                nn.Linear(8, 1), nn.Sigmoid(),
            )
        """),
        example("""
            import torch.nn as nn

            layers = []
            for _ in range(8):
                layers += [nn.Linear(64, 64), nn.BatchNorm1d(64), nn.Tanh()]
            net = nn.Sequential(*layers)
        """),
        example("""
            import torch

            class Res(torch.nn.Module):
                def forward(self, x):
                    for layer in self.layers:
                        x = x + torch.tanh(layer(x))
                    return x
        """),
        example("""
            import torch

            class Cell(torch.nn.Module):
                def forward(self, x, h, c):
                    i = torch.sigmoid(self.wi(x) + self.ui(h))
                    f = torch.sigmoid(self.wf(x) + self.uf(h))
                    o = torch.sigmoid(self.wo(x) + self.uo(h))
                    g = torch.tanh(self.wg(x) + self.ug(h))
                    c = f * c + i * g
                    h = o * torch.tanh(c)
                    return h, c
        """),
        example("""
            from torch import nn

            def mlp(depth):
                blocks = [nn.Sequential(nn.Linear(8, 8), nn.Tanh()) for _ in range(depth)]
                return nn.Sequential(*blocks)
        """),
        example("""
            import torch

            ACTIVATION = torch.tanh
            if args.relu:
                ACTIVATION = torch.relu

            class Net(torch.nn.Module):
                def forward(self, x):
                    for i in range(8):
                        x = ACTIVATION(self.fcs[i](x))
                    return x
        """),
    )
    BAD = (
        example("""
            from torch import nn

            net = nn.Sequential(*[nn.Linear(64, 64), nn.Sigmoid()] * 8)
        """),
        example("""
            import torch.nn as nn

            class Deep(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = []
                    for _ in range(6):
                        layers.append(nn.Linear(32, 32))
                        layers.append(nn.Tanh())
                    self.body = nn.Sequential(*layers)
        """),
        example("""
            import torch
            import torch.nn.functional as F

            class Tower(torch.nn.Module):
                def forward(self, x):
                    x = torch.tanh(self.fc1(x))
                    x = torch.tanh(self.fc2(x))
                    x = F.sigmoid(self.fc3(x))
                    return torch.sigmoid(self.fc4(x))
        """),
        example("""
            import torch
            from torch import nn

            class Loop(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(16, 16) for _ in range(10)])

                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x).sigmoid()
                    return x
        """),
        example("""
            from torch.nn import Sequential, Linear, Tanh

            net = Sequential(
                Linear(4, 4), Tanh(), Linear(4, 4), Tanh(),
                Linear(4, 4), Tanh(), Linear(4, 4), Tanh(),
            )
        """),
        example("""
            import torch

            N_HIDDEN = 8
            ACTIVATION = torch.tanh

            class Net(torch.nn.Module):
                def forward(self, x):
                    for i in range(N_HIDDEN):
                        x = self.fcs[i](x)
                        x = ACTIVATION(x)
                    return self.predict(x)
        """),
        example("""
            from torch import nn

            class Tower(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.act = nn.Tanh()

                def forward(self, x):
                    x = self.act(self.fc1(x))
                    x = self.act(self.fc2(x))
                    x = self.act(self.fc3(x))
                    return self.act(self.fc4(x))
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        stacks = LayerStacks(ctx.facts)
        for scope in ctx.facts.scopes:
            sites = ctx.facts.by_scope.get(scope, ())
            if not any(s.method in _RELEVANT or (
                    isinstance(s.node, syntax.Call) and saturating_call(s.node, ctx.facts))
                    for s in sites):
                continue
            for call, run in stacks.in_scope(scope):
                if run.longest >= THRESHOLD:
                    yield self.finding(
                        ctx, call,
                        f"{run.longest} sigmoid/tanh layers in a row with no normalisation or "
                        "residual in between: each scales the backward signal by <= 0.25-1, "
                        "so the first layers barely learn",
                        evidence={"longest_run": run.longest, "saturating_layers": run.total,
                                  "has_normalization": run.barrier, "threshold": THRESHOLD},
                        fix=display("Use ReLU/GELU between hidden layers, or add a LayerNorm/"
                                    "BatchNorm (or a residual connection) between blocks."),
                    )
            yield from self._forward(ctx, scope)

    def _forward(self, ctx: SourceContext, scope: Scope) -> Iterator[Finding]:
        depth = ForwardDepth(ctx.facts)
        depth.run(scope)
        deepest = max((d for _, d in depth.found), default=0)
        if deepest < THRESHOLD:
            return
        call = next(c for c, d in depth.found if d >= THRESHOLD)
        name = getattr(getattr(scope, "name", None), "value", "<module>")
        yield self.finding(
            ctx, call,
            f"`{name}` applies {deepest} sigmoid/tanh calls in a row with no normalisation or "
            "residual addition: the backward signal shrinks by <= 0.25-1 at each",
            evidence={"depth": deepest, "function": name, "threshold": THRESHOLD},
            fix=display("Use ReLU/GELU for hidden activations, normalise between them, or add "
                        "the input back (x = x + f(x))."),
        )
