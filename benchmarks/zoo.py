"""The calibration zoo: does `gradhealth scan` stay quiet on real architectures at their default init?

For every model in ``zoo_models.SPECS`` (transformers configs at small sizes, random init, no
downloads; an LSTM LM; a model with optional unused parameters; torchvision's classification
list where torchvision imports, ``zoo_torchvision.py``) this writes a model file into a
temporary directory (``build_model()``, ``example_inputs()``) and scans it through the real CLI,
``python -m gradcheck_tool scan FILE --format json`` with default options (but ``--timeout 900``,
so a loaded machine does not fail a slow probe), twice:

* ``default``: no ``loss_fn``, so the probe's default loss is what is measured;
* ``task``: a ``loss_fn(output, inputs)`` with the realistic task loss (the model's own ``labels``
  loss, or cross-entropy on random labels).

A warning or error on a model at its library's default init is a false alarm, unless the model is
a known true positive (``KNOWN_TRUE_POSITIVES``: HF DeiT, HF MobileViT), which must be found.

    python benchmarks/zoo.py                       # everything (~10-15 min on 2 CPU cores)
    python benchmarks/zoo.py --only resnet-50,bert --variant default
    python benchmarks/zoo.py --family seq2seq --out /tmp/zoo.json
    python benchmarks/zoo.py --only resnet-50 --update  # rescan one model, keep the file's other rows
    /work/venvs/tv/bin/python benchmarks/zoo.py --family torchvision --update  # torchvision's venv

It prints a table (model, family, verdict, findings with codes and severity, wall time, loss,
max_norm) and the false-alarm count, and writes ``benchmarks/zoo_results.json`` and
``benchmarks/zoo_results.md`` (the README's benchmark section quotes the latter).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cli_scan import scan_json  # noqa: E402
from zoo_models import FAMILIES, KNOWN_TRUE_POSITIVES, SPECS  # noqa: E402

VARIANTS = ("default", "task")
MODEL_FILE = '''"""Zoo model {name} ({family}), written by benchmarks/zoo.py."""
import sys

sys.path.insert(0, {here!r})
import zoo_models

SPEC = zoo_models.get({name!r})


def build_model():
    return SPEC.build()


def example_inputs():
    return SPEC.{inputs}()
'''
TASK_LOSS = '''

def loss_fn(output, inputs):
    return SPEC.task_loss(output, inputs)
'''


def environment() -> dict[str, str]:
    """The versions a scan ran under (torchvision's arm runs in its own venv: rows may differ)."""
    import importlib.metadata

    versions = {"python": sys.version.split()[0]}
    for package in ("torch", "transformers", "torchvision"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


@dataclasses.dataclass
class Result:
    model: str
    family: str
    variant: str
    verdict: str  # clean / info / warning / error / failed
    findings: list[dict]
    wall_s: float  # the whole CLI call: interpreter, imports, child process, probe
    probe_s: Optional[float] = None  # the probe itself (the report's duration_s)
    loss: Optional[str] = None
    max_norm: Optional[float] = None
    grad_norms: list[float] = dataclasses.field(default_factory=list)
    error: Optional[str] = None
    env: dict[str, str] = dataclasses.field(default_factory=environment)

    @property
    def alarm(self) -> bool:
        return self.verdict in ("warning", "error")

    @property
    def false_alarm(self) -> bool:
        return self.alarm and self.model not in KNOWN_TRUE_POSITIVES

    @property
    def missed(self) -> bool:
        """A known true positive that the scan did not flag."""
        return self.model in KNOWN_TRUE_POSITIVES and not self.alarm


def write_model_file(directory: Path, name: str, variant: str) -> Path:
    spec = SPECS[name]
    text = MODEL_FILE.format(name=name, family=spec.family, here=str(HERE),
                             inputs="inputs" if variant == "default" else "task_inputs")
    if variant == "task":
        text += TASK_LOSS
    path = directory / f"zoo_{name.replace('-', '_')}_{variant}.py"
    path.write_text(text)
    return path


def verdict_of(findings: list[dict]) -> str:
    severities = {f["severity"] for f in findings}
    return next((s for s in ("error", "warning", "info") if s in severities), "clean")


def scan(name: str, variant: str, directory: Path, timeout: float = 900) -> Result:
    path = write_model_file(directory, name, variant)
    # Default options, but for the wall-clock limit: a loaded CPU must not turn a slow probe into a
    # "failed" row (--timeout bounds the child process; it changes nothing the probe measures).
    done = scan_json(str(path), "--timeout", str(int(timeout)), cwd=directory, timeout=timeout + 120)
    report, wall = done.report, done.wall
    family = SPECS[name].family
    if report is None:
        return Result(name, family, variant, "failed", [], wall, error=(done.stderr.strip() or done.stdout)[-400:])
    probe = report["probes"][0] if report["probes"] else {}
    # Static findings (GH2xx) on a generated file say nothing about the model: keep the probe's.
    findings = [{"code": f["code"], "severity": f["severity"], "module": f["module"], "message": f["message"]}
                for f in report["findings"] if f["code"].startswith("GH1")]
    if probe.get("status") != "ok":
        return Result(name, family, variant, "failed", findings, wall, error=probe.get("reason") or done.stderr[-400:])
    return Result(name, family, variant, verdict_of(findings), findings, wall, probe.get("duration_s"),
                  loss=probe.get("loss"),
                  max_norm=probe.get("recommended_max_norm"), grad_norms=probe.get("total_grad_norms", []))


def short(findings: list[dict], per_code: int = 3) -> str:
    """``code:severity@module`` for each finding, at most ``per_code`` of each code and severity
    (then ``+N``): GH112 names every unused parameter, which would swamp the table."""
    groups: dict[str, list[str]] = {}
    for f in findings:
        groups.setdefault(f"{f['code']}:{f['severity'][0]}", []).append(f"@{f['module']}" if f["module"] else "")
    return ", ".join(", ".join(key + where for where in wheres[:per_code])
                     + (f" +{len(wheres) - per_code}" if len(wheres) > per_code else "")
                     for key, wheres in groups.items()) or "-"


def table(results: list[Result]) -> str:
    from tabulate import tabulate

    rows = [[r.model, r.family, r.variant, r.verdict + (" (FALSE ALARM)" if r.false_alarm else "")
             + (" (MISSED)" if r.missed else ""), short(r.findings) if not r.error else r.error[:80],
             f"{r.wall_s:.1f}", "" if r.probe_s is None else f"{r.probe_s:.1f}",
             (r.loss or "").replace("default: ", "")[:36], "" if r.max_norm is None else f"{r.max_norm:g}"]
            for r in results]
    return tabulate(rows, headers=["model", "family", "loss run", "verdict", "findings (code:severity@module)",
                                   "wall s", "probe s", "loss", "max_norm"], tablefmt="github")


def summary(results: list[Result]) -> dict[str, Any]:
    default = [r for r in results if r.variant == "default"]
    per_family: dict[str, int] = {}
    for r in default:
        per_family[r.family] = per_family.get(r.family, 0) + 1
    return {
        "models": len({r.model for r in results}),
        "per_family": per_family,
        "false_alarms_default_init": sorted(r.model for r in default if r.false_alarm),
        "false_alarms_task_loss": sorted(r.model for r in results if r.variant == "task" and r.false_alarm),
        "true_positives_missed": sorted({r.model for r in default if r.missed}),
        "failed": sorted({f"{r.model}/{r.variant}" for r in results if r.verdict == "failed"}),
        "task_vs_default": compare(results),
    }


def compare(results: list[Result]) -> dict[str, Any]:
    """The two loss runs of each model scanned both ways: same verdict?  And the suggested
    max_norm under the default loss over the task loss's (issue 9: within 2x)."""
    by = {(r.model, r.variant): r for r in results if r.verdict != "failed"}
    both = [(by[m, "default"], by[m, "task"]) for m, v in by if v == "default" and (m, "task") in by]
    ratios = {d.model: d.max_norm / t.max_norm for d, t in both if d.max_norm and t.max_norm}
    outside = sorted(m for m, q in ratios.items() if not 0.5 <= q <= 2)
    return {
        "models": len(both),
        "same_verdict": sum(d.verdict == t.verdict for d, t in both),
        "verdict_differs": sorted(f"{d.model}: {d.verdict} / {t.verdict}" for d, t in both if d.verdict != t.verdict),
        "max_norm_ratio_min": round(min(ratios.values()), 3) if ratios else None,
        "max_norm_ratio_max": round(max(ratios.values()), 3) if ratios else None,
        "max_norm_ratio_outside_2x": {m: round(ratios[m], 3) for m in outside},
    }


def ordered(results: list[Result]) -> list[Result]:
    """Default-loss rows first, then in the zoo's order; rows of models this interpreter cannot
    build (torchvision's, merged with --update from another venv) keep the order they came in."""
    known = {name: i for i, name in enumerate(SPECS)}
    return sorted(results, key=lambda r: (VARIANTS.index(r.variant), known.get(r.model, len(known))))


def write(results: list[Result], out: Path) -> dict[str, Any]:
    results = ordered(results)
    stats = summary(results)
    envs = sorted({json.dumps(r.env, sort_keys=True) for r in results if r.env})
    meta = {"environments": [json.loads(e) for e in envs]}
    out.write_text(json.dumps({"meta": meta, "summary": stats,
                               "results": [dict(dataclasses.asdict(r), false_alarm=r.false_alarm)
                                           for r in results]}, indent=1) + "\n")
    out.with_suffix(".md").write_text(
        "Zoo results, written by benchmarks/zoo.py; run under "
        + "; ".join(", ".join(f"{k} {v}" for k, v in env.items()) for env in meta["environments"]) + ".\n\n"
        + table(results) + "\n\n" + "\n".join(f"- {k}: {v}" for k, v in stats.items()) + "\n")
    return stats


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated zoo model names")
    parser.add_argument("--family", help=f"comma-separated families: {', '.join(FAMILIES)}")
    parser.add_argument("--variant", choices=(*VARIANTS, "both"), default="both")
    parser.add_argument("--out", type=Path, default=HERE / "zoo_results.json",
                        help="JSON results (a .md table is written beside it)")
    parser.add_argument("--update", action="store_true",
                        help="keep --out's other rows: replace only the (model, loss run) pairs scanned now")
    args = parser.parse_args(argv)
    names = list(SPECS)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in SPECS]
        if unknown:
            parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(SPECS)}")
        names = wanted
    if args.family:
        families = {f.strip() for f in args.family.split(",")}
        if families - set(FAMILIES):
            parser.error(f"unknown family {', '.join(sorted(families - set(FAMILIES)))}; known: {', '.join(FAMILIES)}")
        names = [n for n in names if SPECS[n].family in families]
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    kept = []
    if args.update and args.out.exists():
        fields = {f.name for f in dataclasses.fields(Result)}
        kept = [Result(**{k: v for k, v in row.items() if k in fields})
                for row in json.loads(args.out.read_text())["results"]
                if not (row["model"] in names and row["variant"] in variants)]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gradhealth-zoo-") as tmp:
        for variant in variants:  # every default-loss scan first: the false-alarm count rests on them
            for name in names:
                result = scan(name, variant, Path(tmp))
                results.append(result)
                print(f"{name:16s} {variant:8s} {result.verdict:8s} {result.wall_s:6.1f}s  "
                      f"{short(result.findings) if not result.error else result.error[:120]}",
                      file=sys.stderr, flush=True)
                stats = write(kept + results, args.out)  # after each scan: an interrupted run keeps its rows
    results = ordered(kept + results)
    print(table(results))
    print()
    print(f"models: {stats['models']} ({', '.join(f'{k} {v}' for k, v in sorted(stats['per_family'].items()))})")
    print(f"false alarms at default init (default loss): {len(stats['false_alarms_default_init'])} "
          f"{stats['false_alarms_default_init']}")
    print(f"false alarms with the task loss: {len(stats['false_alarms_task_loss'])} {stats['false_alarms_task_loss']}")
    print(f"known true positives missed: {stats['true_positives_missed']}")
    both = stats["task_vs_default"]
    if both["models"]:
        print(f"task loss vs default loss: {both['same_verdict']} of {both['models']} same verdict "
              f"{both['verdict_differs']}; max_norm default/task {both['max_norm_ratio_min']}-"
              f"{both['max_norm_ratio_max']}, outside 2x: {both['max_norm_ratio_outside_2x']}")
    if stats["failed"]:
        print(f"failed scans: {stats['failed']}")
    return 1 if stats["false_alarms_default_init"] or stats["true_positives_missed"] or stats["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
