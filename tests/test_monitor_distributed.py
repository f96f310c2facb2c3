"""GradMonitor under torch.distributed: two CPU processes (gloo), DDP and FSDP2 (fully_shard).

DDP: every rank holds the whole, all-reduced gradient: the monitor's norm is that gradient's
norm, the same on both ranks (not sqrt(2) times it, as summing across ranks would give).
FSDP2: each rank holds a shard (uneven here: 15 and 3 rows over 2 ranks), so its local norm is
wrong on its own; the monitor sums the squares across the mesh and matches the full gradient.
Only rank 0 writes the log.
"""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("monitor_dist_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, str(WORKER), str(out), str(free_port())],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def check(results, local_differs: bool):
    for result in results:
        assert len(result["measured"]) == len(result["oracle"]) == 3
        for measured, oracle in zip(result["measured"], result["oracle"]):
            assert measured["grad_norm"] == pytest.approx(oracle["grad_norm"], rel=1e-5)
            for name, norm in oracle["layers"].items():
                assert measured["layers"][name] == pytest.approx(norm, rel=1e-5)
                assert measured["update_ratios"][name] == pytest.approx(oracle["update_ratios"][name], rel=1e-4)
            # What a monitor that ignored the sharding would have reported:
            assert (abs(oracle["local_norm"] - oracle["grad_norm"]) > 1e-3 * oracle["grad_norm"]) is local_differs
    assert results[0]["measured"] == results[1]["measured"]  # every rank agrees


@pytest.mark.slow
def test_ddp_counts_the_replicated_gradient_once(ranks):
    out, results = ranks
    check([r["ddp"] for r in results], local_differs=False)
    assert len((out / "ddp0.jsonl").read_text().splitlines()) == 3
    assert not (out / "ddp1.jsonl").exists()


@pytest.mark.slow
def test_fsdp2_sums_shard_squares_across_the_mesh(ranks):
    out, results = ranks
    if "skipped" in results[0]["fsdp2"]:
        pytest.skip(results[0]["fsdp2"]["skipped"])
    check([r["fsdp2"] for r in results], local_differs=True)
    assert len((out / "fsdp0.jsonl").read_text().splitlines()) == 3
    assert not (out / "fsdp1.jsonl").exists()
