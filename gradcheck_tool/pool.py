"""Linting many files: in a process pool when the scan is static-only, else one by one here.

A static scan is CPU-bound and per file, so a tree is split over one worker per CPU
(``--jobs``).  Results come back in the order of the paths, so the report is the same as
one process's.  A file that fails fails alone (its exception is re-raised where the CLI
reads its result); a worker that dies (killed, out of memory) ends the scan with one
:class:`WorkerCrash` error.  Probing scans stay in this process: each probe already runs
in a child of its own.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Sequence

from gradcheck_tool.errors import GradhealthError

MIN_FILES = 8  # below this, starting workers costs more than it saves


class WorkerCrash(GradhealthError):
    """A pool worker died: the scan cannot say which files it read."""


class Outcome(NamedTuple):
    """One file's result, or the exception linting it raised (re-raised by :meth:`get`)."""

    result: object = None
    error: Optional[BaseException] = None
    trace: str = ""

    def get(self):
        if self.error is not None:
            raise self.error
        return self.result


def workers(jobs: int, files: int, static_only: bool) -> int:
    """How many processes lint ``files`` files: ``jobs`` (0: one per CPU), and 1 for a
    probing scan or a handful of files."""
    if not static_only or files < MIN_FILES:
        return 1
    if jobs <= 0:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(jobs, files))


def _lint(job: tuple) -> Outcome:
    from gradcheck_tool import api

    path, options = job
    try:
        return Outcome(api.lint_file(path, options, display_name=str(path)))
    except Exception as err:  # noqa: BLE001 - handed to the CLI, which reports it per file
        import traceback

        return Outcome(error=_picklable(err), trace=traceback.format_exc())


def _picklable(err: Exception) -> Exception:
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - any pickling failure: keep the type name and message
        return RuntimeError(f"{type(err).__name__}: {err}")
    return err


def lint_files(paths: Sequence[Path], options, jobs: int = 0) -> Iterator[Outcome]:
    """One :class:`Outcome` per path, in order."""
    count = workers(jobs, len(paths), options.static_only)
    if count == 1:
        for path in paths:
            yield _lint((path, options))
        return
    from concurrent.futures import ProcessPoolExecutor  # not for a hook run's one file
    from concurrent.futures.process import BrokenProcessPool

    chunk = max(1, len(paths) // (count * 4))
    try:
        with ProcessPoolExecutor(count) as pool:
            yield from pool.map(_lint, [(path, options) for path in paths], chunksize=chunk)
    except BrokenProcessPool as err:
        raise WorkerCrash(f"a scan worker process died ({err or 'killed'}); rerun with --jobs 1 to scan "
                          "in one process and see which file it was") from None
