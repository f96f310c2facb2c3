"""Precision of the static rules on real repositories, against judgements kept in the repo.

    python benchmarks/realworld.py --corpus DIR [--jobs N] [--stubs FILE] [--judgements FILE]

``DIR`` holds one checkout per repository, named as in the judgement file
(``benchmarks/realworld-judgements.toml``): its ``[[repo]]`` tables name each repository,
its URL, the commit judged and the sub-folders scanned (``paths``); its ``[[finding]]``
tables hold one verdict per warning or error: repo, commit, path, line, code, verdict
(``true`` / ``false`` / ``debatable``) and a one-line reason. Only judgements are kept,
never the repositories' code.

The script scans every ``.py`` file under those folders with the static rules (as
``gradhealth scan --static-only`` does, suppressions aside), matches each warning and error
to its judgement by (repo, path, line, code), and prints: the corpus (repositories, files,
lines), the findings per rule and severity, and precision per rule, with ``debatable``
counted against. Then the unjudged findings, and judgements whose finding is no longer
reported (false alarms since fixed, kept as the record of why).

Exit status: 0 when every warning and error is judged, 1 when one is not (``--stubs FILE``
writes TOML entries for them, verdicts left empty), 2 for bad input (no such corpus, a
repository missing from it, a malformed judgement file).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gradcheck_tool.static import check_source  # noqa: E402

VERDICTS = ("true", "false", "debatable")
TARGET = 0.9


@dataclass(frozen=True)
class Hit:
    repo: str
    path: str  # relative to the repository root, with /
    line: int
    code: str
    severity: str
    message: str
    why: str = ""  # the finding's evidence "risk" (GH201: what the model is), where it has one

    @property
    def key(self) -> tuple[str, str, int, str]:
        return self.repo, self.path, self.line, self.code


def fail(message: str) -> NoReturn:
    print(f"realworld: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_judgements(path: Path) -> tuple[list[dict], dict[tuple, dict]]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        fail(f"cannot read {path}: {error}")
    repos = data.get("repo", [])
    names = {r.get("name") for r in repos}
    judged: dict[tuple, dict] = {}
    for entry in data.get("finding", []):
        missing = {"repo", "commit", "path", "line", "code", "verdict", "reason"} - entry.keys()
        if missing:
            fail(f"{path}: a finding lacks {sorted(missing)}: {entry}")
        if entry["verdict"] not in VERDICTS:
            fail(f"{path}: verdict must be one of {VERDICTS}: {entry}")
        if entry["repo"] not in names:
            fail(f"{path}: finding for a repo with no [[repo]] table: {entry['repo']}")
        key = (entry["repo"], entry["path"], entry["line"], entry["code"])
        if key in judged:
            fail(f"{path}: judged twice: {key}")
        judged[key] = entry
    return repos, judged


def head(checkout: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def scan_file(job: tuple[str, str, str]) -> tuple[list[Hit], list[Hit], int]:
    """(warnings and errors, infos, lines) of one file."""
    repo, root, rel = job
    path = Path(root, rel)
    source = path.read_text(encoding="utf-8", errors="replace")
    loud, quiet = [], []
    # The file's real path, as the CLI passes it: GH201 reads the project's modules beside it.
    for f in check_source(source, str(path)):
        hit = Hit(repo, rel, f.location.row if f.location else 0, f.code, f.severity.value, f.message,
                  str(f.evidence.get("risk", "")))
        (quiet if f.severity.value == "info" else loud).append(hit)
    return loud, quiet, source.count("\n") + 1


def collect(corpus: Path, repos: list[dict]) -> list[tuple[str, str, str]]:
    jobs = []
    for repo in repos:
        checkout = corpus / repo["name"]
        if not checkout.is_dir():
            fail(f"{checkout} is missing: clone {repo['url']} at {repo['commit']} there")
        for sub in repo.get("paths", ["."]):
            folder = checkout / sub
            if not folder.exists():
                fail(f"{folder} does not exist (repo {repo['name']}, paths {repo.get('paths')})")
            files = [folder] if folder.is_file() else sorted(folder.rglob("*.py"))
            jobs += [(repo["name"], str(checkout), p.relative_to(checkout).as_posix()) for p in files]
    return jobs


def stub(hit: Hit, commit: str) -> str:
    message = hit.message.replace("\\", "\\\\").replace('"', '\\"')
    return (f'[[finding]]\nrepo = "{hit.repo}"\ncommit = "{commit}"\npath = "{hit.path}"\n'
            f'line = {hit.line}\ncode = "{hit.code}"\nverdict = ""\nreason = ""\n'
            f'# {hit.severity}: {message}\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder holding one checkout per repository")
    parser.add_argument("--judgements", type=Path, default=HERE / "realworld-judgements.toml")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (default: one per CPU)")
    parser.add_argument("--stubs", type=Path, help="write TOML stubs for unjudged findings here")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        fail(f"--corpus {args.corpus} is not a folder")
    repos, judged = load_judgements(args.judgements)
    jobs = collect(args.corpus, repos)
    commits = {r["name"]: head(args.corpus / r["name"]) for r in repos}
    for repo in repos:
        if commits[repo["name"]] != repo["commit"]:
            print(f"NOTE: {repo['name']} is at {commits[repo['name']]}, judged at {repo['commit']}: "
                  "line numbers may have moved", file=sys.stderr)

    loud: list[Hit] = []
    infos: Counter = Counter()
    reasons: Counter = Counter()  # infos by (code, why)
    files: Counter = Counter()
    lines: Counter = Counter()
    with ProcessPoolExecutor(args.jobs or None) as pool:
        for (repo, _, _), (hits, quiet, n) in zip(jobs, pool.map(scan_file, jobs, chunksize=8)):
            loud += hits
            infos.update(h.code for h in quiet)
            reasons.update((h.code, h.why) for h in quiet if h.why)
            files[repo] += 1
            lines[repo] += n

    print(f"corpus: {len(repos)} repositories, {sum(files.values())} files, {sum(lines.values()):,} lines")
    for repo in repos:
        name = repo["name"]
        print(f"  {name:<24} {files[name]:>5} files {lines[name]:>9,} lines  {commits[name][:12]}  "
              f"{', '.join(repo.get('paths', ['.']))}")

    verdicts: dict[str, Counter] = defaultdict(Counter)
    unjudged: list[Hit] = []
    seen = set()
    for hit in loud:
        entry = judged.get(hit.key)
        if entry is None:
            unjudged.append(hit)
            continue
        seen.add(hit.key)
        verdicts[hit.code][entry["verdict"]] += 1
    severities = Counter((h.code, h.severity) for h in loud)

    print(f"\n{'rule':<7} {'errors':>6} {'warnings':>8} {'infos':>6}   {'true':>4} {'false':>5} "
          f"{'debatable':>9} {'unjudged':>8}   precision")
    codes = sorted({h.code for h in loud} | set(infos))
    worst = 1.0
    for code in codes:
        v = verdicts[code]
        judged_n = sum(v.values())
        missing = sum(1 for h in unjudged if h.code == code)
        precision = v["true"] / judged_n if judged_n else None
        if precision is not None:
            worst = min(worst, precision)
        shown = "-" if precision is None else f"{precision:.2f}" + ("" if precision >= TARGET else "  (below 0.9)")
        print(f"{code:<7} {severities[code, 'error']:>6} {severities[code, 'warning']:>8} {infos[code]:>6}   "
              f"{v['true']:>4} {v['false']:>5} {v['debatable']:>9} {missing:>8}   {shown}")
    total = Counter()
    for v in verdicts.values():
        total.update(v)
    n = sum(total.values())
    print(f"{'all':<7} {sum(1 for h in loud if h.severity == 'error'):>6} "
          f"{sum(1 for h in loud if h.severity == 'warning'):>8} {sum(infos.values()):>6}   "
          f"{total['true']:>4} {total['false']:>5} {total['debatable']:>9} {len(unjudged):>8}   "
          + (f"{total['true'] / n:.2f}" if n else "-"))
    print(f"lowest per-rule precision: {worst:.2f} (target >= {TARGET})")
    for code in sorted({c for c, _ in reasons}):
        why = sorted(((n, w) for (c, w), n in reasons.items() if c == code), reverse=True)
        print(f"{code} infos by why: " + ", ".join(f"{w} {n}" for n, w in why))

    gone = [entry for key, entry in judged.items() if key not in seen]
    if gone:
        print(f"\njudged but no longer reported: {len(gone)} "
              f"({Counter(e['verdict'] for e in gone)['false']} of them false alarms)")
        for e in sorted(gone, key=lambda e: (e["code"], e["repo"], e["path"], e["line"])):
            print(f"  {e['code']} {e['verdict']:<9} {e['repo']}/{e['path']}:{e['line']}  {e['reason']}")
    if unjudged:
        print(f"\nunjudged: {len(unjudged)}")
        for h in sorted(unjudged, key=lambda h: h.key):
            print(f"  {h.code} {h.severity:<7} {h.repo}/{h.path}:{h.line}  {h.message[:110]}")
        if args.stubs:
            args.stubs.write_text("\n".join(stub(h, commits[h.repo]) for h in sorted(unjudged, key=lambda h: h.key)))
            print(f"stubs written to {args.stubs}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
