"""``--format sarif``: the report as one SARIF 2.1.0 log (code scanning, IDE viewers).

One run; ``tool.driver.rules`` holds one descriptor per rule that has a result, sorted by
code, and each result points at its rule by ``ruleId`` and ``ruleIndex``.  Files under
``Report.root`` (the cwd when it is None) get repo-relative, percent-encoded URIs against
``uriBaseId`` ``SRCROOT``, which ``originalUriBaseIds`` maps to the root's ``file://`` URI;
a file outside the root keeps its absolute ``file://`` URI and no base (SARIF forbids a
base on an absolute URI).  Regions copy the finding's 1-based, end-exclusive positions
unchanged: SARIF's ``endColumn`` is also one past the last character, and ``columnKind``
says columns count code points, as Python strings (and libcst) do.  Fixes with edits become
SARIF ``fixes``; advice-only fixes stay in the message text.  A failed probe becomes an
error notification on the one invocation, whose ``executionSuccessful`` is then false.

Deterministic (no timestamps; the same report gives the same bytes) and strict JSON.
Imports no torch: the static-only mode renders SARIF too.
"""
from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any, Optional

import gradcheck_tool
from gradcheck_tool import registry
from gradcheck_tool.findings import Finding, Position, ProbeResult, ProbeStatus, Report, Severity
from gradcheck_tool.report.json import plain

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/gradhealth/gradhealth"
SRCROOT = "SRCROOT"

_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_FAMILIES = {"GH0": "meta", "GH1": "runtime", "GH2": "static"}


def render(report: Report) -> str:
    root = os.path.abspath(report.root or os.getcwd())
    codes = sorted({f.code for f in report.findings})
    index = {code: i for i, code in enumerate(codes)}
    failed = [p for p in report.probes if p.status is ProbeStatus.FAILED]
    run = {
        "tool": {"driver": {
            "name": "gradhealth",
            "version": gradcheck_tool.__version__,
            "informationUri": INFORMATION_URI,
            "rules": [_descriptor(code, report.findings) for code in codes],
        }},
        "invocations": [{
            "executionSuccessful": not failed,
            "toolExecutionNotifications": [_probe_failure(p, root) for p in failed],
        }],
        "originalUriBaseIds": {SRCROOT: {"uri": _directory_uri(root)}},
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index[f.code], root) for f in report.findings],
    }
    document = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


# -- rules --------------------------------------------------------------------------------

def _descriptor(code: str, findings: tuple[Finding, ...]) -> dict:
    rule = registry.ALL_RULES.get(code)
    if rule is None:  # a code the registry does not know: describe it by what the finding says
        return {"id": code, "name": next(f.name for f in findings if f.code == code)}
    doc = registry.documentation(rule) or rule.NAME
    return {
        "id": code,
        "name": rule.NAME,
        "shortDescription": {"text": registry.summary(rule)},
        "fullDescription": {"text": doc},
        "help": {"text": doc, "markdown": _markdown(doc)},
        "defaultConfiguration": {"level": _LEVELS[Severity(rule.SEVERITY)]},
        "properties": {"tags": [_FAMILIES.get(code[:3], "other")]},
    }


def _markdown(doc: str) -> str:
    """The docstring as Markdown: section labels in bold, 4-space-indented examples fenced.
    ``double backticks`` are already Markdown code spans."""
    out: list[str] = []
    fenced = False
    for line in doc.splitlines():
        code = line.startswith("    ") or (fenced and not line.strip())
        if code and not fenced:
            if out and out[-1]:
                out.append("")
            out.append("```python")
            fenced = True
        elif fenced and not code:
            while out and not out[-1]:
                out.pop()
            out += ["```", ""]
            fenced = False
        out.append(line[4:] if fenced else registry.SECTION.sub(r"**\1:**", line))
    if fenced:
        out.append("```")
    return "\n".join(out).strip("\n")


# -- results ------------------------------------------------------------------------------

def _result(f: Finding, rule_index: int, root: str) -> dict:
    text = f.message
    if f.fix is not None and f.fix.message:
        stop = "" if text.rstrip().endswith((".", "!", "?")) else "."
        text = f"{text.rstrip()}{stop} Fix: {f.fix.message}"
    result: dict[str, Any] = {
        "ruleId": f.code,
        "ruleIndex": rule_index,
        "level": _LEVELS[Severity(f.severity)],
        "message": {"text": text},
    }
    location: dict[str, Any] = {}
    if f.filename:
        physical: dict[str, Any] = {"artifactLocation": _artifact(f.filename, root)}
        region = _region(f.location, f.end_location)
        if region:
            physical["region"] = region
        location["physicalLocation"] = physical
    if f.module:
        # An nn.Module path (``body.0`` is ``model.body[0]``): an attribute of the model, which
        # SARIF calls a "member"; its "module" kind means a Python module.
        location["logicalLocations"] = [{"fullyQualifiedName": f.module, "kind": "member"}]
    if location:
        result["locations"] = [location]
    if f.fix is not None and f.fix.edits and f.filename:
        replacements = [
            {"deletedRegion": _region(e.location, e.end_location), "insertedContent": {"text": e.content}}
            for e in f.fix.edits
        ]
        result["fixes"] = [{
            "description": {"text": f.fix.message or f.message},
            "artifactChanges": [{"artifactLocation": _artifact(f.filename, root), "replacements": replacements}],
            "properties": {"applicability": plain(f.fix.applicability)},
        }]
    result["properties"] = {"evidence": plain(dict(f.evidence or {}))}
    return result


def _region(start: Optional[Position], end: Optional[Position]) -> dict:
    region: dict[str, int] = {}
    if start is not None:
        region.update(startLine=int(start.row), startColumn=int(start.column))
        if end is not None:
            region.update(endLine=int(end.row), endColumn=int(end.column))
    return region


def _probe_failure(probe: ProbeResult, root: str) -> dict:
    notification: dict[str, Any] = {"level": "error", "message": {"text": probe.reason or "the probe failed"}}
    if probe.filename:
        notification["locations"] = [{"physicalLocation": {"artifactLocation": _artifact(probe.filename, root)}}]
    return notification


# -- paths --------------------------------------------------------------------------------

def _artifact(filename: str, root: str) -> dict:
    """Relative to the root when the file lies under it (lexically, else after resolving
    symlinks), percent-encoded so spaces, ``:``, ``,``, ``%`` and non-ASCII survive."""
    path = os.path.normpath(os.path.join(os.getcwd(), filename))
    for candidate, base in ((path, root), (os.path.realpath(path), os.path.realpath(root))):
        relative = _relative(candidate, base)
        if relative is not None:
            return {"uri": urllib.parse.quote(relative, safe="/"), "uriBaseId": SRCROOT}
    return {"uri": Path(path).as_uri()}


def _relative(path: str, base: str) -> Optional[str]:
    try:
        relative = Path(path).relative_to(base)
    except ValueError:
        return None
    return PurePosixPath(*relative.parts).as_posix() if relative.parts else None


def _directory_uri(root: str) -> str:
    uri = Path(root).as_uri()
    return uri if uri.endswith("/") else uri + "/"


