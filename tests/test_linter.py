"""Linter conventions: selection, suppressions, config, excludes, GH001, static+runtime combined."""
import textwrap
from pathlib import Path

import pytest

from gradcheck_tool import config, files, registry, suppressions
from gradcheck_tool.api import ScanOptions, lint_file
from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.findings import ProbeStatus, Severity

ROOT = Path(__file__).resolve().parent.parent
LOOP = textwrap.dedent("""\
    import torch

    def train(model, data):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in data:
            loss = model(x).sub(y).pow(2).mean()
            loss.backward()
            opt.step(){comment}

    train(torch.nn.LSTM(8, 8), data)
""")


def _write(tmp_path, text, name="train.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _codes(path, **kw):
    options = ScanOptions(static_only=True, root=path.parent, **kw)
    return [f.code for f in lint_file(path, options).findings]


def test_selectors_resolve_codes_prefixes_names_and_all():
    assert registry.resolve(["GH20"]) == {f"GH20{i}" for i in range(1, 10)}
    assert registry.resolve(["dead-units", "GH101"]) == {"GH110", "GH101"}
    assert registry.resolve(["ALL"]) == set(registry.ALL_RULES)
    with pytest.raises(GradhealthError, match="--ignore: unknown rule code or name 'GH999'"):
        registry.resolve(["GH999"], option="--ignore")



def test_source_only_selection_names_only_what_a_static_scan_reports():
    assert registry.resolve(["ALL"], source_only=True) == set(registry.SOURCE_RULES)
    assert registry.resolve(["GH1", "dead-units"], source_only=True) == set()  # valid, nothing static
    assert registry.resolve(["GH2", "GH101"], source_only=True) == {c for c in registry.SOURCE_RULES
                                                                    if c.startswith("GH2")}
    with pytest.raises(GradhealthError, match="unknown rule code or name 'GH999'"):
        registry.resolve(["GH999"], source_only=True)


def test_static_loop_findings_and_selection(tmp_path):
    path = _write(tmp_path, LOOP.format(comment=""))
    assert set(_codes(path)) == {"GH201", "GH205"}
    assert _codes(path, select=frozenset(registry.resolve(["missing-zero-grad"]))) == ["GH205"]


@pytest.mark.parametrize("comment,expected", [
    ("  # gradhealth: ignore[GH201]", {"GH205"}),
    ("  # gradhealth: ignore[missing-gradient-clipping, GH205]", set()),
    ("  # noqa: GH201", {"GH205"}),
    ("  # noqa", {"GH201", "GH205"}),  # a bare noqa belongs to other linters
    ("  # gradhealth: ignore", set()),
    ("  # gradhealth: ignore[GH999]", {"GH201", "GH205"}),  # unknown codes silence nothing
])
def test_line_suppressions(tmp_path, comment, expected):
    path = _write(tmp_path, LOOP.format(comment=comment))
    assert set(_codes(path)) == expected


def test_comment_line_above_and_file_level_suppressions(tmp_path):
    text = LOOP.format(comment="").replace("        opt.step()", "        # gradhealth: ignore[GH201]\n        opt.step()")
    assert set(_codes(_write(tmp_path, text))) == {"GH205"}
    text = "# gradhealth: ignore-file[GH205]\n" + LOOP.format(comment="")
    assert set(_codes(_write(tmp_path, text, "b.py"))) == {"GH201"}
    text = "# gradhealth: ignore-file\n" + LOOP.format(comment="")
    assert _codes(_write(tmp_path, text, "c.py")) == []


def test_directive_inside_a_string_is_not_a_suppression():
    s = suppressions.parse('x = "# gradhealth: ignore-file"\n')
    assert not s.file and not s.lines


def test_syntax_error_is_a_gh001_finding_and_skips_the_probe(tmp_path):
    path = _write(tmp_path, "import torch\ndef train(:\n    pass\n")
    result = lint_file(path, ScanOptions(root=tmp_path))
    (finding,) = result.findings
    assert finding.code == "GH001" and finding.location.row == 2 and finding.severity is Severity.ERROR
    assert result.probe.status is ProbeStatus.SKIPPED


def test_non_utf8_is_gh001(tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes(b"x = 1\ny = '\xe9'\n")
    (finding,) = lint_file(path, ScanOptions(root=tmp_path)).findings
    assert finding.code == "GH001" and "UTF-8" in finding.message and finding.location.row == 2


def test_config_is_read_validated_and_per_file_ignores_apply(tmp_path):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.gradhealth]
        ignore = ["GH205"]
        fail-on = "error"
        per-file-ignores = {"legacy_*.py" = ["GH201"]}
        probes = 2
    """))
    cfg = config.load(tmp_path)
    assert cfg.ignore == ("GH205",) and cfg.fail_on == "error" and cfg.probes == 2 and cfg.root == tmp_path
    options = ScanOptions(static_only=True, root=tmp_path,
                          per_file_ignores=(("legacy_*.py", frozenset({"GH201"})),))
    legacy = _write(tmp_path, LOOP.format(comment=""), "legacy_train.py")
    assert "GH201" not in [f.code for f in lint_file(legacy, options).findings]


@pytest.mark.parametrize("body,message", [
    ("[tool.gradhealth]\nselekt = ['GH2']\n", "unknown key [tool.gradhealth] 'selekt'"),
    ("[tool.gradhealth]\nprobes = 'three'\n", "probes must be an integer"),
    ("[tool.gradhealth]\nignore = 'GH201'\n", "ignore must be a list of strings"),
    ("[tool.gradhealth]\nfail-on = 'fatal'\n", "fail-on must be one of"),
    ("[tool.gradhealth\n", "not valid TOML"),
])
def test_bad_config_is_a_clear_error(tmp_path, body, message):
    (tmp_path / "pyproject.toml").write_text(body)
    with pytest.raises(GradhealthError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.load(tmp_path)



@pytest.mark.parametrize("body", [
    '[ tool . "gradhealth" ]\nignore = ["GH205"]\n',
    '[tool]\ngradhealth = { ignore = ["GH205"] }\n',
    'tool.gradhealth.ignore = ["GH205"]\n',
    'tool = { gradhealth = { ignore = ["GH205"] } }\n',
    '[project]\nname = "x"\n\n[tool.ruff]\nline-length = 100\n\n[tool.gradhealth]\nignore = ["GH205"]\n',
])
def test_every_toml_spelling_of_the_table_is_read(tmp_path, body):
    (tmp_path / "pyproject.toml").write_text(body)
    assert config.load(tmp_path).ignore == ("GH205",)


def test_a_pyproject_without_our_table_is_not_parsed(tmp_path):
    # Other tools' tables (even broken ones) are theirs: no TOML parse, so no error and no cost.
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "gradhealth"\n\n[tool.ruff\n')
    cfg = config.load(tmp_path)
    assert cfg.root == tmp_path and cfg.ignore == () and cfg.select is None

def test_excludes_walk_directories_and_force_exclude(tmp_path):
    for rel in ("a.py", "pkg/b.py", ".venv/lib/c.py", "generated/d.py"):
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x = 1\n")
    found = files.python_files([str(tmp_path)], tmp_path, files.DEFAULT_EXCLUDE + ("generated",), False)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found) == ["a.py", "pkg/b.py"]
    named = str(tmp_path / "generated" / "d.py")
    assert files.python_files([named], tmp_path, ("generated",), False)  # named files are scanned...
    assert files.python_files([named], tmp_path, ("generated",), True) == []  # ...unless force-exclude


def test_probe_calibrates_gh201_with_measured_max_norm():
    result = lint_file(ROOT / "examples" / "train_rnn.py", ScanOptions(root=ROOT))
    by_code = {f.code: f for f in result.findings}
    assert set(by_code) == {"GH130", "GH201"}
    clip = by_code["GH201"]
    assert clip.severity is Severity.ERROR  # warning (recurrent file), raised by the exploding probe
    assert clip.evidence["probe_exploding"] == ["GH130"]
    max_norm = result.probe.record.recommended_max_norm
    assert f"max_norm={max_norm:g}" in clip.message and f"max_norm={max_norm:g}" in clip.fix.message
    static = lint_file(ROOT / "examples" / "train_rnn.py", ScanOptions(root=ROOT, static_only=True))
    assert [f.severity for f in static.findings] == [Severity.WARNING] and static.probe is None


HAND_WRITTEN = textwrap.dedent("""\
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w1 = nn.Parameter(torch.randn(16, 32) * 3.0)
            self.w2 = nn.Parameter(torch.randn(32, 4) * 3.0)

        def forward(self, x):
            return torch.relu(x @ self.w1) @ self.w2


    def example_inputs():
        return torch.randn(8, 16) * torch.rand(8, 1) * 10


    def train(model, opt, loader):
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
""")


def test_probe_decides_gh201_where_the_source_does_not_show_the_model(tmp_path):
    # Hand-written layers: the source cannot tell what kind of model this is; the probe measures
    # global gradient norms that vary > 2x across its batches, so GH201 is a warning with its max_norm.
    path = _write(tmp_path, HAND_WRITTEN)
    assert lint_file(path, ScanOptions(root=tmp_path, static_only=True)).findings == ()
    result = lint_file(path, ScanOptions(root=tmp_path))
    (clip,) = [f for f in result.findings if f.code == "GH201"]
    norms = result.probe.record.total_grad_norms
    assert max(norms) / min(norms) > 2.0 and clip.severity is Severity.WARNING
    assert clip.evidence["risk"] == "unknown" and clip.location.row == 23  # opt.step()
    assert f"max_norm={result.probe.record.recommended_max_norm:g}" in clip.fix.message
