"""The pipeline, top to bottom: read -> static rules -> probe -> runtime rules -> combine -> select -> Report.

``lint_file`` is what the CLI runs per file; ``scan`` is the Python API for a model already
in memory.  This module never imports torch itself: the probe is loaded on first use, so
a static-only scan runs where torch is not installed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator, Optional

from gradcheck_tool import registry, suppressions
from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.findings import (
    Applicability,
    Finding,
    Fix,
    Position,
    ProbeResult,
    ProbeStatus,
    Report,
    Severity,
)
from gradcheck_tool.fixes.codemods import attach_runtime_fixes
from gradcheck_tool.import_safety import training_at_import
from gradcheck_tool.static.rules.clip_threshold import ClipThreshold, ClipThresholdTooLow
from gradcheck_tool.static.engine import PROBE_CHECKED_RULES, analyse
from gradcheck_tool.static.analysis.optim import OptimizerCall

Progress = Callable[[int, int], None]
STATIC_FAMILIES = ("GH0", "GH2")


@dataclass(frozen=True)
class ScanOptions:
    """How :func:`scan` runs: the probe's size, the rules selected, the outputs asked for."""

    probes: int = 3
    train_steps: int = 10  # steps of the file's own optimizer (GH140, GH143); 0 skips them
    seed: int = 0
    device: str = "cpu"
    model_expr: Optional[str] = None
    input_shape: Optional[tuple[int, ...]] = None
    input_dtype: Optional[str] = None
    static_only: bool = False
    select: frozenset[str] = field(default_factory=lambda: frozenset(registry.ALL_RULES))
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = ()  # (glob, codes)
    root: Path = field(default_factory=Path.cwd)
    isolate: bool = False  # probe in a child process (the CLI always does)
    timeout: Optional[float] = 120.0  # seconds per file when isolated; None: no limit
    max_memory: Optional[int] = None  # bytes for the isolated child; None: 80% of physical memory
    verbose: bool = False
    curvature: bool = False  # measure the stability bound before the optimizer steps (GH144, GH140's advice)
    distributed: bool = False  # shard the model with FSDP2 over the torchrun job (probe/sharded.py)
    amp: Optional[str] = None  # "fp16"/"bf16": a real autocast (+ GradScaler) run of the steps (GH150, GH151)

    def enabled(self, path: Path) -> frozenset[str]:
        try:
            relative = path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            relative = path.resolve().as_posix()
        codes = set(self.select)
        for glob, ignored in self.per_file_ignores:
            if fnmatch.fnmatchcase(relative, glob) or fnmatch.fnmatchcase(PurePosixPath(relative).name, glob):
                codes -= ignored
        return frozenset(codes)


@dataclass(frozen=True)
class FileResult:
    """One file's findings and, when a probe was asked for, its probe result."""

    findings: tuple[Finding, ...]
    probe: Optional[ProbeResult]  # None when no probe was asked for (static-only, or no runtime rule selected)


def _not_utf8(filename: str, err: UnicodeDecodeError, raw: bytes) -> Finding:
    row = raw[: err.start].count(b"\n") + 1
    column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
    return Finding("GH001", "syntax-error", Severity.ERROR,
                   f"not valid UTF-8 ({err.reason} at byte {err.start}); save the file as UTF-8",
                   filename, Position(row, column), Position(row, column + 1), evidence={"byte": err.start})


def calibrate_clipping(static: list[Finding], runtime: list[Finding], probe: ProbeResult,
                       thresholds: Iterable[ClipThreshold] = (), undecided: Iterable[Finding] = ()) -> list[Finding]:
    """GH201 on a probed file quotes the measured max_norm, and is raised a level when the probe
    saw gradients that need clipping: an exploding finding, or a global gradient norm that
    varies more than 2x between probe batches; a GH201 the source could not settle (``undecided``:
    the model is built where the source does not show it) is reported only then.  A literal clip
    threshold more than 10x below every measured global norm becomes GH212."""
    record = probe.record
    if record is None:
        return static
    static = static + _thresholds_too_low(thresholds, record, probe.filename)
    exploding = sorted({f.code for f in runtime if f.code in ("GH101", "GH105", "GH130")})
    norms = record.total_grad_norms
    spread = max(norms) / min(norms) if norms and min(norms) > 0 else 1.0
    raise_level = bool(exploding) or spread > 2.0
    if raise_level:
        static = static + list(undecided)
    if not any(f.code == "GH201" for f in static):
        return static
    # Through time, clipping is the remedy (Pascanu et al. 2013); across depth the init is, and a
    # threshold measured on a mis-initialised model would be meaningless.
    init_driven = [code for code in exploding if code != "GH130"]
    out = []
    for finding in static:
        if finding.code != "GH201":
            out.append(finding)
            continue
        if init_driven:
            note = (f" The probe found {', '.join(init_driven)}: fix the init first, then re-run gradhealth "
                    "for a clipping threshold.")
        elif record.recommended_max_norm:
            note = (f" The probe measured global gradient norms {min(norms):.3g}-{max(norms):.3g} across "
                    f"batches: clip at max_norm={record.recommended_max_norm:g}.")
        else:
            note = ""
        severity = finding.severity
        if raise_level:
            severity = Severity.WARNING if severity is Severity.INFO else Severity.ERROR
        fix = finding.fix
        if fix is not None and record.recommended_max_norm and not init_driven:
            value = f"max_norm={record.recommended_max_norm:g}"
            fix = dataclasses.replace(
                fix, message=fix.message.replace("max_norm=1.0", value),
                edits=tuple(dataclasses.replace(e, content=e.content.replace("max_norm=1.0", value)) for e in fix.edits))
        out.append(dataclasses.replace(
            finding, message=finding.message.rstrip(".") + "." + note, severity=severity, fix=fix,
            evidence={**finding.evidence, "probe_grad_norms": list(norms),
                      "probe_max_norm": record.recommended_max_norm, "probe_exploding": exploding}))
    return out


def _thresholds_too_low(thresholds: Iterable[ClipThreshold], record: Any, filename: str) -> list[Finding]:
    norms = [n for n in record.total_grad_norms if n > 0]
    if not norms:
        return []
    out = []
    for clip in thresholds:
        ratio = min(norms) / clip.value
        if ratio <= ClipThresholdTooLow.RATIO:
            continue
        advice = f"max_norm={record.recommended_max_norm:g}" if record.recommended_max_norm else "a max_norm near it"
        out.append(Finding(
            ClipThresholdTooLow.CODE, ClipThresholdTooLow.NAME, ClipThresholdTooLow.SEVERITY,
            f"`{clip.text}` clips at {clip.value:g}, {ratio:.3g}x below the smallest global gradient norm the "
            f"probe measured ({min(norms):.3g}-{max(norms):.3g}): every step is shrunk, not just the spikes; "
            f"clip at {advice}",
            filename, clip.start, clip.end,
            evidence={"max_norm": clip.value, "probe_grad_norms": list(record.total_grad_norms),
                      "ratio": round(ratio, 3), "probe_max_norm": record.recommended_max_norm},
            fix=Fix(Applicability.DISPLAY_ONLY, f"Clip at {advice} (twice the median measured norm).")))
    return out


def lint_file(path: Path, options: ScanOptions, progress: Optional[Progress] = None,
              display_name: Optional[str] = None, text: Optional[str] = None) -> FileResult:
    """Static and runtime findings for one file, filtered by selection and suppressions.

    ``text`` lints a proposed new content of ``path`` (the fix engine's patched source): the
    probe then imports it from a hidden sibling file, so the file's own imports still resolve.
    Raises GradhealthError when the probe could not run (the CLI reports it and exits 2).
    """
    filename = display_name or str(path)
    enabled = options.enabled(path)
    raw = path.read_bytes() if text is None else text.encode("utf-8")
    try:
        source = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        found = [_not_utf8(filename, err, raw)]
        return FileResult(tuple(f for f in found if f.code in enabled),
                          ProbeResult(filename, ProbeStatus.SKIPPED, "not valid UTF-8"))
    # GH212 compares the file's clip threshold with the probe's norms: it needs a probe too.
    probing = not options.static_only and any(c.startswith("GH1") or c in PROBE_CHECKED_RULES for c in enabled)
    # The optimizer the probe runs (GH140, GH143): the file's only rebuildable torch.optim constructor.
    steps = False
    if probing:
        from gradcheck_tool.rules import OPTIMIZER_CODES

        steps = (options.train_steps > 0 and bool(OPTIMIZER_CODES & enabled)) or options.amp is not None
    analysis = analyse(source, filename, rules=any(c.startswith(STATIC_FAMILIES) for c in enabled),
                       optimizers=steps)
    static = analysis.findings
    optimizer = analysis.optimizers[0] if len(analysis.optimizers) == 1 else None
    runtime: list[Finding] = []
    probe: Optional[ProbeResult] = None
    if probing:
        trains = training_at_import(source)
        if any(f.code == "GH001" for f in static):
            probe = ProbeResult(filename, ProbeStatus.SKIPPED, "the file does not parse (GH001)")
        elif trains:
            probe = ProbeResult(filename, ProbeStatus.SKIPPED,
                                f"importing it would train ({trains} runs at module level); move the training "
                                "into a function or under if __name__ == '__main__': to probe the model")
        else:
            with _as_file(path, text) as target:
                runtime, probe = _probe(target, options, progress, filename, optimizer)
            runtime = attach_runtime_fixes(source, runtime)
            static = calibrate_clipping(static, runtime, probe, analysis.clip_thresholds, analysis.undecided)
    silenced = suppressions.parse(source)
    kept = tuple(f for f in static + runtime if f.code in enabled and not silenced.covers(f))
    return FileResult(kept, probe)


NEEDS_TORCH = "probing a model needs PyTorch: pip install torch, or scan with --static-only"


def _probe(path: Path, options: ScanOptions, progress: Optional[Progress], filename: str,
           optimizer: Optional[OptimizerCall] = None):
    if options.isolate:
        from gradcheck_tool.isolation import probe_in_child

        if importlib.util.find_spec("torch") is None:  # say so here, not as a crash in the child
            raise GradhealthError(NEEDS_TORCH)

        return probe_in_child(path, options, filename, optimizer)
    return _runtime().scan_path(path, options, progress, filename, optimizer)


@contextlib.contextmanager
def _as_file(path: Path, text: Optional[str]) -> Iterator[Path]:
    """``path`` itself, or a hidden sibling holding ``text`` for the length of the block."""
    if text is None:
        yield path
        return
    import tempfile

    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.gradhealth-", suffix=".py")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        yield Path(name)
    finally:
        os.unlink(name)


def _runtime():
    try:
        from gradcheck_tool import runtime
    except ImportError as err:
        if err.name and err.name.split(".")[0] == "torch":
            raise GradhealthError(NEEDS_TORCH) from err
        raise
    return runtime


def scan(
    model: Any,
    inputs: Any,
    loss_fn: Optional[Callable[[Any, Any], Any]] = None,
    *,
    probes: int = 3,
    seed: int = 0,
    select: Optional[Iterable[str]] = None,
    optimizer: Optional[Callable[[Any], Any]] = None,
    train_steps: int = 10,
    curvature: bool = False,
    amp: Optional[str] = None,
) -> Report:
    """Probe an in-memory model on ``inputs`` (a tensor, tuple or dict, or a zero-argument
    callable returning one) and return the Report.  ``optimizer`` builds the training
    optimizer from the parameters (``lambda params: torch.optim.Adam(params, lr=3e-3)``):
    it is run for ``train_steps`` steps (GH140-GH143), after measuring the stability bound at
    initialisation when ``curvature`` (GH144).  ``amp`` ("fp16" or "bf16"): the same steps (or, with
    no optimizer, steps that leave the weights at init) under real autocast and, for fp16, a
    GradScaler, judged by GH150/GH151 as a model trained so.  The model is handed back exactly as it
    was: mode, parameters, gradients, buffers and RNG state are restored.  ``select`` takes
    codes, prefixes or names, as ``--select`` does."""
    from gradcheck_tool.probe.engine import run_probe
    from gradcheck_tool.probe.steps import measure_steps, parameters_kept
    from gradcheck_tool.rules import run_rules

    make = inputs if callable(inputs) else (lambda: inputs)
    record = run_probe(model, make, loss_fn, probes=probes, seed=seed)
    if amp is not None:
        from gradcheck_tool.probe.amp import measure_amp
        from gradcheck_tool.probe.record import Precision
        from gradcheck_tool.static.analysis.amp_usage import as_asked

        with parameters_kept(model):
            built = optimizer([p for p in model.parameters() if p.requires_grad]) if optimizer is not None else None
            stats = measure_amp(model, make, loss_fn, built, dtype=amp, steps=train_steps or 10, seed=seed)
        record = dataclasses.replace(record, amp=stats, precision=as_asked(Precision(None, False), amp))
    if optimizer is not None and train_steps > 0:
        with parameters_kept(model):
            built = optimizer([p for p in model.parameters() if p.requires_grad])
            steps = measure_steps(model, make, loss_fn, built, steps=train_steps, seed=seed, curvature=curvature)
        record = dataclasses.replace(record, steps=steps)
    codes = registry.resolve(select) if select is not None else None
    findings = tuple(sorted(run_rules(record, codes), key=lambda f: f.sort_key))
    return Report(findings=findings, probes=(ProbeResult("<memory>", ProbeStatus.OK, record=record),), files=0)
