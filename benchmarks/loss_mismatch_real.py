"""GH107/GH113 on real repositories' models, under the loss their own training code computes.

    python benchmarks/loss_mismatch_real.py /work/corpus

expects checkouts of eriklindernoren/PyTorch-GAN, pytorch/examples, karpathy/nanoGPT and
karpathy/minGPT under that folder (the `fetch` tool brings them).  PyTorch-GAN's scripts train at
import and pytorch/examples' mnist imports torchvision, so each row writes a small wrapper into a
temporary folder: it reads the model class's source from the checkout (nothing is copied into this
repository), builds it with the script's argparse defaults, and defines ``loss_fn`` as the script's
training step computes it.  Each wrapper is scanned by the real CLI; the row prints the codes found.
Expected: GH107 on PyTorch-GAN's ACGAN, SGAN and InfoGAN discriminators (``aux_layer`` ends in
``nn.Softmax()``, trained with ``nn.CrossEntropyLoss``); nothing on mnist (log_softmax + nll_loss),
nanoGPT and minGPT (cross-entropy on logits, every layer registered).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cli_scan import scan_json  # this folder is sys.path[0] when run as a script

GAN = '''import ast, types
import torch
import torch.nn as nn
PATH = "{root}/PyTorch-GAN/implementations/{name}/{name}.py"
opt = types.SimpleNamespace(img_size=32, channels=1, n_classes=10, num_classes=10, latent_dim=100, code_dim=2)
exec(compile(ast.Module([n for n in ast.parse(open(PATH).read()).body
                         if isinstance(n, ast.ClassDef) and n.name == "Discriminator"], []), PATH, "exec"))
model = Discriminator()
auxiliary_loss = torch.nn.CrossEntropyLoss()


def example_inputs():
    return torch.randn(32, 1, 32, 32)


def loss_fn(output, imgs):  # the discriminator step: an adversarial loss on validity + cross-entropy on the class head
    validity, aux = output[0], output[1]
    labels = torch.randint(0, aux.shape[1], (imgs.shape[0],), generator=torch.Generator().manual_seed(0))
    return (nn.functional.mse_loss(validity, torch.ones_like(validity)) + auxiliary_loss(aux, labels)) / 2
'''
MNIST = '''import ast
import torch
import torch.nn as nn
import torch.nn.functional as F
PATH = "{root}/examples/mnist/main.py"
exec(compile(ast.Module([n for n in ast.parse(open(PATH).read()).body
                         if isinstance(n, ast.ClassDef) and n.name == "Net"], []), PATH, "exec"))
model = Net()


def example_inputs():
    return torch.randn(16, 1, 28, 28)


def loss_fn(output, data):  # main.py's train(): F.nll_loss on the model's log_softmax
    return F.nll_loss(output, torch.randint(0, 10, (data.shape[0],), generator=torch.Generator().manual_seed(0)))
'''
GPT = '''import sys
import torch
sys.path.insert(0, "{root}/{repo}")
{build}


def example_inputs():
    return torch.randint(0, 512, (4, 64)), torch.randint(0, 512, (4, 64))


def loss_fn(output, inputs):  # the model's own loss: cross-entropy of its logits against the targets
    return output[1]
'''
NANOGPT = ("from model import GPT, GPTConfig\n"
           "model = GPT(GPTConfig(block_size=64, vocab_size=512, n_layer=2, n_head=4, n_embd=64, dropout=0.0))")
MINGPT = ("from mingpt.model import GPT\nconfig = GPT.get_default_config()\n"
          "config.model_type, config.vocab_size, config.block_size = 'gpt-nano', 512, 64\nmodel = GPT(config)")


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/corpus").resolve()
    rows = {f"PyTorch-GAN {name}": GAN.format(root=root, name=name) for name in ("acgan", "sgan", "infogan")}
    rows["examples mnist"] = MNIST.format(root=root)
    rows["nanoGPT"] = GPT.format(root=root, repo="nanoGPT", build=NANOGPT)
    rows["minGPT"] = GPT.format(root=root, repo="minGPT", build=MINGPT)
    with tempfile.TemporaryDirectory(prefix="gradhealth-real-") as tmp:
        for label, text in rows.items():
            path = Path(tmp) / (label.replace(" ", "_").replace("-", "_") + ".py")
            path.write_text(text)
            done = scan_json(str(path), "--select", "GH107,GH108,GH113")
            try:
                found = [f"{f['code']}:{f['severity']}@{f['module']}" for f in done.report["findings"]]
                status = done.report["probes"][0]["status"]
            except (TypeError, KeyError, IndexError):
                found, status = [done.stderr.strip()[-200:]], "failed"
            print(f"{label:22s} exit {done.code}  {status:7s} {', '.join(found) or '-'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
