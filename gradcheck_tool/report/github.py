"""``--format github``: GitHub Actions workflow commands, one annotation per line.

    ::warning file=train.py,line=14,col=5,endLine=14,endColumn=21,title=GH201 missing-gradient-clipping::...

Severity ``info`` becomes ``notice``.  Values are escaped as ``@actions/core`` does
(``command.ts``): ``%``, CR and LF in the message; also ``:`` and ``,`` in properties.
A fix's advice follows the message after `` — fix: ``.  Properties with no value are left
out, and so are ``col``/``endColumn`` on a multi-line span: the runner drops columns when
``line`` and ``endLine`` differ.  A failed probe is one error annotation on its file; those
come first, then the findings in report order.  ``file`` is the filename as the user gave
it, which the runner reads relative to the workspace, so scan from the repository root.

A report with nothing to annotate renders as ``""`` (not a lone newline), so a clean run
adds no blank line to the log; otherwise every line ends with a newline.
"""
from __future__ import annotations

from typing import Optional

from gradcheck_tool.findings import Finding, ProbeResult, ProbeStatus, Report, Severity

_COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def render(report: Report) -> str:
    lines = [_probe_failure(p) for p in report.probes if p.status is ProbeStatus.FAILED]
    lines += [_finding(f) for f in report.findings]
    return "".join(line + "\n" for line in lines)


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(name: str, properties: list[tuple[str, Optional[object]]], message: str) -> str:
    pairs = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties
                     if value is not None and value != "")
    return f"::{name}{' ' + pairs if pairs else ''}::{escape_data(message)}"


def _finding(f: Finding) -> str:
    start, end = f.location, f.end_location
    same_line = start is not None and (end is None or end.row == start.row)
    properties = [
        ("file", f.filename),
        ("line", start.row if start else None),
        ("col", start.column if start and same_line else None),
        ("endLine", end.row if start and end else None),
        ("endColumn", end.column if start and end and same_line else None),
        ("title", f"{f.code} {f.name}"),
    ]
    message = f.message
    if f.fix is not None and f.fix.message:
        message = f"{message} — fix: {f.fix.message}"
    return _command(_COMMANDS[Severity(f.severity)], properties, message)


def _probe_failure(probe: ProbeResult) -> str:
    message = "gradhealth could not probe this file"
    if probe.reason:
        message = f"{message}: {probe.reason}"
    return _command("error", [("file", probe.filename)], message)
