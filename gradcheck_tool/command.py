"""What ``gradhealth scan`` and ``gradhealth fix`` do once their options are parsed: merge the
config, find the files, lint (or fix) each, render the report, and end with the exit code (0
nothing at or above --fail-on; 1 findings at or above it; 2 the tool could not do its job).

Two callers parse the options: :mod:`.cli` (click, every option) and :mod:`.entry`, which
recognises the pre-commit hook's own command line (``scan --static-only [--force-exclude]
PATH...``) and calls :func:`run` without importing click, whose import alone costs a hook run
about as much as pyflakes' whole run.  :func:`run`'s defaults are the CLI's (a test holds them
equal), so both reach the same code with the same values.
"""
from __future__ import annotations

import functools
import re
import sys
from pathlib import Path
from typing import NoReturn, Optional

from gradcheck_tool.config import check_range
from gradcheck_tool.errors import GradhealthError, first_line
from gradcheck_tool.findings import ProbeResult, ProbeStatus, Report, Severity
from gradcheck_tool.toplevel import fail as _fail
from gradcheck_tool.toplevel import say as _say


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


def run(paths: tuple[str, ...], *, fix: bool = False, static_only: Optional[bool] = None, model_expr=None,
        probes=None, train_steps=None, seed=None, device=None, input_shape=None, input_dtype=None, select=(),
        extend_select=(), ignore=(), exclude=(), extend_exclude=(), force_exclude: bool = False, fmt: str = "text",
        output=None, fail_on=None, timeout=None, max_memory=None, unsafe_fixes: bool = False, diff: bool = False,
        fix_level=None, verbose: bool = False, curvature: bool = False, jobs: int = 0, distributed: bool = False,
        amp=None) -> NoReturn:
    """Scan (or with ``fix``, fix) ``paths`` and exit with the status; the keywords are the CLI's
    options, None or empty where not given (then the config's value or the default applies)."""
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
            sys.stdout.write(text)
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
            sys.stdout.write(edits.unified_diff(outcome.original, outcome.fixed, str(path)))
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
