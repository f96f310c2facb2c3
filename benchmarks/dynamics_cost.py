"""What the training-dynamics measurements cost (issue 14), each as a ratio to the scan without it,
measured in the same run: the probe (3 batches) plus 10 optimizer steps is the baseline.

    python benchmarks/dynamics_cost.py            # 2-layer GPT-2 (AdamW) and a ResNet (SGD+momentum)
    python benchmarks/dynamics_cost.py --repeats 3

- curvature: ``measure_curvature`` (power iteration on Hessian-vector products, probe/curvature.py);
  ``--curvature`` turns it on in a scan.
- update ratios: ``measure_steps`` with the per-step ||Δw|| (always on) against the same steps with
  the update bookkeeping skipped.
- amp: ``measure_amp`` (``--amp fp16``: the same 10 steps under real autocast and a GradScaler,
  probe/amp.py; a skipped step is one more step) added to the scan, on the CPU (torch's CPU autocast).
Both models use a real loss (cross-entropy on random labels), as curvature needs one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradcheck_tool.probe import steps as steps_module  # noqa: E402
from gradcheck_tool.probe.amp import measure_amp  # noqa: E402
from gradcheck_tool.probe.curvature import measure_curvature  # noqa: E402
from gradcheck_tool.probe.engine import run_probe  # noqa: E402
from gradcheck_tool.probe.steps import build_optimizer, measure_steps, parameters_kept  # noqa: E402
from probe_overhead import best_of  # noqa: E402 - this folder is sys.path[0] when run as a script


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=1000, n_positions=64,
                                       bos_token_id=0, eos_token_id=0))
    make = lambda: {"input_ids": torch.randint(0, 1000, (4, 32))}  # noqa: E731
    loss = lambda out, inp: nn.functional.cross_entropy(  # noqa: E731
        out.logits.flatten(0, 1), torch.randint(0, 1000, (out.logits.shape[0] * out.logits.shape[1],),
                                                generator=torch.Generator().manual_seed(1)))
    return "GPT-2 2x128, AdamW(lr=6e-4)", model, make, loss, ("AdamW", {"lr": 6e-4})


def resnet():
    from transformers import ResNetConfig, ResNetForImageClassification
    torch.manual_seed(0)
    model = ResNetForImageClassification(ResNetConfig(depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128],
                                                      embedding_size=16, num_labels=10))
    make = lambda: torch.randn(8, 3, 32, 32)  # noqa: E731
    loss = lambda out, inp: nn.functional.cross_entropy(  # noqa: E731
        out.logits, torch.randint(0, 10, (out.logits.shape[0],), generator=torch.Generator().manual_seed(1)))
    return "ResNet 4 stages, SGD(lr=0.1, momentum=0.9)", model, make, loss, ("SGD", {"lr": 0.1, "momentum": 0.9})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}; best of {args.repeats}; ratios to the scan without the measurement")
    for build in (gpt2, resnet):
        label, model, make, loss, (name, kwargs) = build()

        def scan(curvature: bool = False, updates: bool = True, amp: bool = False):
            with parameters_kept(model):
                run_probe(model, make, loss, probes=3)
                if amp:
                    with parameters_kept(model):
                        measure_amp(model, make, loss, build_optimizer(name, kwargs, model), dtype="fp16",
                                    device_type="cpu", steps=10, seed=0)
                original = steps_module._update
                if not updates:  # the baseline: the same steps without the per-step update norms
                    steps_module._update = lambda w, before: (before.new_zeros(()), before.new_zeros(()))
                try:
                    measure_steps(model, make, loss, build_optimizer(name, kwargs, model), steps=10, seed=0,
                                  curvature=curvature)
                finally:
                    steps_module._update = original

        base = best_of(lambda: scan(updates=False), args.repeats)
        with_updates = best_of(scan, args.repeats)
        with_curvature = best_of(lambda: scan(curvature=True), args.repeats)
        with_amp = best_of(lambda: scan(amp=True), args.repeats)
        with parameters_kept(model):
            c = measure_curvature(model, make, loss, build_optimizer(name, kwargs, model), seed=0)
            a = measure_amp(model, make, loss, build_optimizer(name, kwargs, model), dtype="fp16",
                            device_type="cpu", steps=10, seed=0)
        print(f"{label}: scan {base:.2f}s; update ratios {with_updates / base:.2f}x; "
              f"curvature {with_curvature / with_updates:.2f}x ({c.hvps} HVPs, λ_max {c.sharpness:.3g}, "
              f"bound {c.bound:.3g}, lr/bound {kwargs['lr'] / c.bound:.3g}); "
              f"amp fp16 {with_amp / with_updates:.2f}x ({len(a.scales)} steps, {len(a.skipped)} skipped: {a.verdict})")


if __name__ == "__main__":
    main()
