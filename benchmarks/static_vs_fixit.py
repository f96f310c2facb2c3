"""`gradhealth scan --static-only` vs. `fixit lint` (another libcst-based linter) on the same tree.

    python benchmarks/static_vs_fixit.py [--files 100] [--repeats 5] [--real] [--corpus DIR]

Builds a deterministic tree of realistic PyTorch training/model files (benchmarks/corpus.py)
in a temporary directory, then times whole commands in subprocesses, alternating the tools,
best and median of R repeats after one untimed warm-up each:

    A  gradhealth scan --static-only --fail-on error DIR
    B  fixit lint DIR                                   (fixit's default rules)

Both pay interpreter start-up and imports, one parse per file (gradhealth: the stdlib ast;
fixit: libcst), and their rules.
fixit lints files in a process pool over every core; gradhealth runs in one process, so
the CPU seconds of each command (children included) are printed next to wall-clock.
An in-process run of ``check_source`` over every file separates gradhealth's analysis
from its start-up. fixit is not a gradhealth dependency: install it yourself
(``pip install fixit``), or point --fixit-python at an interpreter that has it.
Exit status: 0 when the run completed, 2 when it could not (fixit missing, a tool failed).
"""
from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import io
import json
import os
import platform
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import NoReturn, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

# Used only where the installed CLI predates --static-only: the same analysis, one process.
FALLBACK_SCAN = (
    "import sys\n"
    "from pathlib import Path\n"
    "from gradcheck_tool.static import check_source\n"
    "files = sorted(p for p in Path(sys.argv[1]).rglob('*.py')"
    " if not any(part.startswith('.') for part in p.parts))\n"
    "found = sum(len(check_source(p.read_text(encoding='utf-8'), str(p))) for p in files)\n"
    "print(f'{len(files)} files, {found} findings')\n"
)
FIXIT_PROBE = "import fixit, libcst, importlib.metadata as m; print(m.version('fixit'), m.version('libcst'))"
FIXIT_CONFIG = ("[tool.fixit]\n"
                "# Stop fixit's config search here: its default rules, nothing inherited.\n"
                "root = true\n")
_FIXIT_SPLASH = re.compile(r"(\d+) files? (?:checked|clean)")


def fail(message: str) -> NoReturn:
    print(f"static_vs_fixit: error: {message}", file=sys.stderr)
    sys.exit(2)


def console_script(python: str, name: str) -> Optional[str]:
    """The ``name`` entry point installed next to ``python`` (same environment), if any."""
    candidate = Path(python).parent / name
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def child_env() -> dict[str, str]:
    # Hooks run with bytecode caching on; a sandbox that disables it would charge every
    # run with compiling libcst and the linters from source, which no user pays.
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("NO_COLOR", "1")
    return env


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall-clock and CPU seconds (user + system, the command's children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          encoding="utf-8", errors="replace")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def python_files(root: Path) -> list[Path]:
    """The files `gradhealth scan DIR` reads: *.py, no hidden folders."""
    return sorted(p for p in root.rglob("*.py") if not any(part.startswith(".") for part in p.parts))


def count_lines(paths: list[Path]) -> tuple[int, int]:
    total = code = 0
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            total += 1
            stripped = line.strip()
            code += bool(stripped) and not stripped.startswith("#")
    return total, code


def prepare_corpus(args: argparse.Namespace) -> tuple[Path, bool, str]:
    """The directory to scan, whether to delete it afterwards, and how it came to be."""
    if args.corpus is not None and args.corpus.is_dir() and python_files(args.corpus):
        return args.corpus.resolve(), False, f"existing tree {args.corpus} (not regenerated)"
    root = args.corpus.resolve() if args.corpus is not None else \
        Path(tempfile.mkdtemp(prefix="gradhealth-bench-"))
    files = corpus.generate(root, files=args.files, seed=args.seed, real=args.real)
    (root / "fixit.toml").write_text(FIXIT_CONFIG, encoding="utf-8")
    return root, args.corpus is None and not args.keep, "generated: " + corpus.describe(files)


def gradhealth_commands(root: Path, env: dict[str, str]) -> tuple[list[str], list[str], str]:
    """The scan command, a start-up-only command, and a note when the scan is the fallback."""
    exe = console_script(sys.executable, "gradhealth")
    base = [exe] if exe else [sys.executable, "-m", "gradcheck_tool"]
    _, _, helped = run([*base, "scan", "--help"], env)
    if helped.returncode == 0 and "--static-only" in helped.stdout:
        return [*base, "scan", "--static-only", "--fail-on", "error", str(root)], [*base, "--version"], ""
    return ([sys.executable, "-c", FALLBACK_SCAN, str(root)], [sys.executable, "-c", "import gradcheck_tool.static"],
            "NOTE: `gradhealth scan --help` lists no --static-only: measuring the FALLBACK "
            "`python -c` loop over check_source instead of the CLI")


def fixit_base(fixit_python: str, env: dict[str, str]) -> tuple[list[str], str, str]:
    """How to run fixit, its version and its libcst's; exits 2 when fixit is missing."""
    probe = subprocess.run([fixit_python, "-c", FIXIT_PROBE], capture_output=True, text=True, env=env)
    if probe.returncode != 0:
        print(f"static_vs_fixit: fixit is not installed for {fixit_python}.\n"
              "  pip install fixit        (it is a benchmark-only tool, not a gradhealth dependency;\n"
              "                           fixit pins click<8.2, so a separate venv plus\n"
              "                           --fixit-python VENV/bin/python keeps this one untouched)",
              file=sys.stderr)
        sys.exit(2)
    fixit_version, libcst_version = probe.stdout.split()
    exe = console_script(fixit_python, "fixit")
    return ([exe] if exe else [fixit_python, "-m", "fixit"]), fixit_version, libcst_version


def check_gradhealth(proc: subprocess.CompletedProcess, n_files: int, fallback: bool) -> None:
    # 0: nothing at or above --fail-on, 1: findings at or above it, 2: the tool failed.
    if proc.returncode not in (0, 1):
        fail(f"gradhealth exited {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
    if fallback and not proc.stdout.startswith(f"{n_files} files"):
        fail(f"fallback scan read the wrong files: {proc.stdout.strip()}")


def check_gradhealth_read_all(gh_cmd: list[str], n_files: int, env: dict[str, str]) -> None:
    """The same scan as JSON, once, untimed: its summary says how many files it read."""
    _, _, proc = run([*gh_cmd[:-1], "--format", "json", gh_cmd[-1]], env)
    check_gradhealth(proc, n_files, False)
    try:
        files = json.loads(proc.stdout)["summary"]["files"]
    except (ValueError, KeyError, TypeError):
        print("warning: could not read the file count from `--format json`; not verified", file=sys.stderr)
        return
    if files != n_files:
        fail(f"gradhealth scanned {files} files, not {n_files}")


def check_fixit(proc: subprocess.CompletedProcess, n_files: int) -> None:
    # fixit lint: bit 0 = lint violations, bit 1 = a file failed (could not be parsed/linted).
    if proc.returncode & ~1:
        fail(f"fixit lint exited {proc.returncode} (a file could not be linted):\n{proc.stderr.strip()[-2000:]}")
    seen = _FIXIT_SPLASH.search(proc.stderr)
    if seen is None or int(seen.group(1)) != n_files:
        fail(f"fixit linted {seen.group(1) if seen else '?'} files, not {n_files} "
             "(.gitignore of an enclosing project? use a corpus outside it):\n" + proc.stderr.strip()[-500:])


def in_process(paths: list[Path], repeats: int,
               profile: bool) -> tuple[list[float], list[float], Counter, int, str]:
    """check_source over every file in this process: analysis only, no start-up."""
    from gradcheck_tool.static import check_source
    from gradcheck_tool.static import engine

    sources = [(str(p), p.read_text(encoding="utf-8")) for p in paths]
    trigger = getattr(engine, "_TRIGGER", None)
    parsed = sum(1 for _, s in sources if trigger is None or trigger.search(s))
    codes: Counter = Counter()
    for name, source in sources:  # warm-up, and what the corpus makes the rules say
        codes.update(f.code for f in check_source(source, name))
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for name, source in sources:
            check_source(source, name)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    report = ""
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for name, source in sources:
            check_source(source, name)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(20)
        stats.sort_stats("cumulative").print_stats(30)
        report = out.getvalue()
    return times, cpu, codes, parsed, report


def row(label: str, walls: list[float], cpus: list[float], n_files: Optional[int]) -> str:
    """One table row; ``n_files`` None for a command that reads no file (start-up only)."""
    best = min(walls)
    rate = f"{n_files / best:9.1f}" if n_files else f"{'-':>9}"
    return f"{label:<34} {best:8.2f} s {statistics.median(walls):8.2f} s {min(cpus):8.2f} s {rate}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100, help="files to generate (default 100)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each command (default 5)")
    parser.add_argument("--real", action="store_true",
                        help="make up to half the files copies of installed torch/nn/modules and "
                             "transformers modeling_*.py files")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--corpus", type=Path, metavar="DIR",
                        help="generate the corpus here and keep it; a DIR that already holds .py files "
                             "is scanned as it is")
    parser.add_argument("--keep", action="store_true", help="keep the temporary corpus and print its path")
    parser.add_argument("--fixit-python", default=sys.executable, metavar="PYTHON",
                        help="interpreter whose environment has fixit (default: this one)")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one in-process check_source pass")
    args = parser.parse_args()
    if args.repeats < 1 or args.files < 1:
        fail("--files and --repeats must be at least 1")

    env = child_env()
    # Before building anything: a missing fixit is the one expected failure.
    fixit, fixit_version, fixit_libcst = fixit_base(args.fixit_python, env)
    root, cleanup, origin = prepare_corpus(args)
    try:
        paths = python_files(root)
        n_files = len(paths)
        lines, code_lines = count_lines(paths)
        gh_cmd, gh_startup, gh_note = gradhealth_commands(root, env)
        fx_cmd = [*fixit, "lint", str(root)]
        commands = {
            "A python -c check_source loop" if gh_note else "A gradhealth scan --static-only": gh_cmd,
            "B fixit lint": fx_cmd,
            "  import gradcheck_tool.static" if gh_note else "  gradhealth --version (start-up)": gh_startup,
            "  fixit --version (start-up)": [*fixit, "--version"],
        }
        if not gh_note:  # what a scan imports beyond the CLI: libcst and the rules
            commands["  import gradcheck_tool.static"] = [sys.executable, "-c", "import gradcheck_tool.static"]

        print(f"corpus: {root} ({origin})")
        print(f"scanned: {n_files} files, {lines:,} lines ({code_lines:,} non-blank, non-comment)")
        print(f"python {platform.python_version()} ({sys.executable}), libcst "
              f"{importlib.metadata.version('libcst')}, gradhealth {_gradhealth_version()}, fixit "
              f"{fixit_version} (libcst {fixit_libcst}, {args.fixit_python})")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; fixit lints in a process pool over "
              f"all CPUs, gradhealth in one process")
        if "PYTHONDONTWRITEBYTECODE" in os.environ:
            print("note: PYTHONDONTWRITEBYTECODE is unset for the timed commands (bytecode caching on, "
                  "as on a developer machine)")
        if gh_note:
            print(gh_note)
        for label, cmd in commands.items():
            print(f"  {label.strip()}: {' '.join(cmd) if len(' '.join(cmd)) < 160 else cmd[0] + ' -c ...'}")
        print(f"warm-up, then best/median of {args.repeats}, commands alternating ...", flush=True)

        _, _, warm = run(gh_cmd, env)
        check_gradhealth(warm, n_files, bool(gh_note))
        if not gh_note:
            check_gradhealth_read_all(gh_cmd, n_files, env)
        _, _, warm = run(fx_cmd, env)
        check_fixit(warm, n_files)
        for cmd in list(commands.values())[2:]:
            run(cmd, env)
        walls: dict[str, list[float]] = {k: [] for k in commands}
        cpus: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.repeats):
            for label, cmd in commands.items():
                wall, cpu, proc = run(cmd, env)
                if label.startswith("A"):
                    check_gradhealth(proc, n_files, bool(gh_note))
                elif label.startswith("B"):
                    check_fixit(proc, n_files)
                walls[label].append(wall)
                cpus[label].append(cpu)
        inproc, inproc_cpu, codes, parsed, profile = in_process(paths, args.repeats, args.profile)

        print()
        print(f"{'':34} {'best':>10} {'median':>10} {'CPU best':>10} {'files/s':>9}")
        for label in commands:
            print(row(label, walls[label], cpus[label], n_files if label[0] in "AB" else None))
        print(row("  check_source in-process", inproc, inproc_cpu, n_files))
        a, b = [k for k in commands if k.startswith("A")][0], [k for k in commands if k.startswith("B")][0]
        print()
        print(f"ratio fixit / gradhealth, wall-clock: {min(walls[b]) / min(walls[a]):.2f}x best, "
              f"{statistics.median(walls[b]) / statistics.median(walls[a]):.2f}x median; "
              f"CPU seconds: {min(cpus[b]) / min(cpus[a]):.2f}x")
        verdict = "faster" if min(walls[a]) < min(walls[b]) else "SLOWER"
        print(f"gradhealth --static-only is {verdict} than fixit lint on this tree; per file: "
              f"{1000 * min(walls[a]) / n_files:.1f} ms vs {1000 * min(walls[b]) / n_files:.1f} ms wall")
        startup = sum(min(walls[k]) for k in list(commands)[2:] if "gradhealth" in k or "gradcheck" in k)
        print(f"gradhealth analysis in-process {min(inproc):.2f} s ({1000 * min(inproc) / n_files:.1f} ms/file, "
              f"{lines / min(inproc):,.0f} lines/s); start-up before the first file about {startup:.2f} s "
              f"(gradhealth's start-up rows added up)")
        print(f"the rules analysed {parsed} of {n_files} files (the rest match no rule's TRIGGER); findings: "
              + (", ".join(f"{code} {n}" for code, n in sorted(codes.items())) or "none"))
        if profile:
            print("\n" + profile)
    finally:
        if cleanup:
            shutil.rmtree(root, ignore_errors=True)
        elif args.corpus is None:
            print(f"corpus kept at {root}")


def _gradhealth_version() -> str:
    try:
        import gradcheck_tool

        return gradcheck_tool.__version__
    except Exception:  # noqa: BLE001 - a version string is decoration
        return "?"


if __name__ == "__main__":
    main()
