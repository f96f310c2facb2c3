"""The real AMP probe on the calibration zoo: healthy models trained by the book, in fp16 with a
GradScaler or in bf16, must get nothing above info from GH150/GH151 (issue 14's done-means).

Each zoo model file (benchmarks/zoo.py's, default init, default loss) gets a training function with
``torch.optim.AdamW(lr=3e-4)``, the by-the-book optimizer of these architectures, and is scanned
through the real CLI with ``--select GH150,GH151 --amp DTYPE`` on the CPU (torch's CPU autocast; a
CUDA machine: ``--device cuda``).  It prints, per model and dtype, the AMP run's verdict (clean,
search, spike, collapse), its skipped steps, the scale it settled at, and the findings.

    python benchmarks/amp_zoo.py --only gemma,opt,bart,whisper,convnext
    python benchmarks/amp_zoo.py --only gpt2 --amp fp16 --device cuda
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cli_scan import scan_json  # noqa: E402
from zoo import write_model_file  # noqa: E402

TRAIN = '''

def train(model, data):  # never run: the probe reads the optimizer from it
    import torch
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    for batch in data:
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
'''


def scan(name: str, dtype: str, device: str, steps: int, directory: Path) -> dict:
    path = write_model_file(directory, name, "default")
    path.write_text(path.read_text() + TRAIN)
    done = scan_json(str(path), "--select", "GH150,GH151", "--amp", dtype, "--device", device, "--train-steps",
                     str(steps), "--timeout", "1800", cwd=directory, timeout=2000)
    report, wall = done.report or {}, done.wall
    try:
        amp = report["probes"][0]["amp"]
    except (IndexError, KeyError):
        amp = None
    if amp is None:
        return {"model": name, "dtype": dtype, "error": done.stderr.strip()[-300:], "wall_s": wall}
    return {"model": name, "dtype": dtype, "verdict": amp["verdict"], "skipped": amp["skipped"],
            "kinds": amp["kinds"], "final_scale": amp["final_scale"], "steps": len(amp["scales"]), "wall_s": wall,
            "findings": [f"{f['code']}:{f['severity']}@{f['module']}" for f in report["findings"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="gpt2,gemma,opt,bart,whisper,convnext,resnet-50")
    parser.add_argument("--amp", choices=("fp16", "bf16", "both"), default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    dtypes = ("fp16", "bf16") if args.amp == "both" else (args.amp,)
    above_info = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            for dtype in dtypes:
                row = scan(name, dtype, args.device, args.steps, Path(tmp))
                above_info += any(":info@" not in f for f in row.get("findings", []))
                failed += "error" in row
                print(json.dumps(row), flush=True)
    print(f"models x dtypes with a GH150/GH151 finding above info: {above_info}; failed scans: {failed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
