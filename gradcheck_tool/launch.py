"""The torchrun job a ``--distributed`` scan belongs to.

Every rank runs the whole CLI (static rules, a probe child that joins the job's FSDP2 process
group, the rules) and so holds the same report; rank 0 writes it.  torchrun stops every rank
as soon as one exits non-zero, so the ranks leave together: rank 0 publishes its exit code in
the job's store once its report is written, the others wait for it and exit with that code.

The store is torchrun's own (its agent hosts one at MASTER_ADDR:MASTER_PORT) or, when the
variables were set by hand, one that rank 0's CLI hosts there; the probe child always joins it
as a client (``client_store``).  Only this module's functions import torch.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, Optional

from gradcheck_tool.errors import GradhealthError, first_line

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_POLL_S = 0.05
_CONNECT_S = 60.0


def launch_problem(environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """Why ``--distributed`` cannot run here (torchrun's variables are missing), or None."""
    missing = [v for v in LAUNCH_VARIABLES if not environ.get(v)]
    if not missing:
        return None
    return (f"--distributed runs under torchrun ({', '.join(missing)} not set): "
            "torchrun --nproc-per-node N -m gradcheck_tool scan model.py --distributed")


def is_rank_zero(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process speaks for the job (every process does outside torchrun)."""
    return environ.get("RANK", "0") == "0"


def _prefix() -> str:
    return f"gradhealth/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def _seconds(value: float) -> Any:
    from datetime import timedelta  # imported on use: every scan imports this module, few use a store

    return timedelta(seconds=value)


def _store(host: bool, timeout_s: float) -> Any:
    from torch.distributed import TCPStore

    return TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), int(os.environ["WORLD_SIZE"]),
                    is_master=host, timeout=_seconds(timeout_s), wait_for_workers=False)


def client_store(timeout_s: float = 1800.0) -> Any:
    """A client of the job's store, under a key prefix of its own (the probe's process group)."""
    from torch.distributed import PrefixStore

    return PrefixStore(f"{_prefix()}/probe", _store(False, timeout_s))


class Job:
    """This rank's place in the job: ``finish(code)`` is the exit code every rank leaves with."""

    def __init__(self, timeout_s: float):
        self.rank, self.world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        self.timeout_s = timeout_s
        try:  # a short wait to connect (torchrun's store is already up), a long one for rank 0's code
            self.store = _store(self.rank == 0 and not agent, _CONNECT_S)
            self.store.set_timeout(_seconds(timeout_s))
        except Exception as err:  # noqa: BLE001 - torch's store errors (DistNetworkError, RuntimeError) vary
            raise GradhealthError(f"--distributed: cannot reach the job's store at {os.environ['MASTER_ADDR']}:"
                                  f"{os.environ['MASTER_PORT']} ({first_line(err, type(err).__name__)}); "
                                  "launch with torchrun") from err
        self.key = _prefix()

    def finish(self, code: int) -> int:
        if self.rank != 0:
            self.store.wait([f"{self.key}/code"])
            code = int(self.store.get(f"{self.key}/code"))
            self.store.add(f"{self.key}/left", 1)
            return code
        self.store.set(f"{self.key}/code", str(code))
        deadline = time.monotonic() + self.timeout_s
        # Rank 0 may host the store: it stays until every other rank has read the code.
        while self.store.add(f"{self.key}/left", 0) < self.world - 1 and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        return code
