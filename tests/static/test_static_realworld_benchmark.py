"""benchmarks/realworld.py: matching findings to judgements, precision, exit codes."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "realworld.py"
spec = importlib.util.spec_from_file_location("realworld", SCRIPT)
realworld = sys.modules.setdefault("realworld", importlib.util.module_from_spec(spec))
spec.loader.exec_module(realworld)  # registered first: its dataclasses look their module up

TRAIN = """\
for x, y in loader:
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
"""
REPO = '[[repo]]\nname = "demo"\nurl = "https://example.invalid/demo"\ncommit = "abc"\npaths = ["src"]\n'
VERDICT = ('[[finding]]\nrepo = "demo"\ncommit = "abc"\npath = "src/train.py"\nline = 4\ncode = "GH209"\n'
           'verdict = "{verdict}"\nreason = "zero_grad between backward and step"\n')


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    (tmp_path / "corpus" / "demo" / "src").mkdir(parents=True)
    (tmp_path / "corpus" / "demo" / "src" / "train.py").write_text(TRAIN)
    (tmp_path / "corpus" / "demo" / "notes.py").write_text(TRAIN)  # outside `paths`: not scanned
    return tmp_path


def run(corpus: Path, judgements: str, *extra: str) -> int:
    path = corpus / "j.toml"
    path.write_text(judgements)
    return realworld.main(["--corpus", str(corpus / "corpus"), "--judgements", str(path), "--jobs", "1", *extra])


def test_an_unjudged_finding_fails_and_gets_a_stub(corpus: Path, capsys) -> None:
    stubs = corpus / "stubs.toml"
    assert run(corpus, REPO, "--stubs", str(stubs)) == 1
    out = capsys.readouterr().out
    assert "corpus: 1 repositories, 1 files" in out and "demo/src/train.py:4" in out
    assert 'code = "GH209"' in stubs.read_text() and "demo/notes.py" not in out


@pytest.mark.parametrize(("verdict", "precision"), [("true", "1.00"), ("debatable", "0.00  (below 0.9)")])
def test_judged_findings_give_precision_per_rule(corpus: Path, capsys, verdict: str, precision: str) -> None:
    assert run(corpus, REPO + VERDICT.format(verdict=verdict)) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("GH209"))
    assert row.endswith(precision)


def test_bad_input_exits_2(corpus: Path) -> None:
    with pytest.raises(SystemExit) as missing:
        run(corpus, REPO.replace('name = "demo"', 'name = "absent"'))
    assert missing.value.code == 2
    with pytest.raises(SystemExit) as bad:
        run(corpus, REPO + VERDICT.format(verdict="maybe"))
    assert bad.value.code == 2
