"""The fix engine on real files: exact output, idempotence, parse safety, verification, the CLI."""
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from gradcheck_tool import api
from gradcheck_tool.api import ScanOptions, lint_file
from gradcheck_tool.findings import Applicability, Edit, Fix, Position, Severity
from gradcheck_tool.fixes import edits, engine
from gradcheck_tool.static import STATIC_RULES

ROOT = Path(__file__).resolve().parent.parent

LOOP = textwrap.dedent("""\
    import torch
    from torch.nn.utils import clip_grad_norm_ as clip


    class Trainer:
        def __init__(self, model, data):
            self.model, self.data = model, data
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=0.3)  # tuned by hand

        def fit(self, epochs):
            for _ in range(epochs):
                for x, y in self.data:
                    loss = self.model(x).sub(y).pow(2).mean()
                    loss.backward()
                    self.optimizer.step()


    Trainer(torch.nn.LSTM(8, 8), data).fit(3)  # what the model is decides whether GH201 speaks
""")
FIXED = textwrap.dedent("""\
    import torch
    from torch.nn.utils import clip_grad_norm_ as clip


    class Trainer:
        def __init__(self, model, data):
            self.model, self.data = model, data
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)  # tuned by hand

        def fit(self, epochs):
            for _ in range(epochs):
                for x, y in self.data:
                    loss = self.model(x).sub(y).pow(2).mean()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=1.0)
                    self.optimizer.step()
                    self.optimizer.zero_grad()


    Trainer(torch.nn.LSTM(8, 8), data).fit(3)  # what the model is decides whether GH201 speaks
""")
STATIC = ScanOptions(static_only=True)


def _file(tmp_path, text, name="train.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_static_fixes_exact_output_and_idempotence(tmp_path):
    path = _file(tmp_path, LOOP)
    result = engine.fix_file(path, dataclasses.replace(STATIC, root=tmp_path), unsafe=True, level=Severity.INFO)
    assert result.fixed == FIXED
    assert {f.code for f in result.applied} == {"GH201", "GH205", "GH208"} and result.remaining == ()
    again = engine.fix_file(_file(tmp_path, result.fixed, "again.py"), STATIC, unsafe=True, level=Severity.INFO)
    assert not again.changed and again.applied == ()


def test_info_findings_are_fixed_only_at_fix_level_info(tmp_path):
    """GH201 is info here (Adam, no recurrent layers): by default only the warnings are fixed."""
    result = engine.fix_file(_file(tmp_path, LOOP), STATIC, unsafe=True)
    assert {f.code for f in result.applied} == {"GH205", "GH208"}
    assert [(f.code, f.severity) for f in result.remaining] == [("GH201", Severity.INFO)]


def test_unsafe_fixes_need_the_flag(tmp_path):
    result = engine.fix_file(_file(tmp_path, LOOP), STATIC, unsafe=False)
    assert not result.changed and {f.code for f in result.remaining} == {"GH201", "GH205", "GH208"}


def _with_fix(findings, fix):
    return [dataclasses.replace(f, fix=fix) for f in findings]


def test_comment_deleting_edit_is_unsafe_and_unparsable_result_is_rejected(tmp_path, monkeypatch):
    path = _file(tmp_path, LOOP)
    comment_row = 8
    line = LOOP.splitlines()[comment_row - 1]
    drop_comment = Fix(Applicability.SAFE, "drop", (Edit("", Position(comment_row, line.index("  #") + 1),
                                                          Position(comment_row, len(line) + 1)),))
    real = engine._lint
    monkeypatch.setattr(engine, "_lint", lambda *a: dataclasses.replace(
        real(*a), findings=tuple(_with_fix(real(*a).findings[:1], drop_comment))))
    assert not engine.fix_file(path, STATIC, unsafe=False).changed  # safe label, but it deletes a comment
    assert engine.fix_file(path, STATIC, unsafe=True).changed
    broken = Fix(Applicability.SAFE, "break", (Edit("def (:", Position(1, 1), Position(1, 1)),))
    monkeypatch.setattr(engine, "_lint", lambda *a: dataclasses.replace(
        real(*a), findings=tuple(_with_fix(real(*a).findings[:1], broken))))
    result = engine.fix_file(path, STATIC, unsafe=True)
    assert not result.changed and result.rejected[0][1] == "the patched file would not parse"


def test_apply_rejects_overlapping_edits():
    a = Edit("x", Position(1, 1), Position(1, 3))
    b = Edit("y", Position(1, 2), Position(1, 4))
    assert edits.overlaps("abcdef\n", [a], [b])
    with pytest.raises(ValueError):
        edits.apply("abcdef\n", [a, b])
    assert edits.apply("abcdef\n", [a, Edit("Z", Position(1, 5), Position(1, 6))]) == "xcdZf\n"


def _cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "gradcheck_tool", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def test_cli_diff_writes_nothing_and_fix_writes_atomically_keeping_mode(tmp_path):
    path = _file(tmp_path, LOOP)
    os.chmod(path, 0o751)
    diff = _cli(tmp_path, "fix", "train.py", "--static-only", "--unsafe-fixes", "--diff", "--fix-level", "info")
    assert diff.returncode == 1 and "+                self.optimizer.zero_grad()" in diff.stdout
    assert diff.stderr.splitlines()[-1] == ("gradhealth: Would fix 3 finding(s) (GH201, GH205, GH208); "
                                            "0 with no automatic fix; 0 withheld as unsafe or unverified.")
    assert path.read_text() == LOOP
    done = _cli(tmp_path, "fix", "train.py", "--static-only", "--unsafe-fixes", "--fix-level", "info")
    assert done.returncode == 0, done.stdout + done.stderr
    assert path.read_text() == FIXED and (path.stat().st_mode & 0o777) == 0o751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.py"]  # no temporary files left behind
    assert _cli(tmp_path, "scan", "train.py", "--static-only").returncode == 0


def test_scan_fix_is_the_same_engine(tmp_path):
    _file(tmp_path, LOOP)
    result = _cli(tmp_path, "scan", "train.py", "--static-only", "--fix", "--unsafe-fixes", "--fix-level", "info")
    assert result.returncode == 0 and (tmp_path / "train.py").read_text() == FIXED


# -- property: the fixer never crashes and never leaves unparsable code ------------------------------

SEEDS = [src for rule in STATIC_RULES.values() for src in rule.BAD]


@st.composite
def mutated(draw):
    lines = draw(st.sampled_from(SEEDS)).splitlines()
    for _ in range(draw(st.integers(0, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "indent", "dedent"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "    " + lines[i]
        else:
            lines[i] = lines[i][4:] if lines[i].startswith("    ") else lines[i]
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=mutated())
def test_fixer_never_crashes_or_breaks_parsing(tmp_path, source):
    path = _file(tmp_path, source, "fuzz.py")
    result = engine.fix_file(path, STATIC, unsafe=True, level=Severity.INFO)
    if result.changed:
        compile(result.fixed, "fuzz.py", "exec")
        assert not engine.fix_file(_file(tmp_path, result.fixed, "fuzz2.py"), STATIC, unsafe=True,
                                   level=Severity.INFO).changed
    assert lint_file(path, STATIC).findings is not None


# -- runtime fixes, verified by probing the patched file ------------------------------------------

@pytest.mark.parametrize("fixture,before_min", [("exploding_normal_init.py", 4.0), ("collapsing_glorot_relu.py", 2.0)])
def test_init_fix_is_verified_by_reprobing(tmp_path, fixture, before_min):
    path = tmp_path / fixture
    path.write_text((ROOT / "fixtures" / fixture).read_text())
    result = _cli(tmp_path, "fix", fixture, "--unsafe-fixes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")' in path.read_text()
    (check,) = [line for line in result.stderr.splitlines() if "(verified)" in line]
    before, after = (float(x) for x in check.split("(decades) ")[1].split(" (")[0].split(" -> "))
    assert before > before_min and after < 1.0
    assert _cli(tmp_path, "scan", fixture).returncode == 0  # and a fresh scan agrees


def test_runtime_fix_that_does_not_help_is_taken_back(tmp_path, monkeypatch):
    path = tmp_path / "model.py"
    path.write_text((ROOT / "fixtures" / "exploding_normal_init.py").read_text())

    def useless(source, findings):  # "fixes" GH120 by adding a comment: the model is unchanged
        return [dataclasses.replace(f, fix=Fix(Applicability.UNSAFE, "noop", (Edit("# tweak\n", Position(1, 1),
                                                                                     Position(1, 1)),)))
                if f.code == "GH120" else f for f in findings]

    monkeypatch.setattr(api, "attach_runtime_fixes", useless)
    result = engine.fix_file(path, ScanOptions(root=tmp_path), unsafe=True)
    assert not result.changed
    assert [(f.code, reason) for f, reason in result.rejected] == [("GH120", "the re-probe did not show it improved")]
    (check,) = result.verifications
    assert not check.improved and check.before == pytest.approx(check.after, rel=0.05)


def test_rows_split_like_python_not_like_str_splitlines():
    source = "a = '\x0c\u2028'\r\nb = 1\n"
    assert edits.apply(source, [Edit("c", Position(2, 1), Position(2, 2))]) == "a = '\x0c\u2028'\r\nc = 1\n"


# -- the engine verifies by the rule's own measure, knowing no rule -------------------------------

def test_every_measurable_rule_measures_its_bad_examples():
    from gradcheck_tool.registry import ALL_RULES

    measurable = [rule for rule in ALL_RULES.values() if getattr(rule, "METRIC", None)]
    assert {r.CODE for r in measurable} >= {"GH101", "GH102", "GH105", "GH106", "GH110", "GH111", "GH120", "GH143"}
    for rule in measurable:
        for record in rule.BAD:
            for finding in rule().check(record):
                value = rule.measure(record, finding.module)
                assert value is not None and value >= 0, (rule.CODE, finding.module)


def test_verify_reads_any_rules_measure_and_direction(monkeypatch):
    from gradcheck_tool import registry
    from gradcheck_tool.findings import Finding, ProbeResult, ProbeStatus

    class Coverage:  # a made-up rule whose number should go up
        CODE, METRIC, BETTER = "GH199", "coverage", +1
        measure = classmethod(lambda cls, record, module: record["coverage"])

    monkeypatch.setitem(registry.ALL_RULES, "GH199", Coverage)
    finding = Finding("GH199", "made-up", Severity.WARNING, "low coverage")

    def result(coverage, still_there):
        probe = ProbeResult("m.py", ProbeStatus.OK, record={"coverage": coverage})
        return api.FileResult((finding,) if still_there else (), probe)

    check = engine.verify(finding, result(0.2, True), result(0.9, False))
    assert check.improved and (check.metric, check.before, check.after) == ("coverage", 0.2, 0.9)
    assert not engine.verify(finding, result(0.9, True), result(0.2, False)).improved
    assert not engine.verify(finding, result(0.2, True), result(0.9, True)).improved  # still reported


@pytest.mark.slow
def test_static_fixes_are_made_when_the_probe_cannot_import_the_file(tmp_path):
    (tmp_path / "trainer.py").write_text(textwrap.dedent("""\
        import torch
        import not_installed_anywhere  # noqa: F401

        model = torch.nn.RNN(8, 8)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


        def train(loader):
            for x in loader:
                model(x)[0].sum().backward()
                optimizer.step()
                optimizer.zero_grad()
    """))
    result = _cli(tmp_path, "fix", "trainer.py", "--unsafe-fixes", "--diff")
    assert "+        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)" in result.stdout
    notes = [line for line in result.stderr.splitlines() if "not_installed_anywhere" in line]
    assert len(notes) == 1 and notes[0].startswith("gradhealth: note: ") and "trainer.py" in notes[0]
    assert "gradhealth-" not in result.stderr  # never the hidden sibling the engine probes
    assert result.stderr.splitlines()[-1].startswith("gradhealth: Would fix 1 finding(s) (GH201)")
    assert result.returncode == 2  # the probe could not run: exit 2, as for scan
