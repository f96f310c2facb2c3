"""The runtime half of a scan: load a file's model, probe it, run the GH1xx rules on the record.

Imports torch; ``api`` imports this module only when a probe is wanted, so static-only
scans never load torch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from gradcheck_tool import loader
from gradcheck_tool.errors import GradhealthError, first_line, out_of_memory
from gradcheck_tool.findings import Finding, Position, ProbeResult, ProbeStatus, Span
from gradcheck_tool.launch import is_rank_zero
from gradcheck_tool.probe.amp import device_type_of, measure_amp
from gradcheck_tool.probe.engine import Progress, run_probe
from gradcheck_tool.probe.record import AmpStats, Precision, ProbeRecord, StepStats
from gradcheck_tool.probe.sharded import Local, process_group
from gradcheck_tool.probe.steps import build_optimizer, measure_steps, parameters_kept
from gradcheck_tool.rules import OPTIMIZER_CODES, run_rules
from gradcheck_tool.static.analysis.amp_usage import as_asked, precision_in
from gradcheck_tool.static.analysis.names import parse_or_none
from gradcheck_tool.static.analysis.optim import OptimizerCall
from gradcheck_tool.static.analysis.optimizer_params import optimizer_params_in


def _locate(finding: Finding, sites: dict[str, Span], filename: str,
            optimizer: Optional[OptimizerCall] = None) -> Finding:
    """Point a runtime finding at the line that built its module (or its nearest built ancestor);
    one about the file's optimizer at the optimizer's constructor call."""
    if optimizer is not None and finding.code in OPTIMIZER_CODES:
        start, end = optimizer.start, optimizer.end
    else:
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


def probe_spec(spec: loader.ModelSpec, probes: int, seed: int, progress: Optional[Progress] = None,
               sharding: Local = Local()) -> ProbeRecord:
    try:
        return run_probe(spec.model, spec.make_inputs, spec.loss_fn, probes=probes, seed=seed,
                         model_name=spec.name, inputs_description=spec.inputs_description, progress=progress,
                         sharding=sharding)
    except GradhealthError:
        raise
    except Exception as err:
        if out_of_memory(err):
            hint = "; the probe ran out of memory: raise --max-memory, or probe a smaller configuration (--model)"
        elif spec.inputs_description.startswith("example_inputs"):
            hint = ""
        else:
            hint = "; define example_inputs() in the file or pass --input-shape"
        raise GradhealthError(f"{spec.name}'s forward/backward raised {type(err).__name__} on inputs "
                              f"{spec.inputs_description}: {first_line(err)}{hint}") from err


def train_spec(spec: loader.ModelSpec, optimizer: OptimizerCall, steps: int, seed: int,
               progress: Optional[Progress] = None, curvature: bool = False) -> Optional[StepStats]:
    """A few steps of the file's own optimizer on its model (this trains the model); None when
    the optimizer's steps would not mean anything under the default loss (SGD's scale with it)."""
    built = build_optimizer(optimizer.name, dict(optimizer.kwargs), spec.model)
    try:
        stats = measure_steps(spec.model, spec.make_inputs, spec.loss_fn, built, steps=steps, seed=seed,
                              progress=progress, curvature=curvature)
    except GradhealthError:
        raise
    except Exception as err:
        raise GradhealthError(f"{spec.name}: a training step with torch.optim.{optimizer.name} raised "
                              f"{type(err).__name__}: {first_line(err)}; pass --train-steps 0 to skip it") from err
    return dataclasses.replace(stats, warmup=optimizer.warmup) if stats is not None else None


def amp_spec(spec: loader.ModelSpec, optimizer: Optional[OptimizerCall], precision: Precision, steps: int,
             seed: int, progress: Optional[Progress] = None) -> AmpStats:
    """The file's optimizer steps under real autocast in ``precision.dtype`` (--amp), from the initial
    weights, which are restored afterwards; without a rebuildable optimizer the weights stay at init."""
    try:
        built = build_optimizer(optimizer.name, dict(optimizer.kwargs), spec.model) if optimizer else None
    except GradhealthError:
        built = None
    device = device_type_of(spec.model)
    try:
        with parameters_kept(spec.model):
            return measure_amp(spec.model, spec.make_inputs, spec.loss_fn, built, dtype=precision.dtype,
                               device_type=device, steps=steps, seed=seed, scaler=precision.scaler,
                               init_scale=precision.init_scale, growth_interval=precision.growth_interval,
                               progress=progress)
    except GradhealthError:
        raise
    except Exception as err:
        raise GradhealthError(f"{spec.name}: a training step under {precision.dtype} autocast on {device} raised "
                              f"{type(err).__name__}: {first_line(err)}; scan without --amp") from err


def scan_path(path: Path, options, progress: Optional[Progress] = None, display_name: Optional[str] = None,
              optimizer: Optional[OptimizerCall] = None) -> tuple[list[Finding], ProbeResult]:
    """Probe one file (``options``: api.ScanOptions), then run ``optimizer`` (the file's own, when
    the caller found one) for ``options.train_steps`` steps.  A file that defines no model is
    skipped, not an error."""
    filename = display_name or str(path)
    # How the file trains (GH150/GH151), read before its code runs: importing it may change or remove it.
    tree = parse_or_none(path.read_text(encoding="utf-8-sig"))
    precision = precision_in(tree)
    if options.amp:
        precision = as_asked(precision, options.amp)
    from_parameters = optimizer_params_in(tree)  # GH113's severity
    _seed_everything(options.seed)  # the file builds its model at import: same seed, same weights
    distributed = options.distributed
    with process_group(options.device) if distributed else contextlib.nullcontext() as sharding:
        # Sharded: built on the host, as on every rank, then FSDP2 moves each rank's shards to its device.
        spec = loader.load(path, loader.LoadOptions(options.model_expr, options.input_shape,
                                                    options.input_dtype, "cpu" if distributed else options.device))
        if spec is None:
            return [], ProbeResult(filename, ProbeStatus.SKIPPED,
                                   "no model found: define build_model() or pass --model to probe it")
        if sharding is not None:
            spec = dataclasses.replace(spec, model=sharding.shard(spec.model),
                                       make_inputs=sharding.inputs(spec.make_inputs))
        record = probe_spec(spec, options.probes, options.seed, progress, sharding or Local())
    if distributed and optimizer is not None and options.train_steps > 0:
        if is_rank_zero():
            print(f"{filename}: --distributed does not run the file's optimizer steps yet (GH140-GH144); "
                  "scan without --distributed for them", file=sys.stderr)
    else:
        if options.amp:  # before the plain steps, which train the model
            record = dataclasses.replace(record, amp=amp_spec(spec, optimizer, precision,
                                                              options.train_steps or 10, options.seed, progress))
        if optimizer is not None and options.train_steps > 0:
            stats = train_spec(spec, optimizer, options.train_steps, options.seed, progress, options.curvature)
            record = dataclasses.replace(record, steps=stats)
    record = dataclasses.replace(record, precision=precision, optimizer_from_parameters=from_parameters)
    findings = [_locate(f, spec.sites, filename, optimizer) for f in run_rules(record)]
    return findings, ProbeResult(filename, ProbeStatus.OK, record=record)
