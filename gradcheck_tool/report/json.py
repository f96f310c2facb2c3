"""``--format json``: the report as one strict JSON document (``schema_version`` 1).

The document validates against ``schema.json`` next to this module (``load_schema()``).
It is deterministic: keys in a fixed order, lists in the order the pipeline produced
them (findings as reported, layers in forward order, parameters as the model declares
them), no timestamps, floats at full precision.  JSON has no NaN or Infinity, so every
non-finite float, wherever it sits, becomes ``null``; ``allow_nan=False`` is the last guard.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import gradcheck_tool
from gradcheck_tool.findings import Applicability, Finding, Fix, Position, ProbeResult, Report, Severity
from gradcheck_tool.probe.record import AttentionStats, LayerStats, ProbeRecord, RecurrentStats, SymmetryStats

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("schema.json")

# ParamStats keys, in the documented order (module last, after the numbers).
_PARAMETER_KEYS = ("name", "shape", "norm", "grad_norm", "grad_norms", "grad_nonfinite", "requires_grad", "module")


def load_schema() -> dict:
    """The JSON Schema (draft 2020-12) that every document ``render`` returns satisfies."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def render(report: Report) -> str:
    document = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "gradhealth", "version": gradcheck_tool.__version__},
        "summary": {
            "files": report.files,
            "error": report.count(Severity.ERROR),
            "warning": report.count(Severity.WARNING),
            "info": report.count(Severity.INFO),
            "fixable": sum(1 for f in report.findings if _fixable(f.fix)),
        },
        "findings": [_finding(f) for f in report.findings],
        "probes": [_probe(p) for p in report.probes],
    }
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def _fixable(fix: Optional[Fix]) -> bool:
    # Display-only advice, or a fix with nothing to apply, is not something `gradhealth fix` can do.
    return fix is not None and fix.applicability in (Applicability.SAFE, Applicability.UNSAFE) and bool(fix.edits)


def _position(pos: Optional[Position]) -> Optional[dict]:
    return None if pos is None else {"row": int(pos.row), "column": int(pos.column)}


def _finding(f: Finding) -> dict:
    return {
        "code": f.code,
        "name": f.name,
        "severity": plain(f.severity),
        "message": f.message,
        "filename": f.filename,
        "location": _position(f.location),
        "end_location": _position(f.end_location),
        "module": f.module,
        "evidence": plain(dict(f.evidence or {})),
        "fix": None if f.fix is None else {
            "applicability": plain(f.fix.applicability),
            "message": f.fix.message,
            "edits": [
                {"content": e.content, "location": _position(e.location), "end_location": _position(e.end_location)}
                for e in f.fix.edits
            ],
        },
    }


def _probe(p: ProbeResult) -> dict:
    # The record's fields come whenever a record is present; a skipped or failed probe has
    # none, so its scalars are null and its arrays empty (never null).
    r: Optional[ProbeRecord] = p.record
    return {
        "filename": p.filename,
        "model": None if r is None else r.model,
        "device": None if r is None else r.device,
        "seed": None if r is None else plain(r.seed),
        "batches": None if r is None else plain(r.batches),
        "loss": None if r is None else r.loss,
        "status": plain(p.status),
        "reason": p.reason or "",
        "inputs": None if r is None else r.inputs,
        "duration_s": None if r is None else plain(r.duration_s),
        "parameters": [] if r is None else [
            {key: plain(getattr(param, key)) for key in _PARAMETER_KEYS} for param in r.parameters
        ],
        "layers": [] if r is None else [_fields(layer, LayerStats) for layer in r.layers],
        "recurrent": [] if r is None else [_fields(rec, RecurrentStats) for rec in r.recurrent],
        "total_grad_norms": [] if r is None else plain(r.total_grad_norms),
        "output_grad_norm": None if r is None else plain(r.output_grad_norm),
        "input_rms": None if r is None else plain(r.input_rms),
        "recommended_max_norm": None if r is None else plain(r.recommended_max_norm),
        "steps": None if r is None or r.steps is None else plain(dataclasses.asdict(r.steps)),
        "precision": None if r is None or r.precision is None else plain(dataclasses.asdict(r.precision)),
        "symmetry": [] if r is None else [_fields(s, SymmetryStats) for s in r.symmetry],
        "attention": [] if r is None else [_fields(a, AttentionStats) for a in r.attention],
        "amp": None if r is None or r.amp is None else plain(dataclasses.asdict(r.amp)),
    }


def _fields(obj: Any, cls: type) -> dict:
    """Every field of a stats dataclass, in declaration order (weight_init becomes a dict)."""
    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(cls)}


def plain(value: Any) -> Any:
    """Turn ``value`` into JSON-ready data: enums to their values, tuples to lists,
    numpy/torch scalars and arrays to Python numbers, non-finite floats to None."""
    if isinstance(value, enum.Enum):  # before str/int: Severity is a str, an IntEnum an int
        return plain(value.value)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        # No order of its own: sort by the JSON text so the output stays deterministic.
        items = [plain(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "tolist"):  # numpy arrays/scalars, torch tensors: nested Python numbers
        try:
            return plain(value.tolist())
        except (TypeError, ValueError, RuntimeError):
            pass
    if hasattr(value, "item"):
        try:
            return plain(value.item())
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    # Evidence is advisory: an object we do not know still shows up, as its text, rather
    # than making the whole report fail.
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, enum.Enum):
        key = key.value
    return key if isinstance(key, str) else str(key)
