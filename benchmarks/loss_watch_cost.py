"""What GH107/GH108/GH113's observation adds to a probe pass, as ratios to the bare pass.

    python benchmarks/loss_watch_cost.py            # fixtures/healthy_transformer.py, cross-entropy loss_fn
    python benchmarks/loss_watch_cost.py --gpt2     # fixtures/hf_gpt2.py (needs transformers)

In one process, after a warm-up, best of R repeats each: a bare training pass (forward, loss,
backward), the same loss call under ``LossWatch`` against the plain call (the mode costs a Python
call per op of loss_fn; on a healthy pair it records nothing), and ``UnregisteredWatch.find`` (the
walk of the output's autograd graph to its leaves).  Both run once per scan, on the first batch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradcheck_tool import loader  # noqa: E402
from gradcheck_tool.probe.engine import call_model  # noqa: E402
from gradcheck_tool.probe.losses import LossWatch  # noqa: E402
from gradcheck_tool.probe.outputs import floating_outputs  # noqa: E402
from gradcheck_tool.probe.unregistered import UnregisteredWatch  # noqa: E402
from probe_overhead import best_of  # noqa: E402 - this folder is sys.path[0] when run as a script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpt2", action="store_true", help="use fixtures/hf_gpt2.py (needs transformers)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch threads (1: steadier numbers on a loaded machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = ROOT / "fixtures" / ("hf_gpt2.py" if args.gpt2 else "healthy_transformer.py")
    torch.manual_seed(0)
    spec = loader.load(path)
    model, inputs = spec.model, spec.make_inputs()
    model.train()

    def loss_fn(output, tokens):  # a language model's task loss, on logits (a healthy pair)
        logits = floating_outputs(output)[0]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))

    def bare():
        loss_fn(call_model(model, inputs), inputs).backward()
        model.zero_grad(set_to_none=True)

    output = call_model(model, inputs)

    def plain_loss():
        loss_fn(output, inputs)

    def watched_loss():
        with LossWatch(lambda node: None) as watch:
            loss_fn(output, inputs)
        assert watch.calls == []

    def graph_walk():
        UnregisteredWatch(model).find(floating_outputs(output), inputs)

    bare()
    t_bare, t_plain = best_of(bare, args.repeats), best_of(plain_loss, args.repeats)
    t_watched, t_walk = best_of(watched_loss, args.repeats), best_of(graph_walk, args.repeats)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {spec.name} from {path.name}, {params / 1e6:.2f}M parameters, inputs {spec.inputs_description}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"bare forward+loss+backward: {t_bare * 1000:8.2f} ms")
    print(f"loss call, plain / watched: {t_plain * 1000:8.2f} / {t_watched * 1000:.2f} ms "
          f"(+{(t_watched - t_plain) / t_bare:.2%} of the bare pass)")
    print(f"graph walk to the leaves:   {t_walk * 1000:8.2f} ms ({t_walk / t_bare:.2%} of the bare pass)")


if __name__ == "__main__":
    main()
