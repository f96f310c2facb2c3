"""The README's copy-paste examples run as written: every ```python block whose first line names a
file (``# train_monitored.py``) is saved under that name in a fresh directory and run there, scripts
in this process, test files by pytest in a subprocess (so the plugin comes from its entry point)."""
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```python\n# (\w+\.py)\n(.*?)```", re.S)
EXAMPLES = dict(BLOCK.findall(README.read_text(encoding="utf-8")))


def test_the_readme_has_the_examples():
    assert {"train_monitored.py", "test_model_trains.py", "train_hf.py", "train_lightning.py"} <= set(EXAMPLES)


def run_script(name, tmp_path, monkeypatch, capsys) -> str:
    path = tmp_path / name
    path.write_text(EXAMPLES[name])
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(path), run_name="__main__")
    return capsys.readouterr().out


@pytest.mark.slow
def test_monitor_example(tmp_path, monkeypatch, capsys):
    out = run_script("train_monitored.py", tmp_path, monkeypatch, capsys)
    assert out.startswith("step 99: grad norm ") and "step 90 update ratios: {'0': " in out
    assert "GH" not in out  # a healthy regression run raises no finding
    assert len((tmp_path / "grads.jsonl").read_text().splitlines()) == 100


@pytest.mark.slow
def test_pytest_example(tmp_path):
    (tmp_path / "test_model_trains.py").write_text(EXAMPLES["test_model_trains.py"])
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_model_trains.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-3000:]


@pytest.mark.slow
def test_transformers_example(tmp_path, monkeypatch, capsys):
    pytest.importorskip("accelerate")
    out = run_script("train_hf.py", tmp_path, monkeypatch, capsys)
    assert out.rstrip().endswith("() ()")  # no scan finding, no monitor finding
    assert len((tmp_path / "grads.jsonl").read_text().splitlines()) == 4


@pytest.mark.slow
def test_lightning_example(tmp_path, monkeypatch, capsys):
    pytest.importorskip("lightning")
    out = run_script("train_lightning.py", tmp_path, monkeypatch, capsys)
    assert out.rstrip().endswith("() ()")
    assert len((tmp_path / "grads.jsonl").read_text().splitlines()) == 5
