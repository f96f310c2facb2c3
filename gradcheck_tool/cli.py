"""The ``gradhealth`` command: parse options, merge config, run the pipeline, render, set the exit code.

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 the tool
could not do its job (one line on stderr names the cause and the remedy: toplevel.py).
"""
from __future__ import annotations

import functools
import re
import sys
from pathlib import Path
from typing import Optional

import click

from gradcheck_tool import __version__, toplevel
from gradcheck_tool.config import LIMITS, check_range
from gradcheck_tool.errors import GradhealthError, first_line
from gradcheck_tool.findings import ProbeResult, ProbeStatus, Report, Severity
from gradcheck_tool.toplevel import fail as _fail
from gradcheck_tool.toplevel import say as _say

FORMATS = ("text", "json", "sarif", "github", "html")


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeatable options that also take comma-separated lists, like ruff's."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _options(cfg, model_expr, probes, train_steps, seed, device, input_shape, input_dtype, static_only,
             select, extend_select, ignore, timeout, max_memory, verbose, curvature=False, amp=None):
    from gradcheck_tool import registry
    from gradcheck_tool.api import ScanOptions

    if input_dtype and not input_shape:
        raise GradhealthError("--input-dtype needs --input-shape")
    static_only = static_only if static_only is not None else bool(cfg.static_only)
    device = device or cfg.device or "cpu"
    shape = None
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps|auto", device):
        raise GradhealthError(f"unknown --device {device!r}; use cpu, cuda, cuda:N or auto")
    if not static_only and (input_dtype or input_shape):  # checked once here (needs torch); not per file
        from gradcheck_tool import inputs

        if input_dtype:
            inputs.parse_dtype(input_dtype)
        shape = inputs.parse_shape(input_shape) if input_shape else None
    chosen = _split(select) or cfg.select or ("ALL",)
    resolve = functools.partial(registry.resolve, source_only=static_only)
    codes = resolve(chosen, option="--select")
    codes |= resolve(_split(extend_select) + cfg.extend_select, option="--extend-select")
    codes -= resolve(_split(ignore) + cfg.ignore, option="--ignore")
    per_file = tuple((glob, frozenset(resolve(sel, option=f"per-file-ignores {glob!r}")))
                     for glob, sel in cfg.per_file_ignores.items())
    return ScanOptions(
        probes=probes or cfg.probes or 3,
        train_steps=next(v for v in (train_steps, cfg.train_steps, 10) if v is not None), seed=seed if seed is not None else (cfg.seed or 0), device=device,
        model_expr=model_expr, input_shape=shape,
        input_dtype=input_dtype, static_only=static_only, select=frozenset(codes), per_file_ignores=per_file,
        root=cfg.root or Path.cwd(), isolate=True, verbose=verbose,
        timeout=_positive(timeout if timeout is not None else cfg.timeout, 120.0, "--timeout"),
        max_memory=_gib(max_memory if max_memory is not None else cfg.max_memory), curvature=curvature,
        amp=amp,
    )


def _positive(value, default: float, option: str) -> Optional[float]:
    value = check_range(default if value is None else value, option.lstrip("-"), option)
    return value or None


def _gib(value) -> Optional[int]:
    """--max-memory in GiB; 0 turns the cap off (passed on as 0 bytes), None keeps the default."""
    if value is None:
        return None
    return int(check_range(value, "max-memory", "--max-memory") * 1024**3)


@click.group(cls=toplevel.Gradhealth, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradhealth")
def main() -> None:
    """gradhealth: find what will make a PyTorch model explode, vanish or stall before you train it."""


_SCAN_OPTIONS = [
    click.argument("paths", nargs=-1, required=True),
    click.option("--static-only", is_flag=True, default=None,
                 help="Only read the source (GH0xx, GH2xx): never import torch or run the file's code."),
    click.option("--model", "model_expr", metavar="EXPR", help="Expression that builds the model, evaluated in the "
                 'file\'s namespace, e.g. "GPT(GPTConfig(n_layer=2))".'),
    click.option("--probes", type=click.IntRange(*LIMITS["probes"]), help="Probe batches to run.  [default: 3]"),
    click.option("--train-steps", type=click.IntRange(*LIMITS["train-steps"]), metavar="N",
                 help="Steps of the file's own optimizer to run (GH140, GH143); 0: none.  [default: 10]"),
    click.option("--curvature", is_flag=True,
                 help="Also measure the loss's sharpness at init and the lr the file's optimizer is stable at "
                      "(GH144, GH140's advice; ~10-20 Hessian-vector products, needs loss_fn)."),
    click.option("--amp", type=click.Choice(["fp16", "bf16"]),
                 help="Also run the file's optimizer steps under real autocast in this dtype (fp16 with a "
                      "GradScaler, the file's own settings) and judge GH150/GH151 from the skipped steps and the "
                      "scale; an fp32 file is judged as if it trained so."),
    click.option("--seed", type=click.IntRange(*LIMITS["seed"]),
                 help="Seed for the model's init, inputs, dropout and the default loss.  [default: 0]"),
    click.option("--device", help="cpu, cuda, cuda:N or auto.  [default: cpu]"),
    click.option("--input-shape", metavar="N,C,...", help="Shape of random inputs when the file has no example_inputs()."),
    click.option("--input-dtype", metavar="DTYPE", help="dtype for --input-shape (float32, int64, ...)."),
    click.option("--select", multiple=True, metavar="CODES", help="Rules to run: codes, prefixes (GH2) or names."),
    click.option("--extend-select", multiple=True, metavar="CODES", help="Rules to add to the selection."),
    click.option("--ignore", multiple=True, metavar="CODES", help="Rules to skip."),
    click.option("--exclude", multiple=True, metavar="GLOBS", help="Paths to skip (replaces the default list)."),
    click.option("--extend-exclude", multiple=True, metavar="GLOBS", help="Paths to skip, on top of the default list."),
    click.option("--force-exclude", is_flag=True,
                 help="Apply excludes to files named on the command line too (pre-commit)."),
    click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True),
    click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report here."),
    click.option("--fail-on", type=click.Choice([s.value for s in Severity]),
                 help="Exit 1 when a finding is at or above this severity.  [default: warning]"),
    click.option("--timeout", type=float, metavar="SECONDS",
                 help="Wall-clock limit for each file's probe, which runs in a child process; 0: none.  [default: 120]"),
    click.option("--max-memory", type=float, metavar="GIB",
                 help="Memory cap for the probing child on CPU; 0: none.  [default: 80% of RAM]"),
    click.option("--unsafe-fixes", is_flag=True, help="With fixing: also apply fixes that change training behaviour."),
    click.option("--diff", is_flag=True, help="With fixing: print the unified diff, write nothing."),
    click.option("--fix-level", type=click.Choice([s.value for s in Severity]),
                 help="With fixing: fix findings at or above this severity.  [default: --fail-on]"),
    click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors."),
    click.option("--jobs", type=click.IntRange(0, 1024), default=0, metavar="N",
                 help="Processes for a static-only scan of many files; 0: one per CPU, 1: this process only."),
]


def _scan_options(command):
    for option in reversed(_SCAN_OPTIONS):
        command = option(command)
    return command


@main.command()
@_scan_options
@click.option("--fix", is_flag=True, help="Apply fixes, as `gradhealth fix` does.")
@click.option("--distributed", is_flag=True,
              help="Under torchrun: shard the model over the job's processes with FSDP2 and probe it there "
                   "(one file; rank 0 writes the report).")
def scan(fix: bool, **kwargs) -> None:
    """Check the training code and probe the models in PATHS (files or directories).

    Static rules read the source.  The probe imports each file under a private name (its
    __main__ block never runs), in a child process, and finds the model from --model,
    build_model(), a module-level nn.Module, or the one nn.Module class that builds with no
    arguments.  Inputs come from example_inputs(), --input-shape, or the first layer; the loss
    from loss_fn(output, inputs) or a task-shaped default (the model's own loss or, for a CTC
    model, its CTC loss; cross-entropy on random labels for logits; else MSE).  Settings may also live in [tool.gradhealth] of
    the nearest pyproject.toml; options given here win.
    """
    _run(fix=fix or kwargs["diff"], **kwargs)


@main.command()
@_scan_options
def fix(**kwargs) -> None:
    """Apply the fixes for the findings in PATHS, verified by scanning (and probing) again.

    Safe fixes keep meaning; --unsafe-fixes also applies those that change training
    (inserting clipping, changing init or the learning rate, adding weight decay).  Only
    findings at or above --fix-level (default: --fail-on) are fixed.  A fix whose new code
    cannot be proven to run where it lands (a name not bound there, a method its receiver's
    type lacks) is withheld with the reason.  Runtime fixes are verified by probing the patched
    file before it is written, and taken back when its numbers do not improve.  The run ends
    with one line: fixed, no automatic fix, withheld.  Exits 0 when nothing at --fail-on
    remains (with --diff: 1 when there is something to change; 2 when a probe could not run).
    """
    _run(fix=True, **kwargs)


def _run(paths, static_only, model_expr, probes, train_steps, seed, device, input_shape, input_dtype, select, extend_select,
         ignore, exclude, extend_exclude, force_exclude, fmt, output, fail_on, timeout, max_memory, unsafe_fixes,
         diff, fix_level, verbose, fix, curvature=False, jobs=0, distributed=False, amp=None) -> None:
    import dataclasses

    from gradcheck_tool import config, files, pool
    from gradcheck_tool.launch import Job, is_rank_zero
    from gradcheck_tool.report import RENDERERS

    try:
        cfg = config.load(Path(paths[0]) if paths else Path.cwd())
        options = _options(cfg, model_expr, probes, train_steps, seed, device, input_shape, input_dtype, static_only,
                           select, extend_select, ignore, timeout, max_memory, verbose, curvature, amp)
        patterns = (_split(exclude) or cfg.exclude or files.DEFAULT_EXCLUDE) + _split(extend_exclude) + cfg.extend_exclude
        targets = files.python_files(paths, options.root, patterns, force_exclude)
        threshold = Severity(fail_on or cfg.fail_on or "warning")
        files.check_output(None if diff else output)
        if distributed:
            _check_distributed(targets, options, fix)
            options = dataclasses.replace(options, distributed=True)
        job = Job((options.timeout or 86400.0) + 300.0) if distributed else None
    except GradhealthError as err:
        _fail(str(err))
    findings, probes_done, failed, changed = [], [], False, False
    level = Severity(fix_level) if fix_level else threshold
    tally = _Tally(level, unsafe_fixes, diff)
    linted = None if fix else pool.lint_files(targets, options, jobs)
    for path in targets:
        linted_one = None  # the pool's Outcome: the traceback where the file was linted
        try:
            if fix:
                outcome = _fix_one(path, options, unsafe_fixes, diff, level)
                tally.add(outcome)
                failed |= outcome.probe_error is not None
                changed |= outcome.changed
                found, probe = list(outcome.remaining), outcome.probe
            else:
                linted_one = next(linted)
                result = linted_one.get()
                found, probe = list(result.findings), result.probe
            findings.extend(found)
        except pool.WorkerCrash as err:
            _fail(str(err))
        except Exception as err:  # noqa: BLE001 - one line per file, the traceback only on request
            if verbose and linted_one is not None:
                print(linted_one.trace, file=sys.stderr, end="")
            elif verbose:
                import traceback

                traceback.print_exc()
            message = _file_error(path, err)
            _say(f"error: {message}")
            failed = True
            probe = ProbeResult(str(path), ProbeStatus.FAILED, reason=message)
        if probe is not None:
            probes_done.append(probe)
            if probe.status is ProbeStatus.SKIPPED and is_rank_zero():
                _say(f"{path}: probe skipped: {probe.reason}")
    report = Report(findings=tuple(sorted(findings, key=lambda f: f.sort_key)), probes=tuple(probes_done),
                    files=len(targets), root=str(options.root.resolve()))
    if not diff and is_rank_zero():  # under torchrun every rank holds the same report: rank 0 writes it
        text = RENDERERS[fmt](report)
        if output:
            files.write_report(output, text)
        else:
            click.echo(text, nl=False)
    if fix:
        _say(tally.line())
    code = 2 if failed else 1 if diff and changed else 1 if report.worst_at_least(threshold) else 0
    sys.exit(job.finish(code) if job is not None else code)


def _check_distributed(targets, options, fix: bool) -> None:
    from gradcheck_tool.launch import launch_problem

    problem = launch_problem()
    if problem is not None:
        raise GradhealthError(problem)
    if fix:
        raise GradhealthError("--distributed scans, it does not fix: drop --fix/--diff, or fix without torchrun")
    if options.static_only:
        raise GradhealthError("--distributed shards the probe, and --static-only runs none: drop one of them")
    if options.amp:
        raise GradhealthError("--distributed does not run the --amp steps yet: drop one of them")
    if len(targets) != 1:
        raise GradhealthError(f"--distributed probes one file per torchrun job, and {len(targets)} were found: "
                              "name one file")


def _file_error(path: Path, err: Exception) -> str:
    if isinstance(err, GradhealthError):
        return str(err)
    if isinstance(err, OSError):
        return (f"{path}: cannot read it ({err.strerror or first_line(err)}); check that it exists and that "
                "its permissions let you read it")
    if isinstance(err, RecursionError):
        return f"{path}: nested too deeply to analyse ({first_line(err)}); split the deepest expression"
    return f"{path}: internal error {type(err).__name__}: {first_line(err)} (please report it; --verbose shows where)"


def _fix_one(path: Path, options, unsafe: bool, diff: bool, level: Severity):
    """Fix one file: the diff on stdout with --diff, else write it; what happened goes to stderr."""
    from gradcheck_tool.fixes import edits, engine

    outcome = engine.fix_file(path, options, unsafe=unsafe, display_name=str(path), level=level)
    if outcome.probe_error:
        _say(f"note: {outcome.probe_error} (the probe could not run: only static fixes were made)")
    for check in outcome.verifications:
        _say(f"{path}: {check.describe()}")
    for finding, reason in outcome.rejected:
        _say(f"{path}: not applied: {finding.code} {finding.name}: {reason}")
    if outcome.changed:
        if diff:
            click.echo(edits.unified_diff(outcome.original, outcome.fixed, str(path)), nl=False)
        else:
            engine.write_atomic(path, outcome.fixed)
        verb = "Would fix" if diff else "Fixed"
        codes = ", ".join(sorted({f.code for f in outcome.applied}))
        _say(f"{path}: {verb} {len(outcome.applied)} finding(s): {codes}")
    return outcome


class _Tally:
    """The one line ``fix`` always ends with: what was fixed, what has no automatic fix, what
    was withheld (unsafe or unverified), and what other options would fix."""

    def __init__(self, level: Severity, unsafe: bool, diff: bool) -> None:
        self.level, self.unsafe, self.diff = level, unsafe, diff
        self.fixed: list[str] = []
        self.manual: list[str] = []
        self.withheld: list[str] = []
        self.needs_unsafe = 0
        self.below = 0

    def add(self, outcome) -> None:
        self.fixed += [f.code for f in outcome.applied]
        self.withheld += [f.code for f, _ in outcome.rejected]
        held = {(f.code, f.location) for f, _ in outcome.rejected}
        for finding in outcome.remaining:
            if (finding.code, finding.location) in held:
                continue
            editable = bool(finding.fix and finding.fix.edits and finding.fix.applicability.value != "displayonly")
            if not finding.severity.at_least(self.level):
                self.below += editable
            elif not editable:
                self.manual.append(finding.code)
            elif not self.unsafe:
                self.needs_unsafe += 1

    def line(self) -> str:
        def codes(found: list[str]) -> str:
            return f" ({', '.join(sorted(set(found)))})" if found else ""

        parts = [f"{'Would fix' if self.diff else 'Fixed'} {len(self.fixed)} finding(s){codes(self.fixed)}",
                 f"{len(self.manual)} with no automatic fix{codes(self.manual)}",
                 f"{len(self.withheld)} withheld as unsafe or unverified{codes(self.withheld)}"]
        if self.needs_unsafe:
            parts.append(f"{self.needs_unsafe} more with --unsafe-fixes")
        if self.below:
            parts.append(f"{self.below} more below --fix-level {self.level.value}")
        return "; ".join(parts) + "."


@main.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
def rule(code: Optional[str], show_all: bool) -> None:
    """Show a rule's documentation, by code (GH102) or name (vanishing-gradients)."""
    from gradcheck_tool import registry

    if show_all or not code:
        for rule_cls in registry.ALL_RULES.values():
            click.echo(f"{rule_cls.CODE}  {rule_cls.NAME:28s} {registry.summary(rule_cls)}")
        return
    try:
        match = registry.find(code)
    except GradhealthError as err:
        _fail(str(err))
    click.echo(f"{match.CODE} {match.NAME} (default severity: {match.SEVERITY.value})\n")
    click.echo(registry.documentation(match))


if __name__ == "__main__":  # pragma: no cover
    main()
