"""The probe's memory model: bytes per parameter, one process vs. sharded over 2 gloo ranks (CPU).

    python benchmarks/probe_memory.py                          # GPT-2 4x256, 8x512, 12x768 at 1 x 64 tokens
    python benchmarks/probe_memory.py --sizes 12x768,24x1024 --tokens 128 --probes 2

For each GPT-2 config (``GPT2LMHeadModel(GPT2Config(n_layer, n_embd))``, random init, nothing
downloaded) it runs, each in fresh processes:

* ``single``: one process builds the model and runs ``run_probe`` (the scan's probe);
* ``sharded``: ``torch.distributed.run --nproc-per-node 2``: each rank builds the model, shards it
  with FSDP2 as ``scan --distributed`` does (``probe.sharded``) and runs the same probe.

Each process samples its resident set (``/proc/self/statm``, every 2 ms) from before the model is
built to the end of the probe, with ``MALLOC_MMAP_THRESHOLD_=131072`` so freed tensors leave the
resident set (glibc would otherwise keep large freed blocks and the peak would depend on heap
history).  Reported per process: the peak of the build phase (the whole model, on every rank:
``scan --distributed`` builds it on the host before sharding) and the peak of the probe phase,
both over the process's baseline before the build (torch and the interpreter), divided by the
parameter count.  The sharded row is the larger of the two ranks.  ``probe`` bytes/param is what
a device must hold (the model's shards, their gradients, the gathered unit being run, the
activations of the probe batch): the figure to size a run with.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE


class Peak(threading.Thread):
    """The largest resident set seen since ``reset``."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = _rss(), True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def reset(self) -> int:
        self.peak = _rss()
        return self.peak

    def stop(self) -> int:
        self.running = False
        self.join()
        return max(self.peak, _rss())


def _arm(args) -> None:
    """One process (or one rank): build, [shard,] probe; print a JSON line of what it measured."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    from gradcheck_tool.probe.engine import run_probe
    from gradcheck_tool.probe.sharded import Local, process_group

    logging.set_verbosity_error()
    torch.set_num_threads(1)
    layers, width = (int(v) for v in args.size.split("x"))
    config = GPT2Config(n_layer=layers, n_embd=width, n_head=max(1, width // 64), n_positions=max(args.tokens, 64))
    sharded = args.arm == "sharded"
    with process_group("cpu") if sharded else contextlib.nullcontext() as sharding:
        meter = Peak()
        meter.start()
        baseline = meter.reset()
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
        params = sum(p.numel() for p in model.parameters())
        if sharding is not None:
            model = sharding.shard(model)
        built = meter.peak
        after_build = meter.reset()
        vocab = config.vocab_size
        run_probe(model, lambda: {"input_ids": torch.randint(0, vocab, (1, args.tokens))}, None,
                  probes=args.probes, sharding=sharding or Local())
        probe = meter.stop()
    print(json.dumps({"arm": args.arm, "rank": int(os.environ.get("RANK", 0)), "params": params,
                      "baseline": baseline, "build": built - baseline, "held": after_build - baseline,
                      "probe": probe - baseline}), flush=True)


def _measure(size: str, arm: str, args) -> list[dict]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--arm", arm, "--size", size, "--tokens", str(args.tokens),
               "--probes", str(args.probes)]
    if arm == "sharded":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *command[1:]]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not rows:
        raise SystemExit(f"{arm} {size} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="4x256,8x512,12x768", help="GPT-2 configs, LAYERSxWIDTH, comma-separated")
    parser.add_argument("--tokens", type=int, default=64, help="sequence length (batch 1)")
    parser.add_argument("--probes", type=int, default=2)
    parser.add_argument("--arm", choices=("single", "sharded"), help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        return _arm(args)
    print(f"GPT-2 at 1 x {args.tokens} tokens, {args.probes} probe batches, CPU, MALLOC_MMAP_THRESHOLD_=131072")
    print(f"{'config':>8} {'params':>8} | {'single: build':>13} {'probe':>7} | "
          f"{'2 ranks, per rank: build':>24} {'held':>6} {'probe':>7} | {'probe sharded / single':>22}")
    gib = 1024**3
    for size in args.sizes.split(","):
        single = _measure(size, "single", args)[0]
        ranks = _measure(size, "sharded", args)
        params = single["params"]

        def per(value: float) -> str:
            return f"{value / params:6.2f} B"

        worst = {key: max(r[key] for r in ranks) for key in ("build", "held", "probe")}
        print(f"{size:>8} {params / 1e6:7.1f}M | {per(single['build']):>13} {per(single['probe']):>7} | "
              f"{per(worst['build']):>24} {per(worst['held']):>6} {per(worst['probe']):>7} | "
              f"{worst['probe'] / single['probe']:21.2f}x")
        each = ", ".join(f"{r['probe'] / gib:.3f}" for r in sorted(ranks, key=lambda r: r["rank"]))
        print(f"{'':>8} {'':>8}   (GiB: single probe {single['probe'] / gib:.3f}, per-rank probe {each})")


if __name__ == "__main__":
    main()
