"""Real packages load without wrappers (issue 11): scan model files inside their own checkouts.

    python benchmarks/real_projects_load.py /work/corpus

expects, under that folder, checkouts of lucidrains/x-transformers, lucidrains/vit-pytorch and
pytorch/examples (the `fetch` tool brings them), and their import-time dependencies in the
environment (einops, einx, loguru, ...; vit_pytorch's __init__ also imports torchvision).  Each row
runs the real CLI from the checkout's root, as a user would, and prints the exit code, the probe's
status and inputs, the number of findings and the wall time.  Nothing is written into the
checkouts: word_language_model's model.py is copied to a temporary folder, with the
example_inputs() that gradhealth's error message asks for appended.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from cli_scan import scan_json  # this folder is sys.path[0] when run as a script

WLM_INPUTS = '''

def build_model():
    return RNNModel("LSTM", 100, 16, 32, 2)


def example_inputs():  # what the error message asked for: the tokens, and forward's `hidden`
    return torch.randint(0, 100, (8, 32)), (torch.zeros(2, 32, 32), torch.zeros(2, 32, 32))
'''


def main(corpus: Path) -> None:
    rows = [
        ("x-transformers", corpus / "x-transformers", ["x_transformers/x_transformers.py", "--model",
         "TransformerWrapper(num_tokens=256, max_seq_len=64, attn_layers=Decoder(dim=64, depth=2, heads=4))"]),
        ("vit-pytorch ViT", corpus / "vit-pytorch", ["vit_pytorch/vit.py", "--model",
         "ViT(image_size=32, patch_size=8, num_classes=10, dim=64, depth=2, heads=4, mlp_dim=128)",
         "--input-shape", "8,3,32,32"]),
        ("word_language_model (no inputs)", corpus / "examples" / "word_language_model",
         ["model.py", "--model", "RNNModel('LSTM', 100, 16, 32, 2)"]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        source = corpus / "examples" / "word_language_model" / "model.py"
        if source.is_file():
            copy = Path(tmp) / "model.py"
            shutil.copy(source, copy)
            copy.write_text(copy.read_text() + WLM_INPUTS)
            rows.append(("word_language_model + example_inputs()", Path(tmp), ["model.py"]))
        print(f"{'project':42s} exit  probe   findings  seconds  inputs / last stderr line")
        for name, cwd, args in rows:
            if not cwd.is_dir():
                print(f"{name:42s} (no checkout at {cwd})")
                continue
            done = scan_json(*args, cwd=cwd, timeout=600)
            report = done.report or {}
            probe = (report.get("probes") or [{}])[0]
            lines = done.stderr.strip().splitlines()
            detail = probe.get("inputs") or (lines[-1] if lines else "")
            print(f"{name:42s} {done.code:4d}  {probe.get('status', '-'):6s}  {len(report.get('findings', [])):8d}  "
                  f"{done.wall:7.1f}  {detail}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/corpus"))
