"""The pipeline, top to bottom: load -> probe -> rules -> Report.

``scan_path`` is what the CLI runs per file; ``scan`` is the Python API for a model
already in memory.  Both return the same frozen ``Report``.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import torch
from torch import nn

from gradcheck_tool import loader
from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.findings import Finding, Position, ProbeResult, ProbeStatus, Report, Span
from gradcheck_tool.probe.engine import Progress, run_probe
from gradcheck_tool.probe.record import ProbeRecord
from gradcheck_tool.rules import run_rules


@dataclass(frozen=True)
class ScanOptions:
    probes: int = 3
    seed: int = 0
    device: str = "cpu"
    model_expr: Optional[str] = None
    input_shape: Optional[tuple[int, ...]] = None
    input_dtype: Optional[str] = None


def _locate(finding: Finding, sites: dict[str, Span], filename: str) -> Finding:
    """Point a runtime finding at the line that built its module (or its nearest built ancestor)."""
    name = finding.module or ""
    while name not in sites and name:
        name = name.rpartition(".")[0]
    span = sites.get(name)
    start, end = (span.start, span.end) if span else (Position(1, 1), Position(1, 1))
    return dataclasses.replace(finding, filename=filename, location=start, end_location=end)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def probe_spec(spec: loader.ModelSpec, options: ScanOptions, progress: Optional[Progress] = None) -> ProbeRecord:
    try:
        return run_probe(spec.model, spec.make_inputs, spec.loss_fn, probes=options.probes, seed=options.seed,
                         model_name=spec.name, inputs_description=spec.inputs_description, progress=progress)
    except GradhealthError:
        raise
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        hint = "" if spec.inputs_description.startswith("example_inputs") else \
            "; define example_inputs() in the file or pass --input-shape"
        raise GradhealthError(f"{spec.name}'s forward/backward raised {type(err).__name__} on inputs "
                              f"{spec.inputs_description}: {first}{hint}") from err


def scan_path(path: Path, options: ScanOptions = ScanOptions(), progress: Optional[Progress] = None,
              display_name: Optional[str] = None) -> tuple[list[Finding], ProbeResult]:
    """Probe one file.  A file that defines no model is skipped, not an error."""
    filename = display_name or str(path)
    _seed_everything(options.seed)  # the file builds its model at import: same seed, same weights
    spec = loader.load(path, loader.LoadOptions(options.model_expr, options.input_shape,
                                                options.input_dtype, options.device))
    if spec is None:
        return [], ProbeResult(filename, ProbeStatus.SKIPPED,
                               "no model found: define build_model() or pass --model to probe it")
    record = probe_spec(spec, options, progress)
    findings = [_locate(f, spec.sites, filename) for f in run_rules(record)]
    return findings, ProbeResult(filename, ProbeStatus.OK, record=record)


def scan(
    model: nn.Module,
    inputs: Any,
    loss_fn: Optional[Callable[[Any, Any], Any]] = None,
    *,
    probes: int = 3,
    seed: int = 0,
    select: Optional[Iterable[str]] = None,
) -> Report:
    """Probe an in-memory model on ``inputs`` (a tensor, tuple or dict, or a zero-argument
    callable returning one) and return the Report.  The model is handed back exactly as it
    was: mode, gradients, buffers and RNG state are restored."""
    make = inputs if callable(inputs) else (lambda: inputs)
    record = run_probe(model, make, loss_fn, probes=probes, seed=seed)
    findings = tuple(sorted(run_rules(record, select), key=lambda f: f.sort_key))
    return Report(findings=findings, probes=(ProbeResult("<memory>", ProbeStatus.OK, record=record),), files=0)
