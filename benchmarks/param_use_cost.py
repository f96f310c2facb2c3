"""What GH112's parameter-use recording costs: the probe of a small GPT-2, with and without it.

The first probe pass runs under the functional-activation TorchFunctionMode anyway; recording which
parameters its ops consume (and which it cuts from autograd) adds a check per op in that pass.
Both arms run interleaved in one process, so machine load hits them alike.

    python benchmarks/param_use_cost.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from gradcheck_tool.probe import collector
from gradcheck_tool.probe.engine import run_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=4, n_head=4, n_embd=128, vocab_size=1000, n_positions=128,
                                       bos_token_id=0, eos_token_id=0))
    make = lambda: torch.randint(0, 1000, (8, 32))  # noqa: E731
    recording = collector.Collector.functional_mode

    def without(self):
        mode = recording(self)
        if getattr(mode, "_uses", None) is not None:
            mode._uses = None
        return mode

    times: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(args.repeats):
        for arm, mode in (("with", recording), ("without", without)):
            collector.Collector.functional_mode = mode
            start = time.perf_counter()
            run_probe(model, make, probes=3)
            times[arm].append(time.perf_counter() - start)
    collector.Collector.functional_mode = recording
    w, wo = statistics.median(times["with"]), statistics.median(times["without"])
    print(f"GPT-2 (4 layers, 128 wide), 3 probe passes, median of {args.repeats}: "
          f"with parameter-use recording {w:.3f}s, without {wo:.3f}s, ratio {w / wo:.3f}")


if __name__ == "__main__":
    main()
