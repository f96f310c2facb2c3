"""The sharded probe: ``torchrun --nproc-per-node 2 -m gradcheck_tool scan FILE --distributed`` (two
CPU processes, gloo, FSDP2) against the plain scan of the same file, through the real CLI.

The verdict (every finding, message included) and every number in the JSON report must equal
the unsharded scan's.  Tolerance: relative 1e-5 on each number, against float32 norms whose
sums run in another order (FSDP2's reduce-scatter averages two identical gradients; a sharded
norm is the square root of a float64 sum of two shards' float32 squares): rounding of ~1e-7
per step, far below it.  A gradient that is zero but for rounding (a bias before BatchNorm:
~1e-16) differs by more than 1e-5 of itself; an absolute floor of 1e-9 times the largest gradient
norm covers it, six orders of magnitude below any rule's threshold.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "data" / "sharded_model.py"
LAUNCH = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE")


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in LAUNCH}


def _scan(distributed: bool, cwd: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """The JSON report on stdout: under torchrun, two ranks printing would be two documents."""
    args = ["-m", "gradcheck_tool", "scan", str(MODEL), "--format", "json"]
    if distributed:
        args = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args, "--distributed"]
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=_env())
    return done, json.loads(done.stdout) if done.stdout.strip() else {}


def _compare(plain, sharded, floor: float, path: str = "") -> list[str]:
    if isinstance(plain, dict):
        assert set(plain) == set(sharded), path
        return [d for k in plain if k not in ("duration_s", "device")
                for d in _compare(plain[k], sharded[k], floor, f"{path}.{k}")]
    if isinstance(plain, list):
        assert len(plain) == len(sharded), path
        return [d for i, (a, b) in enumerate(zip(plain, sharded)) for d in _compare(a, b, floor, f"{path}[{i}]")]
    if isinstance(plain, float) or isinstance(sharded, float):
        return [] if math.isclose(plain, sharded, rel_tol=1e-5, abs_tol=floor) else [f"{path}: {plain} vs {sharded}"]
    return [] if plain == sharded else [f"{path}: {plain!r} vs {sharded!r}"]


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharded")
    return _scan(False, tmp), _scan(True, tmp)


@pytest.mark.slow
def test_two_gloo_ranks_give_the_unsharded_verdict_and_numbers(scans):
    """One JSON document on stdout (rank 0's), and it equals the plain scan's."""
    (plain_run, plain), (sharded_run, sharded) = scans
    assert plain_run.returncode == 1, plain_run.stderr[-2000:]
    assert sharded_run.returncode == 1, sharded_run.stderr[-2000:]  # torchrun's own code when a rank exits non-zero
    record, shard_record = plain["probes"][0], sharded["probes"][0]
    assert record["status"] == shard_record["status"] == "ok"
    assert shard_record["device"] == "cpu, sharded over 2 ranks (FSDP2)"
    # The model trips what it was built to trip, so agreement means something.
    codes = sorted((f["code"], f["severity"]) for f in plain["findings"])
    assert ("GH102", "error") in codes and ("GH110", "warning") in codes and ("GH112", "warning") in codes
    assert any(f["code"] == "GH112" and "spare are not used" in f["message"] for f in plain["findings"])
    assert any(layer["residual_sum"] is not None for layer in record["layers"])
    assert any(layer["type"] == "F.relu" for layer in record["layers"])
    floor = 1e-9 * max(p["grad_norm"] or 0.0 for p in record["parameters"])
    assert _compare(plain, sharded, floor) == []


def test_distributed_outside_torchrun_is_one_line_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", str(MODEL), "--distributed"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--distributed runs under torchrun" in lines[0] and "MASTER_ADDR" in lines[0]


@pytest.mark.parametrize("extra, says", [
    (("--static-only",), "--static-only"),
    ((str(REPO / "examples" / "deep_sigmoid.py"),), "one file"),
])
def test_distributed_refuses_what_it_cannot_shard(tmp_path, extra, says):
    env = {**_env(), "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    done = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", str(MODEL), "--distributed", *extra],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0]
