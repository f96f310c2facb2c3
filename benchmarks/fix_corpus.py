"""Every edit `gradhealth fix --unsafe-fixes` makes on real repositories, checked and matched
against the judgements in benchmarks/fix-judgements.toml.

    python benchmarks/fix_corpus.py /work/corpus/examples /work/corpus/nanoGPT /work/corpus/minGPT \
        /work/corpus/accelerate/examples [--fix-level info] [--import-check]

For each directory (in a git work tree: rows name the repository and the path in it), fixes every Python file in
memory (static rules, as `--static-only`; nothing is written) and prints one row per applied
edit (repo, path, line of the finding, code) and per withheld fix (with the reason).  Checks,
counted at the end: every fixed file parses, adds no undefined name (symtable, before/after),
every edit has a judgement, and with --import-check the fixed file imports (in a subprocess,
10 s) wherever the original did.  Exit 1 when a check fails.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from gradcheck_tool.api import ScanOptions, lint_file
from gradcheck_tool.findings import Severity
from gradcheck_tool.fixes import engine, safety

JUDGEMENTS = Path(__file__).with_name("fix-judgements.toml")


def _imports(path: Path, text: str) -> bool:
    """Whether ``text`` imports as a module beside ``path`` (its own imports resolve) in 10 s."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", dir=path.parent, prefix=".fixcheck-", delete=False) as f:
        f.write(text)
    try:
        code = "import importlib.util as u, sys; s = u.spec_from_file_location('m', sys.argv[1]); " \
               "s.loader.exec_module(u.module_from_spec(s))"
        done = subprocess.run([sys.executable, "-c", code, f.name], cwd=path.parent, capture_output=True,
                              timeout=10)
        return done.returncode == 0
    except subprocess.TimeoutExpired:
        return False
    finally:
        Path(f.name).unlink()


def _original_rows(path: Path, options: ScanOptions, applied) -> list:
    """Each applied finding's row in the original file (a later round reports it in the patched
    text): the original finding with the same code and message, digits aside."""
    def shape(finding):
        return finding.code, re.sub(r"\d+", "#", finding.message)

    original = list(lint_file(path, options).findings)
    rows = []
    for finding in applied:
        match = next((f for f in original if shape(f) == shape(finding)), None)
        if match is not None:
            original.remove(match)
        rows.append(match.location.row if match is not None and match.location else None)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("roots", type=Path, nargs="+")
    parser.add_argument("--fix-level", default="warning", choices=[s.value for s in Severity])
    parser.add_argument("--import-check", action="store_true")
    args = parser.parse_args()
    judged = {(j["repo"], j["path"], j["line"], j["code"]): j["verdict"]
              for j in tomllib.loads(JUDGEMENTS.read_text()).get("edit", [])}
    counts = {"files": 0, "fixed files": 0, "edits": 0, "withheld": 0, "unparsable": 0, "new undefined": 0,
              "unjudged": 0, "imports before": 0, "import lost": 0, "merge": 0, "reject": 0}
    options = ScanOptions(static_only=True)
    for root in args.roots:
        repo = next(p for p in (root.resolve(), *root.resolve().parents) if (p / ".git").exists())
        for path in sorted(root.resolve().rglob("*.py")):
            if any(part.startswith(".") for part in path.relative_to(repo).parts):
                continue
            counts["files"] += 1
            rel = path.relative_to(repo).as_posix()
            try:
                result = engine.fix_file(path, options, unsafe=True, level=Severity(args.fix_level))
            except Exception as err:  # noqa: BLE001 - a corpus file must not stop the run
                print(f"ERROR {repo.name} {rel}: {type(err).__name__}: {err}", flush=True)
                continue
            for finding, reason in result.rejected:
                counts["withheld"] += 1
                print(f"withheld {repo.name} {rel}:{finding.location.row if finding.location else '-'} "
                      f"{finding.code}: {reason}")
            if not result.changed:
                continue
            counts["fixed files"] += 1
            try:
                compile(result.fixed, rel, "exec")
            except SyntaxError:
                counts["unparsable"] += 1
            counts["new undefined"] += bool(safety.new_undefined(result.original, result.fixed))
            if args.import_check and _imports(path, result.original):
                counts["imports before"] += 1
                if not _imports(path, result.fixed):
                    counts["import lost"] += 1
                    print(f"IMPORT LOST {repo.name} {rel}")
            rows = _original_rows(path, options, result.applied)
            for finding, row in zip(result.applied, rows):
                counts["edits"] += 1
                key = (repo.name, rel, row, finding.code)
                verdict = judged.get(key)
                if verdict is None:
                    counts["unjudged"] += 1
                else:
                    counts[verdict] += 1
                print(f"edit {repo.name} {rel}:{row} {finding.code} "
                      f"[{verdict or 'UNJUDGED'}]")
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    bad = counts["unparsable"] + counts["new undefined"] + counts["unjudged"] + counts["import lost"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
