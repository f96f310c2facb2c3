"""What both trainer callbacks do at the start of training: scan the model on its first batch."""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Optional, Sequence

import torch

from gradcheck_tool.findings import Finding, Report

logger = logging.getLogger("gradhealth")


class MonitoringCallback:
    """What both trainer callbacks hold: the scan options, then the scan's report and the
    GradMonitor that measures the run."""

    def __init__(self, *, scan: bool = True, fail_on: Optional[str] = None, probes: int = 1, every: int = 1,
                 log=None, **monitor_options: Any):
        self.scan, self.fail_on, self.probes = scan, fail_on, probes
        self.every, self.log_to, self.monitor_options = every, log, monitor_options  # Lightning sets callback.log
        self.report: Optional[Report] = None
        self.monitor = None  # a GradMonitor once training starts

    def close_monitor(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            log_findings(self.monitor.findings)


def distributed() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def first_batch(loader: Iterable) -> Any:
    """The loader's first batch, leaving the global RNG as it was (a shuffling sampler draws its
    seed from it: the training run sees the same order as without the callback)."""
    with torch.random.fork_rng(devices=[]):
        return next(iter(loader))


def scan_at_start(model: torch.nn.Module, batch: Any, loss_fn: Optional[Callable[[Any, Any], Any]],
                  fail_on: Optional[str], **scan_options: Any) -> Optional[Report]:
    """Probe ``model`` on ``batch`` and log the findings (``fail_on``: raise AssertionError at that
    severity, as ``assert_trainable``).  Skipped in multi-process runs: a probe's backward on one
    rank would wait forever for DDP's or FSDP's collectives on the others; scan the model in a
    single process (``assert_trainable`` in a test) instead."""
    if distributed():
        logger.info("gradhealth: the scan at fit start is skipped in a multi-process run; the monitor runs")
        return None
    from gradcheck_tool.api import scan
    from gradcheck_tool.testing import assert_trainable

    if fail_on is not None:
        report = assert_trainable(model, batch, loss_fn, fail_on=fail_on, **scan_options)
    else:
        report = scan(model, batch, loss_fn, **scan_options)
    log_findings(report.findings)
    return report


def log_findings(findings: Sequence[Finding]) -> None:
    for f in findings:
        logger.warning("gradhealth %s[%s] %s%s: %s", f.severity.value, f.code, f.name,
                       f" ({f.module})" if f.module else "", f.message)
