"""GH208: a literal learning rate far above what its optimizer tolerates."""
from __future__ import annotations

from typing import Iterator

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.static.analysis.context import SourceContext
from gradcheck_tool.static.analysis.optim import high_learning_rates
from gradcheck_tool.static.rules.base import StaticRule, edit_or_display, example


class HighLearningRate(StaticRule):
    """What it does:
    Finds optimizer constructors (``torch.optim.Adam``, ``optim.SGD``, ``from torch.optim
    import Adam as A``...) given a literal learning rate - as ``lr=`` or the first positional
    argument after the parameters, or a name bound once to a literal - far above what that
    optimizer tolerates: Adam/AdamW/RAdam/NAdam/Adamax/SparseAdam and RMSprop above 1e-2,
    SGD/ASGD and Adagrad above 1.0, Adadelta above 10. Up to 5x the ceiling is reported as
    information (mildly high for typical models; small ones, such as RL policies and
    two-layer GCNs, are tuned there), beyond that as a warning. Also information, at any
    rate: SGD whose every step is clipped (a clipped step moves by at most
    ``lr * max_norm``; the word-language-model recipe runs lr 20 clipped at 0.25), and a
    model of this file whose ``__init__`` builds a single layer (a linear model such as
    SGC: convex in its weights, no product of layers for a large step to compound through).

    Why it matters:
    Adaptive optimizers normalise the gradient, so each step moves every weight by about
    ``lr`` whatever the loss scale. Typical rates are 1e-4 to 3e-3 (default 1e-3); the 1e-2
    ceiling is 10x the default and ~3x the top of that range. A layer with fan-in 256 has
    weights of std ~0.06, so lr = 0.1 moves each weight by more than its own scale per
    step: an update/weight ratio ~100x past the ~1e-3 that trains well.
    Plain SGD moves by ``lr * grad``: on a quadratic with curvature L it diverges once
    ``lr > 2 / L``, and normalised losses have L of order 1 or more, so lr > 1.0 leaves no
    margin (Adagrad's accumulator only shrinks its steps further from its first one).
    Adadelta's lr is a multiplier on an already unit-scale step (default 1.0).
    Large-batch SGD recipes with warmup (Goyal et al., 2017: lr 3.2 at batch 8k) exceed
    the SGD ceiling on purpose: suppress the finding there.

    Example:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)   # GH208

    Fix:
    Start from the optimizer's usual rate (Adam: 1e-3, SGD: 0.1 with momentum) and tune
    from there; ``gradhealth scan`` runs the optimizer for a few steps and reports how fast
    it grows the weights (GH143).
    """

    CODE = "GH208"
    NAME = "high-learning-rate"
    SEVERITY = Severity.WARNING
    TRIGGER = r"\boptim\b"
    GOOD = (
        example("""
            import torch
            from torch import optim

            opt = torch.optim.Adam(model.parameters(), lr=3e-4)
            sgd = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        """),
        example("""
            from torch.optim import Adam as A

            LR = 1e-3
            opt = A(model.parameters(), LR)
        """),
        example("""
            from torch import optim

            def make(model, lr):
                return optim.AdamW(model.parameters(), lr=lr)

            ada = optim.Adadelta(model.parameters(), lr=1.0)
        """),
        example("""
            import keras

            opt = keras.optimizers.Adam(lr=0.1)
        """),
    )
    BAD = (
        example("""
            import torch

            optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        """),
        example("""
            from torch.optim import Adam as A

            opt = A(model.parameters(), 0.05)
        """),
        example("""
            import torch

            LR = 0.02  # 2x the ceiling: reported as information
            optimizer = torch.optim.Adam(rnn.parameters(), lr=LR)
        """),
        example("""
            from torch import optim

            LR = 3.0
            optimizer = optim.SGD(model.parameters(), lr=LR)
        """),
        example("""
            import torch

            class Net(torch.nn.Module):
                def configure(self):
                    self.opt = torch.optim.RMSprop(self.parameters(), lr=1e-1)
        """),
    )

    def check(self, ctx: SourceContext) -> Iterator[Finding]:
        for rate in high_learning_rates(ctx):
            limit = rate.limit
            via = ""
            evidence = {"optimizer": rate.optimizer, "lr": rate.value, "ceiling": limit.ceiling,
                        "ratio": round(rate.ratio, 3), "typical": limit.typical}
            if rate.constant:
                line = ctx.line(ctx.facts.constant_nodes[rate.constant])
                via = f" (`{rate.constant}` = {rate.value:g}, line {line})"
                evidence.update(constant=rate.constant, constant_line=line)
            if rate.tolerated:
                message = (f"lr={rate.value:g}{via} for {rate.optimizer} is {rate.ratio:.3g}x the "
                           f"{limit.ceiling:g} ceiling (typical {limit.typical}), tolerated here: "
                           f"{rate.tolerated}")
                evidence["tolerated"] = rate.tolerated
            elif rate.mild:
                message = (f"lr={rate.value:g}{via} for {rate.optimizer} is {rate.ratio:.3g}x the "
                           f"{limit.ceiling:g} ceiling: mildly high for typical models (typical "
                           f"{limit.typical}); small models often tolerate it")
            else:
                message = (f"lr={rate.value:g}{via} for {rate.optimizer} is {rate.ratio:.3g}x "
                           f"above the {limit.ceiling:g} it tolerates (typical {limit.typical}): "
                           "early steps overshoot and can diverge")
            edit = None if rate.constant else ctx.replace(rate.node, limit.suggested)
            fix = edit_or_display(
                f"Use a learning rate in {limit.typical}, e.g. lr={limit.suggested}.", edit)
            yield self.finding(ctx, rate.node, message, evidence=evidence, fix=fix,
                               severity=Severity.INFO if rate.mild else Severity.WARNING)
