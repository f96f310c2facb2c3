"""GradMonitor: per-step gradient health during training, at the cost of one read of each gradient.

    monitor = GradMonitor(model, optimizer=optimizer, log="grads.jsonl")
    with monitor:
        for batch in data:
            loss = model(batch).mean()
            loss.backward()
            monitor.clipped(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))  # optional
            optimizer.step()        # the monitor measures here: gradients before, the update after
            optimizer.zero_grad()
    monitor.findings                # GH101 spikes, GH103 NaN/Inf, GH141/GH142 update ratios

Without an optimizer, call ``monitor.step()`` after backward (after clipping).  A trainer that
clips after its own hook (Lightning) calls ``monitor.step(before_clip=True)`` there.  Inside a step
the monitor only launches device work: its numbers come back through a queue the host drains
at the next monitored step (on CUDA: a non_blocking copy to pinned memory and an event), so the
training loop never waits for the device.  ``flush()`` (and leaving the ``with`` block) reads
everything still queued.  Under torch.distributed every rank must call it on the same steps
(sharded norms are all-reduced); only rank 0 writes the log.
"""
from __future__ import annotations

import json
import math
from collections import deque
from pathlib import Path
from typing import IO, Optional, Union

import torch
from torch import nn

from gradcheck_tool.findings import Finding, ProbeResult, ProbeStatus, Report
from gradcheck_tool.monitor import norms
from gradcheck_tool.monitor.judge import Judge, StepRecord
from gradcheck_tool.report.json import _finding as finding_dict, plain

MAX_PENDING = 4  # steps the device may run ahead of the host before the host waits for the oldest


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _layer(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


class _Pending:
    """One step's numbers on their way to the host."""

    def __init__(self, step: int, values: torch.Tensor, works: list, columns: int, missing, lr,
                 given_pre_clip: bool, before_clip: bool):
        self.step, self.works, self.columns, self.missing, self.lr = step, works, columns, missing, lr
        self.given_pre_clip, self.before_clip = given_pre_clip, before_clip
        self.event = None
        if values.is_cuda:
            for work in works:
                work.wait()
            self.values = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self.values.copy_(values, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.values = values

    def ready(self) -> bool:
        return self.event is None or self.event.query()

    def read(self) -> list[float]:
        for work in self.works:
            work.wait()
        if self.event is not None:
            self.event.synchronize()
        return self.values.tolist()


class GradMonitor:
    """Watch a model's gradients while it trains.

    ``every``: measure one step in ``every``.  ``optimizer``: measure at its ``step()`` (hooks),
    and add per-layer update ratios on one measured step in ``updates_every`` (10: they change
    slowly, and each costs a copy of the weights kept across the step).  ``log``: a
    path or text stream for JSON lines, one per measured step.  ``clip_max_norm``: a trainer clips
    the gradients to this norm (Trainer's ``max_grad_norm``, Lightning's ``gradient_clip_val``),
    so steps are labelled clipped by it.  ``spike_z``, ``spike_ratio``, ``warmup``, ``window``:
    see monitor.judge.  ``keep``: how many StepRecords stay in ``history``."""

    def __init__(self, model: nn.Module, every: int = 1, *, optimizer: Optional[torch.optim.Optimizer] = None,
                 log: Union[str, Path, IO[str], None] = None, spike_z: float = 6.0, spike_ratio: float = 2.0,
                 warmup: int = 20, window: int = 20, keep: int = 10_000, clip_max_norm: Optional[float] = None,
                 updates_every: int = 10):
        if every < 1 or updates_every < 1:
            raise ValueError(f"every and updates_every must be >= 1, got {every} and {updates_every}")
        self.tracked = norms.track(model)
        self.every, self.optimizer, self.clip_max_norm, self.updates_every = every, optimizer, clip_max_norm, updates_every
        declared = sorted(range(len(self.tracked)), key=self.tracked.declared.__getitem__)
        self.layers = tuple(dict.fromkeys(_layer(self.tracked.names[i]) for i in declared))  # modules, declared order
        self._layer_of = [self.layers.index(_layer(n)) for n in self.tracked.names]
        self.history: deque[StepRecord] = deque(maxlen=keep)
        self._findings: list[Finding] = []
        self._judge = Judge(spike_z, spike_ratio, warmup, window)
        self._pending: deque[_Pending] = deque()
        self._index_cache: dict = {}
        self._steps = 0
        self._pre_clip: Optional[torch.Tensor] = None
        self._grads = None  # this step's gradient squares, measured before the optimizer step
        self._before_clip = False
        self._measured, self._snapped = 0, False  # measured steps; whether this one's weights were copied
        self._writes = _rank() == 0
        self._log, self._owns_log = None, False
        if log is not None and self._writes:
            self._owns_log = isinstance(log, (str, Path))
            self._log = open(log, "w", encoding="utf-8") if self._owns_log else log
        self._hooks = []
        self._updates = None
        if optimizer is not None:
            self._updates = norms.UpdateMeter(self.tracked)
            self._hooks = [optimizer.register_step_pre_hook(lambda *_: self._before_update()),
                           optimizer.register_step_post_hook(lambda *_: self._after_update())]

    # -- in the training step: device work only ------------------------------------------------
    def clipped(self, total_norm: torch.Tensor) -> torch.Tensor:
        """Label this step as clipped: ``total_norm`` is what ``clip_grad_norm_`` returned (the norm
        before clipping).  The monitor's own measurement is then the post-clip norm.  Returns
        ``total_norm``, so it wraps the call: ``monitor.clipped(clip_grad_norm_(...))``."""
        if norms.DTensor is not None and isinstance(total_norm, norms.DTensor):
            total_norm = total_norm.full_tensor()
        self._pre_clip = total_norm.detach() if isinstance(total_norm, torch.Tensor) else torch.tensor(float(total_norm))
        return total_norm

    def step(self, before_clip: bool = False) -> None:
        """Measure the gradients now, after backward.  Without an ``optimizer`` this is the step (call
        it after any clipping, or pass ``before_clip=True`` if a trainer clips after it).  With an
        ``optimizer`` it is optional: the monitor measures at ``optimizer.step()`` by itself, and a
        call before that only moves the gradient measurement here (a callback calls it before its
        trainer clips, so spikes stay visible); the optimizer's step still adds the update ratios."""
        if self.optimizer is not None:
            if self._due():
                self._grads = norms.grad_squares(self.tracked, self._index_cache)
                self._before_clip = before_clip
            return
        if self._due():
            self._before_clip = before_clip
            squares, missing = norms.grad_squares(self.tracked, self._index_cache)
            self._launch(squares[:, None], missing, lr=None)
        self._next()

    def _due(self) -> bool:
        return self._steps % self.every == 0

    def _next(self) -> None:
        self._steps += 1
        self._pre_clip, self._before_clip = None, False

    def _before_update(self) -> None:
        if self._due():
            if self._grads is None:
                self._grads = norms.grad_squares(self.tracked, self._index_cache)
            self._snapped = self._measured % self.updates_every == 0
            if self._snapped:
                self._updates.snapshot()

    def _after_update(self) -> None:
        if self._grads is not None:
            squares, missing = self._grads
            columns = squares[:, None]
            if self._snapped:
                columns = torch.stack([squares, *self._updates.squares()], dim=1)
            lr = self.optimizer.param_groups[0].get("lr")
            self._launch(columns, missing, lr=float(lr) if isinstance(lr, (int, float)) else None)
            self._grads, self._snapped = None, False
        self._next()

    def _launch(self, columns: torch.Tensor, missing, lr) -> None:
        works = norms.reduce(self.tracked, columns)
        pre = self._pre_clip
        values = columns.flatten()
        if pre is not None:
            values = torch.cat([values, pre.to(values.device, torch.float32).reshape(1)])
        self._drain(block=len(self._pending) >= MAX_PENDING)
        self._measured += 1
        self._pending.append(_Pending(self._steps, values, works, columns.shape[1], missing, lr, pre is not None,
                                      self._before_clip))

    # -- on the host, a step late --------------------------------------------------------------
    def _drain(self, block: bool = False) -> None:
        while self._pending and (block or self._pending[0].ready()):
            self._record(self._pending.popleft())
            block = False

    def flush(self) -> tuple[StepRecord, ...]:
        """Read every queued step (waits for the device); returns the history."""
        while self._pending:
            self._record(self._pending.popleft())
        if self._log is not None:
            self._log.flush()
        return tuple(self.history)

    def _record(self, pending: _Pending) -> None:
        values = pending.read()
        count, k = len(self.tracked), pending.columns
        rows = [values[i * k:(i + 1) * k] for i in range(count)]
        layer_sq = [0.0] * len(self.layers)
        for row, layer in zip(rows, self._layer_of):
            layer_sq[layer] += row[0]
        names = self.tracked.names
        nonfinite = [i for i, row in enumerate(rows) if not math.isfinite(row[0])]
        ratios = {}
        if k == 3:
            delta, weight = [0.0] * len(self.layers), [0.0] * len(self.layers)
            for row, layer in zip(rows, self._layer_of):
                delta[layer] += row[1]
                weight[layer] += row[2]
            ratios = {name: math.sqrt(d / w) for name, d, w in zip(self.layers, delta, weight) if w > 0}
        grad_norm = math.sqrt(sum(r[0] for r in rows))
        limit = self.clip_max_norm
        if pending.given_pre_clip:  # clipped() handed over what clip_grad_norm_ returned
            pre_clip = values[-1]
            clipped = pre_clip > grad_norm * (1 + 1e-4)
        elif pending.before_clip:  # measured before a trainer clips to clip_max_norm
            pre_clip = grad_norm
            clipped = limit is not None and grad_norm > limit
        else:  # measured after a trainer clipped, if it did: at the threshold (scaled by max_norm / (norm + 1e-6))
            pre_clip = None
            clipped = limit is not None and grad_norm >= limit * (1 - 1e-3)
        step = StepRecord(
            step=pending.step, grad_norm=grad_norm, pre_clip_norm=pre_clip, clipped=clipped,
            layers={name: math.sqrt(sq) for name, sq in zip(self.layers, layer_sq)}, update_ratios=ratios,
            nonfinite=tuple(names[i] for i in sorted(nonfinite, key=self.tracked.declared.__getitem__)),
            missing=tuple(names[i] for i in pending.missing), lr=pending.lr)
        first = _layer(step.nonfinite[-1]) if step.nonfinite else None  # last declared: first in backward order
        found = self._judge(step, first, count)
        step = StepRecord(**{**step.__dict__, "findings": found})
        self.history.append(step)
        if self._writes:
            self._findings.extend(found)
            if self._log is not None:
                self._log.write(json.dumps(line(step), allow_nan=False) + "\n")

    # -- results -------------------------------------------------------------------------------
    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every finding so far (rank 0; other ranks have none), after reading what is queued."""
        self.flush()
        return tuple(self._findings)

    def report(self) -> Report:
        """The findings as a Report, for the scan's renderers (``RENDERERS["text"](monitor.report())``)."""
        return Report(findings=self.findings, probes=(ProbeResult("<monitor>", ProbeStatus.SKIPPED,
                                                                  "a training run, not a probe"),))

    def close(self) -> None:
        self.flush()
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self._owns_log and self._log is not None:
            self._log.close()
        self._log = None

    def __enter__(self) -> "GradMonitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def line(step: StepRecord) -> dict:
    """One JSON-lines record: the step's numbers and its findings in the scan's JSON vocabulary."""
    return {
        "step": step.step,
        "grad_norm": plain(step.grad_norm),
        "clipped": step.clipped,
        "pre_clip_norm": plain(step.pre_clip_norm),
        "lr": plain(step.lr),
        "layers": [{"name": name, "grad_norm": plain(norm), "update_ratio": plain(step.update_ratios.get(name))}
                   for name, norm in step.layers.items()],
        "nonfinite": list(step.nonfinite),
        "missing": list(step.missing),
        "findings": [finding_dict(f) for f in step.findings],
    }
