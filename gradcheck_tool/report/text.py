"""The terminal report: a per-layer table per probed model, findings by severity, one summary line."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from gradcheck_tool.errors import one_line
from gradcheck_tool.findings import Finding, ProbeResult, ProbeStatus, Report, Severity

if TYPE_CHECKING:  # a static-only run renders no probe record
    from gradcheck_tool.probe.record import LayerStats, ProbeRecord

MAX_ROWS = 60  # longer tables keep the first and last rows; JSON has every layer


def _num(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.3g}"


def _health(layer: LayerStats) -> str:
    if layer.out_nonfinite or layer.grad_nonfinite:
        return "NaN/Inf"
    if layer.dead_fraction is not None:
        return f"{layer.dead_fraction:.0%} dead"
    if layer.saturated_fraction is not None:
        return f"{layer.saturated_fraction:.0%} saturated"
    return ""


def _layer_table(record: ProbeRecord) -> str:
    rows = [
        [layer.name, layer.type, "x".join(map(str, layer.out_shape)), _num(layer.out_rms), _num(layer.grad_norm),
         layer.weight_init.scheme if layer.weight_init else "", _health(layer)]
        for layer in record.layers
    ]
    if len(rows) > MAX_ROWS:
        half = MAX_ROWS // 2
        rows = rows[:half] + [["...", f"{len(rows) - 2 * half} more", "", "", "", "", ""]] + rows[-half:]
    headers = ["layer", "type", "output", "act rms", "grad norm", "init", "health"]
    from tabulate import tabulate  # here: its import costs more than a static scan of a file

    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _probe_header(probe: ProbeResult) -> str:
    if probe.status is not ProbeStatus.OK or probe.record is None:
        # The reason is the CLI's line on stderr: a terminal shows both streams, so not twice.
        return f"{one_line(probe.filename)}: probe {probe.status.value} (the reason is on stderr)"
    r = probe.record
    clip = f"; suggested clip max_norm {r.recommended_max_norm:g}" if r.recommended_max_norm else ""
    steps = ""
    if r.steps is not None:
        s = r.steps
        decay = f"weight_decay={s.weight_decay:g}" + (" decoupled" if s.decoupled and s.weight_decay else "")
        steps = f"\n  optimizer: {s.optimizer}(lr={s.lr:g}, {decay}), {len(s.losses)} training step(s)"
    if r.amp is not None:
        a = r.amp
        scaler = f"GradScaler {a.init_scale:g} -> {a.final_scale:g}, " if a.scaler else ""
        steps += (f"\n  amp: {a.dtype} autocast on {a.device}, {a.optimizer or 'no optimizer (weights at init)'}, "
                  f"{len(a.scales)} step(s), {scaler}{len(a.skipped)} skipped: {a.verdict}")
    return (f"{one_line(probe.filename)}: {r.model} probed on {r.device}, {r.batches} batch(es), seed {r.seed}, "
            f"{r.duration_s:.2f}s\n  inputs: {r.inputs}\n  loss: {r.loss}{clip}{steps}")


def _finding(f: Finding) -> str:
    where = f"{one_line(f.filename)}:{f.location.row}:{f.location.column}" if f.filename and f.location else one_line(f.filename or "")
    module = f" ({f.module})" if f.module else ""
    lines = [f"{where}: {f.severity.value}[{f.code}] {f.name}{module}", f"  {f.message}"]
    if f.fix:
        lines.append(f"  fix: {f.fix.message}")
    return "\n".join(lines)


def _summary(report: Report) -> str:
    counts = [(report.count(s), s.value) for s in Severity]
    total = sum(n for n, _ in counts)
    if not total:
        return f"No findings in {report.files} file(s)."
    parts = ", ".join(f"{n} {name}{'s' if n != 1 else ''}" for n, name in counts if n)
    return f"Found {total} finding{'s' if total != 1 else ''} ({parts}) in {report.files} file(s)."


def render(report: Report) -> str:
    blocks = []
    for probe in report.probes:
        blocks.append(_probe_header(probe))
        if probe.record is not None and probe.record.layers:
            blocks.append(_layer_table(probe.record))
    for severity in Severity:
        group = [f for f in report.findings if f.severity is severity]
        blocks.extend(_finding(f) for f in group)
    blocks.append(_summary(report))
    return "\n\n".join(blocks) + "\n"
