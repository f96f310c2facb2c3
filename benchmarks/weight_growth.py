"""How good is GH143's projection?  The 10-step probe's projected weight norm against the norm
that longer real training reaches, with and without the weight decay the fix suggests.

    python benchmarks/weight_growth.py                  # 5,000 steps, lr 1e-3 and 3e-3
    python benchmarks/weight_growth.py --steps 2000 --lr 3e-3

The task is learnable (labels from a fixed random linear teacher), the model a 3-hidden-layer
ReLU MLP of width 64, batches of 16, and the loss cross-entropy: the probe's ``loss_fn``.
For each learning rate it runs ``measure_steps`` for the probe's 10 steps, then the same
optimizer for ``--steps`` steps, and prints the median weight matrix's projected and reached
norm (as a multiple of the initial norm) and their ratio; then the same for AdamW with the
suggested ``weight_decay``.
"""
from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from gradcheck_tool.probe.steps import build_optimizer, measure_steps
from gradcheck_tool.rules.growth import projected_growth, suggested_weight_decay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-3, 3e-3])
    args = parser.parse_args()
    torch.set_num_threads(2)
    teacher = torch.randn(64, 10, generator=torch.Generator().manual_seed(1))

    def loss_fn(out, x):
        return nn.functional.cross_entropy(out, (x @ teacher).argmax(1))

    def run(name: str, kwargs: dict, steps: int):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64),
                              nn.ReLU(), nn.Linear(64, 10))
        return measure_steps(model, lambda: torch.randn(16, 64), loss_fn, build_optimizer(name, kwargs, model),
                             steps=steps, seed=0)

    print(f"torch {torch.__version__}, {args.steps} steps; norms as multiples of the initial norm (median matrix)")
    print(f"{'optimizer':<34} {'projected':>9} {'reached':>8} {'ratio':>6} {'final loss':>10}")
    for lr in args.lr:
        probe = run("Adam", {"lr": lr}, 10)
        decay = suggested_weight_decay(probe)
        for name, kwargs in (("Adam", {"lr": lr}), ("AdamW", {"lr": lr, "weight_decay": decay})):
            projected = projected_growth(run(name, kwargs, 10), horizon=args.steps)
            long = run(name, kwargs, args.steps)
            reached = statistics.median(w.norms[-1] / w.norms[0] for w in long.weights)
            label = f"{name}(lr={lr:g}" + (f", weight_decay={decay:g})" if name == "AdamW" else ")")
            print(f"{label:<34} {projected:>9.2f} {reached:>8.2f} {reached / projected:>6.2f} {long.losses[-1]:>10.3f}")


if __name__ == "__main__":
    main()
