"""A monitored training step vs. the same step unmonitored: what GradMonitor costs per step.

    python benchmarks/monitor_overhead.py                    # GPT-2-style transformer sized for a CPU
    python benchmarks/monitor_overhead.py --device cuda --layers 12 --width 768 --batch 8 --seq 1024  # GPT-2 124M

One model, one AdamW optimizer, one stream of batches.  Each repeat runs STEPS training steps
(forward, cross-entropy, backward, clip_grad_norm_, optimizer.step, zero_grad) in every arm, in
an order that rotates between repeats, so drift in the machine's load hits every arm alike:

  bare      no monitor
  grads     GradMonitor(model, every=E): per-layer and global gradient norms, clip labelled, spikes, NaN/Inf
  updates   GradMonitor(model, every=E, optimizer=opt, updates_every=U): the same plus per-layer update
            ratios on one measured step in U (default 10, GradMonitor's default)

The time per step of an arm is the median over repeats; the ratios printed are each arm's
time over bare's, as the median of the per-repeat ratios.  On CUDA the clock stops after a
torch.cuda.synchronize(), so queued work is counted.  On CPU the clock is the process's CPU time
(``time.process_time``; use ``--threads 1`` so that it equals the step's work), which time spent
preempted by other processes does not inflate.  On CPU every op runs synchronously, so
the time spent inside the monitor's own calls is its cost exactly; the script prints that too
(``own``), because on a loaded machine the step-time noise is larger than the overhead.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradcheck_tool.monitor import GradMonitor  # noqa: E402


def build(args):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=max(1, args.width // 64),
                        vocab_size=args.vocab, n_positions=args.seq, attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0)
    return GPT2LMHeadModel(config).to(args.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="steps per arm per repeat (rounded to whole periods)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--updates-every", type=int, default=10, help="GradMonitor's updates_every in the updates arm")
    parser.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # Each arm's run starts a fresh monitor, which measures its first step (and its update ratios): a
    # run must span whole periods, or every=10 would be timed measuring one step in two.
    period = args.every * (1 if args.updates_every == 1 else args.updates_every)
    args.steps = max(args.steps, period) // period * period
    cuda = args.device.startswith("cuda")
    model = build(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    generator = torch.Generator().manual_seed(0)
    tokens = [torch.randint(0, args.vocab, (args.batch, args.seq), generator=generator).to(args.device) for _ in range(8)]
    params = sum(p.numel() for p in model.parameters())
    print(f"GPT-2 style: {args.layers} layers x {args.width}, vocab {args.vocab}, {params / 1e6:.1f}M parameters, "
          f"batch {args.batch} x {args.seq} tokens, on {args.device}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; every={args.every}, updates_every={args.updates_every}, "
          f"{args.steps} steps x {args.repeats} repeats per arm")

    def step(i: int, monitor=None) -> None:
        ids = tokens[i % len(tokens)]
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if monitor is not None:
            monitor.clipped(norm)
            if monitor.optimizer is None:
                monitor.step()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    monitors = {"bare": lambda: None,
                "grads": lambda: GradMonitor(model, every=args.every),
                "updates": lambda: GradMonitor(model, every=args.every, optimizer=optimizer,
                                               updates_every=args.updates_every)}
    findings = {name: 0 for name in monitors}
    inside = {name: 0.0 for name in monitors}  # seconds spent in the monitor's own calls

    # On CPU the clock is this process's CPU time: on a shared machine, time spent preempted by other
    # processes would otherwise swamp a few-percent difference.  On CUDA it is wall time.
    clock = time.perf_counter if cuda else time.process_time

    def timed(name: str, fn):
        def wrapper(*a, **k):
            start = clock()
            try:
                return fn(*a, **k)
            finally:
                inside[name] += clock() - start
        return wrapper

    def run(name: str) -> float:
        monitor = monitors[name]()
        if monitor is not None and not cuda:  # on CPU every op is synchronous: its own time is its cost
            for method in ("clipped", "step", "_before_update", "_after_update"):
                setattr(monitor, method, timed(name, getattr(monitor, method)))
        if cuda:
            torch.cuda.synchronize()
        start = clock()
        for i in range(args.steps):
            step(i, monitor)
        if cuda:
            torch.cuda.synchronize()
        elapsed = (clock() - start) / args.steps
        if monitor is not None:  # reading the last queued step and unhooking happen outside the timed loop
            findings[name] += len(monitor.findings)
            monitor.close()
        return elapsed

    for name in monitors:  # warm-up: allocators, kernels, the optimizer's state
        run(name)
    times = {name: [] for name in monitors}
    names = list(monitors)
    for repeat in range(args.repeats):
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for name in order:
            times[name].append(run(name))
    bare = statistics.median(times["bare"])
    steps = args.steps * (args.repeats + 1)
    for name in names:
        ratio = statistics.median(t / b for t, b in zip(times[name], times["bare"]))
        spread = f"[{min(times[name]) * 1e3:.1f}-{max(times[name]) * 1e3:.1f}]"
        own = f"  own {inside[name] / steps * 1e3:6.2f} ms/step = {inside[name] / steps / bare:.4f} of bare" \
            if name != "bare" and not cuda else ""
        print(f"{name:8s} {statistics.median(times[name]) * 1e3:8.1f} ms/step {spread:>19s}  "
              f"ratio {ratio:.3f}x{own}  findings {findings[name]}")
    print(f"ratio monitored / bare at every={args.every}: grads {statistics.median(times['grads']) / bare:.3f}x, "
          f"with update ratios {statistics.median(times['updates']) / bare:.3f}x (median step times)")
    if not cuda:
        print(f"from the monitor's own time (CPU, synchronous): grads {1 + inside['grads'] / steps / bare:.3f}x, "
              f"with update ratios {1 + inside['updates'] / steps / bare:.3f}x")


if __name__ == "__main__":
    main()
