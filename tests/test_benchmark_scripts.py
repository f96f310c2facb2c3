"""The cost benchmarks still run: each script, with its smallest settings, in a subprocess.

They patch or call probe internals (a switched-off measurement, the default loss), so a change of
signature there breaks them silently; symmetry_attention_overhead.py did once.  Their numbers are
read by people (benchmarks/README.md), not asserted here: only that each completes and prints its
comparison.
"""
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize("script,args,printed", [
    ("probe_overhead.py", ["--repeats", "1", "--batches", "1"], "ratio probe / bare"),
    ("loss_watch_cost.py", ["--repeats", "1"], "graph walk to the leaves"),
    ("symmetry_attention_overhead.py", ["--rounds", "1", "--batches", "1"], "ratio with / without"),
    ("param_use_cost.py", ["--repeats", "1"], "ratio"),
    ("dynamics_cost.py", ["--repeats", "1"], "curvature"),
    ("weight_growth.py", ["--steps", "5", "--lr", "1e-3"], "AdamW"),
])
def test_cost_benchmark_runs(script, args, printed):
    if script in ("param_use_cost.py", "dynamics_cost.py"):
        pytest.importorskip("transformers")
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=600, cwd=BENCHMARKS.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert printed in done.stdout, done.stdout[-2000:]


@pytest.mark.slow
def test_static_speed_runs(tmp_path):
    pytest.importorskip("pyflakes")  # the bench extra: not installed by .[test]
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "train.py").write_text("import torch\n\nopt = torch.optim.SGD([], lr=5.0)\n")
    (tmp_path / "pkg" / "util.py").write_text("import os\n")
    done = subprocess.run([sys.executable, str(BENCHMARKS / "static_speed.py"), "--timm", str(tmp_path / "pkg"),
                           "--file", str(tmp_path / "pkg" / "train.py"), "--rounds", "1", "--hook-rounds", "2"],
                          capture_output=True, text=True, timeout=600, cwd=BENCHMARKS.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "hook run: gradhealth median" in done.stdout and "environment: " in done.stdout, done.stdout
