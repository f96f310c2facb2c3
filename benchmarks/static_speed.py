"""`gradhealth scan --static-only` against pyflakes on the same input, as wall-time ratios.

    python benchmarks/static_speed.py [--timm DIR] [--file FILE] [--rounds N] [--hook-rounds M]

Two measurements, each alternating the two tools in subprocesses (the way a user or
pre-commit runs them: process start to exit, from compiled bytecode as a pip install leaves
both), after one untimed warm-up of each:

1. A large tree: the ``timm`` package's source (default
   ``/work/corpus/pytorch-image-models/timm``, the package directory of a checkout of
   huggingface/pytorch-image-models: the same files a ``pip install timm`` unpacks;
   any directory can be given).  ``gradhealth scan --static-only DIR`` (which scans a
   directory with a process pool, one worker per CPU) against ``python -m pyflakes DIR``
   (one process, its normal way).  Target: <= 1.5x.
2. One training file, as a pre-commit hook run: default
   ``/work/corpus/examples/imagenet/main.py`` (pytorch/examples' ImageNet trainer, 530
   lines).  Target: <= 2x.

Printed: the medians and the best of each tool, the wall-time ratio of medians (and of bests)
with the target beside it, and the CPU seconds each spent (workers included): on a loaded
machine wall time is noisy, and the CPU ratio shows what the pool buys (same CPU, less wall).  pyflakes is a benchmark dependency only (``pip install
pyflakes``; the ``bench`` extra), never a runtime one.
Exit status: 0 when the run completed, 2 when it could not (pyflakes missing, a tool failed).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

DEFAULT_TREE = Path("/work/corpus/pytorch-image-models/timm")
DEFAULT_FILE = Path("/work/corpus/examples/imagenet/main.py")


def fail(message: str) -> NoReturn:
    print(f"static_speed: {message}", file=sys.stderr)
    raise SystemExit(2)


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children)."""
    cpu, start = _cpu(), time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):  # 1: findings (both tools)
        fail(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return elapsed, _cpu() - cpu


def compile_bytecode() -> None:
    """Both tools from bytecode, as a pip install leaves them.  Where PYTHONDONTWRITEBYTECODE is
    set (as on this project's machines), a module whose .pyc is missing or stale (an editable
    install after an edit) would otherwise be compiled again on every timed run."""
    import compileall

    for name in ("gradcheck_tool", "pyflakes"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            fail(f"{name} is not importable")
        if not compileall.compile_dir(str(Path(spec.origin).parent), quiet=1):
            fail(f"cannot compile {name}'s bytecode")


def compare(name: str, target: str, rounds: int, limit: float) -> tuple[float, float]:
    ours = [sys.executable, "-m", "gradcheck_tool", "scan", "--static-only", target]
    theirs = [sys.executable, "-m", "pyflakes", target]
    timed(ours), timed(theirs)  # warm the file cache
    runs = [(timed(ours), timed(theirs)) for _ in range(rounds)]
    a, b = [r[0][0] for r in runs], [r[1][0] for r in runs]
    cpu_a, cpu_b = [r[0][1] for r in runs], [r[1][1] for r in runs]
    median, best = statistics.median(a) / statistics.median(b), min(a) / min(b)
    print(f"{name}: gradhealth median {statistics.median(a):.3f} s (best {min(a):.3f}), "
          f"pyflakes median {statistics.median(b):.3f} s (best {min(b):.3f})")
    print(f"  wall ratio {median:.2f}x of medians, {best:.2f}x of bests (target <= {limit:g}x): "
          f"{'met' if median <= limit else 'NOT met'}")
    print(f"  CPU seconds (all processes): gradhealth {statistics.median(cpu_a):.3f}, pyflakes "
          f"{statistics.median(cpu_b):.3f}: {statistics.median(cpu_a) / statistics.median(cpu_b):.2f}x")
    return median, best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timm", type=Path, default=DEFAULT_TREE, help="the tree to scan")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="the one-file hook run")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each tool on the tree")
    parser.add_argument("--hook-rounds", type=int, default=10, help="timed runs on the file")
    args = parser.parse_args()
    if importlib.util.find_spec("pyflakes") is None:
        fail("pyflakes is not installed: pip install pyflakes (or the bench extra)")
    for path in (args.timm, args.file):
        if not path.exists():
            fail(f"{path} does not exist (see --help for what to pass)")
    compile_bytecode()
    files = list(args.timm.rglob("*.py"))
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    print(f"tree: {args.timm} ({len(files)} files, {lines} lines)")
    compare("tree", str(args.timm), args.rounds, 1.5)
    file_lines = args.file.read_bytes().count(b"\n")
    print(f"file: {args.file} ({file_lines} lines)")
    compare("hook run", str(args.file), args.hook_rounds, 2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
