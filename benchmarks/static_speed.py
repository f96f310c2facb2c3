"""`gradhealth scan --static-only` against pyflakes on the same input, as wall-time ratios.

    python benchmarks/static_speed.py [--timm DIR] [--file FILE] [--rounds N] [--hook-rounds M]
                                      [--python PATH]

Two measurements, each alternating the two tools in subprocesses (the way a user or
pre-commit runs them: process start to exit, from compiled bytecode as a pip install leaves
both), after one untimed warm-up of each:

1. A large tree: the ``timm`` package's source (default
   ``/work/corpus/pytorch-image-models/timm``, the package directory of a checkout of
   huggingface/pytorch-image-models: the same files a ``pip install timm`` unpacks;
   any directory can be given).  ``gradhealth scan --static-only DIR`` (which scans a
   directory with a process pool, one worker per CPU) against ``python -m pyflakes DIR``
   (one process, its normal way).  Target: <= 1.5x.
2. One training file, as a pre-commit hook runs it (``scan --static-only --force-exclude FILE``,
   the gradhealth-static hook's entry): default
   ``/work/corpus/examples/imagenet/main.py`` (pytorch/examples' ImageNet trainer, 530
   lines).  Target: <= 2x.

Printed: the medians and the best of each tool; the wall-time ratio with the target beside it,
as the median of the rounds' own ratios (the two tools run back to back in a round, so a slow
moment of the machine slows both and cancels out), with its quartiles, and as the ratio of the
medians and of the bests; and the CPU seconds each spent (workers included): on a loaded
machine wall time is noisy, and the CPU ratio shows what the pool buys (same CPU, less wall).
pyflakes is a benchmark dependency only (``pip install pyflakes``; the ``bench`` extra), never
a runtime one.

Both tools run in the environment of ``--python`` (default: this interpreter's), from a
neutral working directory.  pre-commit pip-installs a hook; an editable install (``pip install
-e .``) adds a ``.pth`` finder that every Python process of its environment runs at start-up,
pyflakes' too (~15 ms here: it imports pathlib), which flatters the ratio.  The script says
which kind it measured; for the hook figure use a plain install:
``python -m venv /tmp/hookenv && /tmp/hookenv/bin/pip install . pyflakes``, then
``--python /tmp/hookenv/bin/python``.
Exit status: 0 when the run completed, 2 when it could not (pyflakes missing, a tool failed).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
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


def timed(command: list[str], where: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children), run in ``where``."""
    cpu, start = _cpu(), time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=where)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):  # 1: findings (both tools)
        fail(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return elapsed, _cpu() - cpu


# Run by the benchmarked interpreter: compile both tools' bytecode (as a pip install does:
# where PYTHONDONTWRITEBYTECODE is set, as on this project's machines, a module whose .pyc is
# missing or stale would be compiled again on every timed run), and say whether gradhealth is
# an editable install.
_PREPARE = """
import compileall, glob, importlib.util, os, site, sys
for name in ("gradcheck_tool", "pyflakes"):
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        sys.exit(name + " is not importable: install gradhealth and pyflakes (the bench extra) here")
    if not compileall.compile_dir(os.path.dirname(spec.origin), quiet=1):
        sys.exit("cannot compile the bytecode of " + name)
print(any(glob.glob(os.path.join(d, "__editable__*gradhealth*.pth")) for d in site.getsitepackages()))
"""


def prepare(python: str, where: Path) -> bool:
    """Compile both tools' bytecode in ``python``'s environment; True for an editable install."""
    result = subprocess.run([python, "-c", _PREPARE], cwd=where, capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"{python}: {(result.stderr or result.stdout).strip()[-300:]}")
    return result.stdout.strip() == "True"


def compare(name: str, target: str, rounds: int, limit: float, python: str, where: Path,
            hook: bool = False) -> None:
    # The hook run is the command line of .pre-commit-hooks.yaml's gradhealth-static entry.
    ours = [python, "-m", "gradcheck_tool", "scan", "--static-only", *(["--force-exclude"] if hook else []), target]
    theirs = [python, "-m", "pyflakes", target]
    timed(ours, where), timed(theirs, where)  # warm the file cache
    runs = [(timed(ours, where), timed(theirs, where)) for _ in range(rounds)]
    a, b = [r[0][0] for r in runs], [r[1][0] for r in runs]
    cpu_a, cpu_b = [r[0][1] for r in runs], [r[1][1] for r in runs]
    median, best = statistics.median(a) / statistics.median(b), min(a) / min(b)
    # Each round runs the two back to back, so a slow moment of the machine slows both: the
    # median of the rounds' own ratios is the estimate that cancels it (the verdict's).
    paired = sorted(x / y for x, y in zip(a, b))
    quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3
    print(f"{name}: gradhealth median {statistics.median(a):.3f} s (best {min(a):.3f}), "
          f"pyflakes median {statistics.median(b):.3f} s (best {min(b):.3f})")
    print(f"  wall ratio {statistics.median(paired):.2f}x, median of the {rounds} rounds' ratios (quartiles "
          f"{quartiles[0]:.2f}-{quartiles[2]:.2f}x; target <= {limit:g}x): "
          f"{'met' if statistics.median(paired) <= limit else 'NOT met'}")
    print(f"  {median:.2f}x of the medians, {best:.2f}x of the bests")
    print(f"  CPU seconds (all processes): gradhealth {statistics.median(cpu_a):.3f}, pyflakes "
          f"{statistics.median(cpu_b):.3f}: {statistics.median(cpu_a) / statistics.median(cpu_b):.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timm", type=Path, default=DEFAULT_TREE, help="the tree to scan")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="the one-file hook run")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each tool on the tree")
    parser.add_argument("--hook-rounds", type=int, default=10, help="timed runs on the file")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter whose environment has both tools installed (default: this one)")
    args = parser.parse_args()
    for path in (args.timm, args.file):
        if not path.exists():
            fail(f"{path} does not exist (see --help for what to pass)")
    timm, file = args.timm.resolve(), args.file.resolve()
    with tempfile.TemporaryDirectory() as neutral:  # no package of the working directory shadows an installed one
        where = Path(neutral)
        editable = prepare(args.python, where)
        files = list(timm.rglob("*.py"))
        lines = sum(p.read_bytes().count(b"\n") for p in files)
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.python}")
        print("environment: " + ("gradhealth is an editable install: its .pth finder runs in every process, "
                                 "pyflakes' too, which flatters the ratio (see --python)" if editable else
                                 "gradhealth pip-installed, as pre-commit installs a hook"))
        print(f"tree: {timm} ({len(files)} files, {lines} lines)")
        compare("tree", str(timm), args.rounds, 1.5, args.python, where)
        file_lines = file.read_bytes().count(b"\n")
        print(f"file: {file} ({file_lines} lines)")
        compare("hook run", str(file), args.hook_rounds, 2.0, args.python, where, hook=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
