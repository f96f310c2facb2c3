"""Does GradMonitor cry wolf on real training recipes?  Each run trains a real model with the
optimizer, learning-rate schedule and clipping its repository uses, on CPU-sized configs, and
prints every finding the monitor raised and the statistics its verdicts rest on.  Healthy recipes
must raise nothing; the last run stresses one (30x the learning rate).

    python benchmarks/monitor_realruns.py --corpus /work/corpus [--steps 300]

Needs checkouts of karpathy/nanoGPT and lucidrains/vit-pytorch under --corpus (their code is
imported from there, not copied; vit-pytorch needs einops), and transformers for the BERT run.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradcheck_tool.monitor import GradMonitor  # noqa: E402


def schedule(optimizer, warmup: int, steps: int, peak: float, floor: float):
    """nanoGPT's get_lr: linear warmup, cosine decay to min_lr."""
    def lr(step):
        if step < warmup:
            return peak * (step + 1) / (warmup + 1)
        ratio = min(1.0, (step - warmup) / max(1, steps - warmup))
        return floor + 0.5 * (1 + math.cos(math.pi * ratio)) * (peak - floor)
    return lambda step: [group.__setitem__("lr", lr(step)) for group in optimizer.param_groups]


def nanogpt(corpus: Path, steps: int, lr_scale: float = 1.0):
    sys.path.insert(0, str(corpus / "nanoGPT"))
    from model import GPT, GPTConfig

    # config/train_shakespeare_char.py, shrunk for a CPU: lr 1e-3, betas (0.9, 0.99), wd 0.1, warmup, clip 1.0
    text = "".join(p.read_text(errors="ignore") for p in sorted((corpus / "nanoGPT").rglob("*.py")))
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text], dtype=torch.long)
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=len(chars), n_layer=4, n_head=4, n_embd=128, dropout=0.0))
    optimizer = model.configure_optimizers(0.1, 1e-3 * lr_scale, (0.9, 0.99), "cpu")
    set_lr = schedule(optimizer, 100 if steps > 200 else steps // 4, steps, 1e-3 * lr_scale, 1e-4 * lr_scale)
    generator = torch.Generator().manual_seed(0)

    def step(i):
        set_lr(i)
        starts = torch.randint(len(data) - 65, (16,), generator=generator)
        x = torch.stack([data[s:s + 64] for s in starts])
        y = torch.stack([data[s + 1:s + 65] for s in starts])
        _, loss = model(x, y)
        return loss, 1.0
    return model, optimizer, step


def vit(corpus: Path, steps: int):
    sys.path.insert(0, str(corpus / "vit-pytorch" / "vit_pytorch"))
    from vit import ViT  # the module alone: the package's __init__ imports torchvision for other models

    # The repository's README example model (shrunk), Adam at lr 3e-4 as in its examples, no clipping.
    torch.manual_seed(0)
    model = ViT(image_size=32, patch_size=4, num_classes=10, dim=128, depth=4, heads=4, mlp_dim=256)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(512, 3, 32, 32, generator=generator)
    labels = (images[:, 0].mean((1, 2)) > 0).long() + 2 * (images[:, 1].mean((1, 2)) > 0).long()  # learnable

    def step(i):
        index = torch.randint(512, (32,), generator=generator)
        return nn.functional.cross_entropy(model(images[index]), labels[index]), None
    return model, optimizer, step


def bert(steps: int):
    from transformers import BertConfig, BertForMaskedLM

    # The Trainer's fine-tuning defaults: AdamW lr 5e-5, weight decay 0, linear decay, clip 1.0.
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                                       intermediate_size=512, max_position_embeddings=64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)

    def step(i):
        for group in optimizer.param_groups:
            group["lr"] = 5e-5 * (1 - i / steps)
        ids = torch.randint(5, 1000, (16, 64), generator=generator)
        labels = torch.where(torch.rand(16, 64, generator=generator) < 0.15, ids, torch.full_like(ids, -100))
        masked = torch.where(labels >= 0, torch.full_like(ids, 4), ids)
        return model(input_ids=masked, labels=labels).loss, 1.0
    return model, optimizer, step


def run(name: str, built, steps: int) -> None:
    model, optimizer, step = built
    start = time.perf_counter()
    losses = []
    with GradMonitor(model, optimizer=optimizer, updates_every=1) as monitor:  # every step: judge GH141/GH142 early
        for i in range(steps):
            loss, clip = step(i)
            loss.backward()
            if clip is not None:
                monitor.clipped(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    history = list(monitor.history)
    raw = [r.pre_clip_norm if r.pre_clip_norm is not None else r.grad_norm for r in history]
    late = history[len(history) // 2:]
    ratios = sorted(v for r in late for v in r.update_ratios.values())
    print(f"{name}: {steps} steps in {time.perf_counter() - start:.0f}s, loss {losses[0]:.3f} -> "
          f"{sum(losses[-20:]) / 20:.3f}, grad norm {min(raw):.3g}..{max(raw):.3g} "
          f"(clipped on {sum(r.clipped for r in history)} steps), baseline z max "
          f"{max((f.evidence['z'] for f in monitor.findings if f.code == 'GH101'), default=float('nan')):.1f}, "
          f"update ratios (second half) {ratios[0]:.2g}..{ratios[-1]:.2g} median {ratios[len(ratios) // 2]:.2g}")
    for finding in monitor.findings:
        print(f"  {finding.severity.value}[{finding.code}] {finding.name} ({finding.module}): {finding.message}")
    if not monitor.findings:
        print("  no findings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("/work/corpus"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", choices=["nanogpt", "vit", "bert", "broken"], help="a subset of the runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = {
        "nanogpt": ("nanoGPT (shakespeare_char recipe)", lambda: nanogpt(args.corpus, args.steps)),
        "vit": ("vit-pytorch ViT (Adam 3e-4)", lambda: vit(args.corpus, args.steps)),
        "bert": ("transformers BERT MLM (AdamW 5e-5)", lambda: bert(args.steps)),
        "broken": ("nanoGPT at 30x its learning rate (a stress run)",
                   lambda: nanogpt(args.corpus, args.steps, lr_scale=30)),
    }
    for key in args.only or runs:
        name, build = runs[key]
        run(name, build(), args.steps)


if __name__ == "__main__":
    main()
