"""Probe time vs. plain forward/backward passes of the same model and batches, in one process.

    python benchmarks/probe_overhead.py            # 4-layer transformer (fixtures/healthy_transformer.py)
    python benchmarks/probe_overhead.py --gpt2     # 4-layer GPT-2 from a transformers config
    python benchmarks/probe_overhead.py --file fixtures/healthy_lstm_lm.py   # any model file (its loss_fn)

Prints the wall time of `run_probe` with N batches and of N bare training-step passes
(seed, make inputs, forward, loss, backward, zero_grad), best of R repeats each, and the ratio.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradcheck_tool import loader  # noqa: E402
from gradcheck_tool.probe.engine import call_model, run_probe  # noqa: E402
from gradcheck_tool.probe.outputs import compute_loss  # noqa: E402


def bare(spec, batches: int, seed: int = 0) -> None:
    model = spec.model
    model.train()
    for batch in range(batches):
        torch.manual_seed(seed + batch)
        inputs = spec.make_inputs()
        loss = compute_loss(spec.loss_fn, call_model(model, inputs), inputs, seed + batch, model)
        loss.backward()
        model.zero_grad(set_to_none=True)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpt2", action="store_true", help="use fixtures/hf_gpt2.py (needs transformers)")
    parser.add_argument("--file", type=Path, help="probe this model file instead (its own loss_fn, if any)")
    parser.add_argument("--threads", type=int, help="torch threads (1: steadier numbers on a loaded machine)")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.file or ROOT / "fixtures" / ("hf_gpt2.py" if args.gpt2 else "healthy_transformer.py")
    torch.manual_seed(0)
    spec = loader.load(path)
    params = sum(p.numel() for p in spec.model.parameters())
    print(f"model: {spec.name} from {path.name}, {params / 1e6:.2f}M parameters, inputs {spec.inputs_description}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.batches} batches, best of {args.repeats}")
    bare(spec, 1)  # warm-up: allocator, kernels
    run_probe(spec.model, spec.make_inputs, spec.loss_fn, probes=1)
    t_bare = best_of(lambda: bare(spec, args.batches), args.repeats)
    t_probe = best_of(lambda: run_probe(spec.model, spec.make_inputs, spec.loss_fn, probes=args.batches), args.repeats)
    print(f"bare forward+backward: {t_bare * 1000:8.1f} ms")
    print(f"probe:                 {t_probe * 1000:8.1f} ms")
    print(f"ratio probe / bare:    {t_probe / t_bare:8.2f}x")


if __name__ == "__main__":
    main()
