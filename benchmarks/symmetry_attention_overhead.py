"""What GH121's and GH114's measurements add to the probe, in one process, alternating rounds.

    python benchmarks/symmetry_attention_overhead.py           # fixtures/healthy_transformer.py
    python benchmarks/symmetry_attention_overhead.py --gpt2    # fixtures/hf_gpt2.py (needs transformers)

Each round times `run_probe` with both measurements on (probe/symmetry.py after the first
backward, probe/attention.py on the first forward) and with both switched off (the same
functions replaced by no-ops), in alternation so load drift hits both alike; prints the best of
each and their ratio.  benchmarks/probe_overhead.py gives the probe against bare passes.
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
from gradcheck_tool.probe import engine  # noqa: E402
from gradcheck_tool.probe.attention import AttentionProbe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpt2", action="store_true", help="use fixtures/hf_gpt2.py (needs transformers)")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    path = ROOT / "fixtures" / ("hf_gpt2.py" if args.gpt2 else "healthy_transformer.py")
    torch.manual_seed(0)
    spec = loader.load(path)
    print(f"model: {spec.name} from {path.name}, inputs {spec.inputs_description}")
    on = (engine.symmetric_layers, AttentionProbe.note)
    off = (lambda *args: [], lambda self, *a, **k: None)

    def probe(switch) -> float:
        engine.symmetric_layers, AttentionProbe.note = switch
        start = time.perf_counter()
        record = engine.run_probe(spec.model, spec.make_inputs, spec.loss_fn, probes=args.batches)
        elapsed = time.perf_counter() - start
        assert bool(record.attention) == (switch is on)  # the switch really switched
        return elapsed

    probe(on), probe(off)  # warm-up
    times = {"on": [], "off": []}
    for _ in range(args.rounds):
        times["on"].append(probe(on))
        times["off"].append(probe(off))
    engine.symmetric_layers, AttentionProbe.note = on
    best_on, best_off = min(times["on"]), min(times["off"])
    print(f"probe without GH121/GH114 measurements: {best_off * 1000:8.1f} ms (best of {args.rounds})")
    print(f"probe with them:                        {best_on * 1000:8.1f} ms")
    print(f"ratio with / without:                   {best_on / best_off:8.3f}x")


if __name__ == "__main__":
    main()
