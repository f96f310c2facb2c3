"""``--format html``: one self-contained page (inline CSS and SVG, no script, nothing fetched),
so it opens offline and can be attached to a CI run.

For each probed model the per-layer picture (activation RMS and output-gradient norm per layer,
in forward order, on a log scale; layers a finding names are marked red); then every finding with
its fix; then the layer tables, folded (``<details>``), flagged rows highlighted.
"""
from __future__ import annotations

import math
from html import escape
from typing import Optional

import gradcheck_tool
from gradcheck_tool.findings import Finding, ProbeResult, ProbeStatus, Report, Severity
from gradcheck_tool.probe.record import ProbeRecord

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 300, 64, 16, 24, 40
COLORS = {"act": "#2f6fb0", "grad": "#d08a1c", "flag": "#c62828"}

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:960px;color:#1d2329;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px}h3{font-size:15px;margin:12px 0 4px}summary{cursor:pointer;color:#2f6fb0}.muted{color:#5f6b76}
table{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e3e7eb}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.flagged td{background:#fdecea}
.finding{border-left:4px solid #9aa5b1;padding:6px 12px;margin:10px 0;background:#fafbfc}
.finding.error{border-color:#c62828}.finding.warning{border-color:#e0a100}.finding.info{border-color:#2f6fb0}
.sev{font-weight:600;text-transform:uppercase;font-size:12px}.error .sev{color:#c62828}.warning .sev{color:#9a6d00}.info .sev{color:#2f6fb0}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}pre{background:#f3f5f7;padding:6px 8px;overflow-x:auto}
.fix{margin-top:4px}.legend span{margin-right:16px}.swatch{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px}
svg text{font:11px system-ui,sans-serif;fill:#5f6b76}
"""


def _num(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.3g}"


def _positive(x: Optional[float]) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def chart(record: ProbeRecord, flagged: set) -> str:
    """Activation RMS and gradient norm per layer on one log axis (whole decades as gridlines)."""
    layers = record.layers
    values = [v for layer in layers for v in (layer.out_rms, layer.grad_norm) if _positive(v)]
    if not layers or not values:
        return '<p class="muted">No finite per-layer measurements to plot.</p>'
    low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    high = max(high, low + 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(layers), 1)

    def x(i: int) -> float:
        return LEFT + step * (i + 0.5)

    def y(v: float) -> float:
        return TOP + plot_h * (high - math.log10(v)) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
             f'aria-label="per-layer activation RMS and gradient norm, log scale">']
    for i, layer in enumerate(layers):
        if layer.name in flagged or layer.out_nonfinite or layer.grad_nonfinite:
            parts.append(f'<rect class="flagged" x="{x(i) - step / 2:.1f}" y="{TOP}" width="{step:.1f}" '
                         f'height="{plot_h}" fill="{COLORS["flag"]}" fill-opacity="0.12"><title>{escape(layer.name)}'
                         f' (flagged)</title></rect>')
    every = max(1, (high - low) // 8)
    for decade in range(low, high + 1, every):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(10.0 ** decade):.1f}" y2="{y(10.0 ** decade):.1f}" '
                     f'stroke="#e3e7eb"/><text x="{LEFT - 6}" y="{y(10.0 ** decade) + 4:.1f}" text-anchor="end">'
                     f'1e{decade}</text>')
    for key, attr in (("act", "out_rms"), ("grad", "grad_norm")):
        points = [(x(i), y(getattr(layer, attr)), layer) for i, layer in enumerate(layers)
                  if _positive(getattr(layer, attr))]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
            parts.append(f'<polyline class="series-{key}" points="{path}" fill="none" stroke="{COLORS[key]}" '
                         f'stroke-width="1.5"/>')
        for px, py, layer in points:
            label = "activation RMS" if key == "act" else "gradient norm"
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{COLORS[key]}"><title>{escape(layer.name)}: '
                         f'{label} {getattr(layer, attr):.3g}</title></circle>')
    label_every = max(1, math.ceil(len(layers) / 24))
    for i, layer in enumerate(layers):
        if i % label_every == 0:
            color = COLORS["flag"] if layer.name in flagged else "#5f6b76"
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
                         f'style="fill:{color}">{i}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle">layer (forward order)</text>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#c9d1d9"/></svg>')
    legend = (f'<div class="legend muted"><span><i class="swatch" style="background:{COLORS["act"]}"></i>activation RMS'
              f'</span><span><i class="swatch" style="background:{COLORS["grad"]}"></i>gradient norm at the output</span>'
              f'<span><i class="swatch" style="background:{COLORS["flag"]};opacity:.3"></i>flagged layer</span></div>')
    return "".join(parts) + legend


def _layers(record: ProbeRecord, flagged: dict) -> str:
    rows = []
    for i, layer in enumerate(record.layers):
        codes = " ".join(sorted(flagged.get(layer.name, ())))
        cls = ' class="flagged"' if codes else ""
        rows.append(f"<tr{cls}><td class=num>{i}</td><td><code>{escape(layer.name)}</code></td><td>{escape(layer.type)}</td>"
                    f"<td class=num>{_num(layer.out_rms)}</td><td class=num>{_num(layer.grad_norm)}</td>"
                    f"<td>{escape(codes)}</td></tr>")
    return (f"<details><summary>{len(rows)} layers</summary><table><thead><tr><th>#</th><th>layer</th><th>type</th>"
            f"<th>act rms</th><th>grad norm</th><th>findings</th></tr></thead><tbody>{''.join(rows)}</tbody></table></details>")


def _flagged(probe: ProbeResult, findings: tuple[Finding, ...]) -> dict:
    """Module name -> the codes of the findings that name it, for this probe's file."""
    out: dict = {}
    for f in findings:
        if f.module and f.filename in (None, probe.filename):
            out.setdefault(f.module, set()).add(f.code)
    return out


def _probe(probe: ProbeResult, findings: tuple[Finding, ...]) -> str:
    title = f"<h2>{escape(probe.filename)}</h2>"
    if probe.status is not ProbeStatus.OK or probe.record is None:
        return title + f'<p class="muted">probe {escape(probe.status.value)}: {escape(probe.reason)}</p>'
    r = probe.record
    meta = (f'<p class="muted">{escape(r.model)} probed on {escape(r.device)}, {r.batches} batch(es), seed {r.seed}; '
            f"inputs: {escape(r.inputs)}; loss: {escape(r.loss)}</p>")
    return title + meta + chart(r, set(_flagged(probe, findings)))


def _layer_tables(report: Report) -> str:
    tables = [f"<h3>{escape(p.filename)}</h3>" + _layers(p.record, _flagged(p, report.findings))
              for p in report.probes if p.status is ProbeStatus.OK and p.record is not None and p.record.layers]
    return ("<h2>Layers</h2>" + "".join(tables)) if tables else ""


def _finding(f: Finding) -> str:
    where = f"{f.filename}:{f.location.row}:{f.location.column}" if f.filename and f.location else (f.filename or "")
    module = f" <code>{escape(f.module)}</code>" if f.module else ""
    fix = ""
    if f.fix is not None:
        edits = "".join(f"<pre>{escape(e.content)}</pre>" for e in f.fix.edits)
        fix = f'<div class="fix"><b>Fix</b> ({escape(f.fix.applicability.value)}): {escape(f.fix.message)}{edits}</div>'
    return (f'<div class="finding {f.severity.value}"><span class="sev">{f.severity.value}</span> '
            f"<b>{escape(f.code)}</b> {escape(f.name)}{module} <span class=muted>{escape(where)}</span>"
            f"<div>{escape(f.message)}</div>{fix}</div>")


def render(report: Report) -> str:
    counts = ", ".join(f"{report.count(s)} {s.value}" for s in Severity)
    body = [f"<h1>gradhealth report</h1><p class=muted>gradhealth {escape(gradcheck_tool.__version__)}; "
            f"{report.files} file(s); findings: {counts}</p>"]
    body.extend(_probe(p, report.findings) for p in report.probes)
    body.append("<h2>Findings</h2>")
    ordered = sorted(report.findings, key=lambda f: (-f.severity.rank, f.sort_key))
    body.append("".join(_finding(f) for f in ordered) or '<p class="muted">No findings.</p>')
    body.append(_layer_tables(report))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            'content="width=device-width,initial-scale=1"><title>gradhealth report</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
