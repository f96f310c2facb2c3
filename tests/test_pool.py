"""Static-only scans of many files in a process pool: same report as one process, a failing
file fails alone, a dead worker is one clear error."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck_tool import api, pool
from gradcheck_tool.api import ScanOptions

TRAIN = """\
import torch
model = torch.nn.LSTM(8, 8)
opt = torch.optim.Adam(model.parameters(), lr={lr})
for x in loader:
    model(x)[0].sum().backward()
    opt.step()
"""


@pytest.fixture
def tree(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(12):
        path = tmp_path / f"train_{i:02d}.py"
        path.write_text(TRAIN.format(lr=0.05 * (i + 1)) if i % 3 else "import os\n")
        paths.append(path)
    return paths


def test_pool_size() -> None:
    assert pool.workers(3, 100, static_only=True) == 3
    assert pool.workers(3, 2, static_only=True) == 1  # a handful of files: no workers
    assert pool.workers(8, 100, static_only=False) == 1  # probes have children of their own
    assert pool.workers(64, pool.MIN_FILES, static_only=True) == pool.MIN_FILES
    assert pool.workers(0, 100, static_only=True) >= 1


def _findings(outcomes) -> list:
    return [[(f.code, f.location, f.message) for f in o.get().findings] for o in outcomes]


def test_pool_matches_one_process_in_order(tree: list[Path]) -> None:
    options = ScanOptions(static_only=True)
    alone = _findings(pool.lint_files(tree, options, jobs=1))
    pooled = _findings(pool.lint_files(tree, options, jobs=2))
    assert pooled == alone
    assert [bool(f) for f in alone] == [bool(i % 3) for i in range(12)]  # files in their order


def test_a_failing_file_fails_alone(tree: list[Path], monkeypatch) -> None:
    real = api.lint_file

    def flaky(path, options, **kwargs):
        if path.name == "train_05.py":
            raise ValueError("cannot lint this one")
        return real(path, options, **kwargs)

    monkeypatch.setattr(api, "lint_file", flaky)  # workers fork after this: they see it too
    outcomes = list(pool.lint_files(tree, ScanOptions(static_only=True), jobs=2))
    with pytest.raises(ValueError, match="cannot lint this one"):
        outcomes[5].get()
    assert "flaky" in outcomes[5].trace
    assert all(o.error is None for i, o in enumerate(outcomes) if i != 5)


def test_a_dead_worker_is_one_error(tree: list[Path], monkeypatch) -> None:
    def dies(path, options, **kwargs):
        os._exit(3)

    monkeypatch.setattr(api, "lint_file", dies)
    with pytest.raises(pool.WorkerCrash, match="--jobs 1"):
        list(pool.lint_files(tree, ScanOptions(static_only=True), jobs=2))


@pytest.mark.slow
def test_cli_report_is_the_same_with_and_without_workers(tree: list[Path]) -> None:
    def scan(jobs: str) -> dict:
        result = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", "--static-only", "--jobs", jobs,
                                 "--format", "json", str(tree[0].parent)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        return json.loads(result.stdout)

    pooled, alone = scan("2"), scan("1")
    assert pooled == alone and len(alone["findings"]) >= 8
