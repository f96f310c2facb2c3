"""The ``gradhealth`` command: parse options, run the pipeline, render, set the exit code.

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 the tool
could not do its job (one line on stderr names the cause and the remedy).
"""
from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Optional

import click

from gradcheck_tool import __version__
from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.findings import ProbeResult, ProbeStatus, Report, Severity

FORMATS = ("text", "json")


def _fail(message: str) -> "NoReturn":  # noqa: F821
    click.echo(f"gradhealth: error: {message}", err=True)
    sys.exit(2)


class _Progress:
    """Progress on stderr, shown only once a probe has taken more than a moment."""

    DELAY_S = 1.0

    def __init__(self, filename: str):
        self.filename = filename
        self.start = time.perf_counter()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if time.perf_counter() - self.start < self.DELAY_S:
            return
        self.shown = True
        end = "\n" if done == total or not sys.stderr.isatty() else "\r"
        click.echo(f"gradhealth: probing {self.filename}: batch {done}/{total}", err=True, nl=False)
        click.echo(end, err=True, nl=False)


def _python_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.py") if not any(part.startswith(".") for part in p.parts))
            if not found:
                raise GradhealthError(f"{raw}: directory has no Python files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise GradhealthError(f"{raw}: no such file or directory; give a Python file or a directory of them")
    return files


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradhealth")
def main() -> None:
    """gradhealth: find what will make a PyTorch model explode, vanish or stall before you train it."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", "model_expr", metavar="EXPR", help='Expression that builds the model, evaluated in the '
              'file\'s namespace, e.g. "GPT(GPTConfig(n_layer=2))".')
@click.option("--probes", type=click.IntRange(min=1), default=3, show_default=True, help="Probe batches to run.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for inputs, dropout and the default loss.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--input-shape", metavar="N,C,...", help="Shape of random inputs when the file has no example_inputs().")
@click.option("--input-dtype", metavar="DTYPE", help="dtype for --input-shape (float32, int64, ...).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report here.")
@click.option("--fail-on", type=click.Choice([s.value for s in Severity]), default="warning", show_default=True,
              help="Exit 1 when a finding is at or above this severity.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
def scan(paths, model_expr, probes, seed, device, input_shape, input_dtype, fmt, output, fail_on, verbose) -> None:
    """Probe the models in PATHS and report what will keep them from training.

    Each file is imported under a private name (its __main__ block never runs); the model is
    found from --model, build_model(), a module-level nn.Module, or the one nn.Module class
    that builds with no arguments.  Inputs come from example_inputs(), --input-shape, or the
    first layer; the loss from loss_fn(output, inputs) or a scale-free default.
    """
    from gradcheck_tool import api, inputs
    from gradcheck_tool.loader import resolve_device
    from gradcheck_tool.report import RENDERERS

    try:
        files = _python_files(paths)
        options = api.ScanOptions(probes=probes, seed=seed, device=device, model_expr=model_expr,
                                  input_shape=inputs.parse_shape(input_shape) if input_shape else None,
                                  input_dtype=input_dtype)
        if input_dtype and not input_shape:
            raise GradhealthError("--input-dtype needs --input-shape")
        if input_dtype:
            inputs.parse_dtype(input_dtype)
        resolve_device(device)  # a bad --device is one error, not one per file
    except GradhealthError as err:
        _fail(str(err))
    findings, probes_done, failed = [], [], False
    for path in files:
        try:
            found, probe = api.scan_path(path, options, progress=_Progress(str(path)), display_name=str(path))
        except GradhealthError as err:
            if verbose:
                traceback.print_exc()
            click.echo(f"gradhealth: error: {err}", err=True)
            failed = True
            probe, found = ProbeResult(str(path), ProbeStatus.FAILED, reason=str(err)), []
        findings.extend(found)
        probes_done.append(probe)
        if probe.status is ProbeStatus.SKIPPED:
            click.echo(f"gradhealth: {path}: probe skipped: {probe.reason}", err=True)
    report = Report(findings=tuple(sorted(findings, key=lambda f: f.sort_key)), probes=tuple(probes_done),
                    files=len(files))
    text = RENDERERS[fmt](report)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    if failed:
        sys.exit(2)
    sys.exit(1 if report.worst_at_least(Severity(fail_on)) else 0)


@main.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
def rule(code: Optional[str], show_all: bool) -> None:
    """Show a rule's documentation, by code (GH102) or name (vanishing-gradients)."""
    from gradcheck_tool.rules import RULES

    if show_all or not code:
        for rule_cls in RULES.values():
            click.echo(f"{rule_cls.CODE}  {rule_cls.NAME:28s} {rule_cls.summary()}")
        return
    wanted = code.strip()
    match = next((r for r in RULES.values() if wanted.upper() == r.CODE or wanted.lower() == r.NAME), None)
    if match is None:
        _fail(f"unknown rule {code!r}; `gradhealth rule --all` lists them")
    click.echo(f"{match.CODE} {match.NAME} (default severity: {match.SEVERITY.value})\n")
    click.echo(match.documentation())


if __name__ == "__main__":  # pragma: no cover
    main()
