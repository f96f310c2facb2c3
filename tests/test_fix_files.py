"""File handling of `gradhealth fix`, as ruff does it: line endings kept, symlinks followed,
diffs `git apply` accepts, read-only files and directories reported in one line."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from gradcheck_tool.findings import newline_of
from gradcheck_tool.fixes import edits

LOOP = textwrap.dedent("""\
    import torch

    model = torch.nn.RNN(8, 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for x in loader:
        model(x)[0].sum().backward()
        optimizer.step()
        optimizer.zero_grad()""")  # no final newline: the diff must say so
CLIP = "    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)"


def _cli(cwd, *args):
    return subprocess.run([sys.executable, "-m", "gradcheck_tool", "fix", "--static-only", "--unsafe-fixes",
                           *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_inserted_lines_keep_the_files_line_endings(tmp_path, newline):
    path = tmp_path / "train.py"
    path.write_bytes(LOOP.replace("\n", newline).encode())
    result = _cli(tmp_path, "train.py")
    assert result.returncode == 0, result.stderr
    fixed = path.read_bytes().decode()
    lines = LOOP.splitlines()
    expected = newline.join(lines[:6] + [CLIP] + lines[6:])
    assert fixed == expected


def test_diff_marks_a_missing_final_newline_and_git_applies_it(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(LOOP.replace("optimizer.zero_grad()", "print('done')"))  # GH205 fix touches the end
    result = _cli(tmp_path, "train.py", "--diff")
    assert result.returncode == 1
    assert "\\ No newline at end of file\n" in result.stdout
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    applied = subprocess.run(["git", "apply", "--check", "-"], cwd=tmp_path, input=result.stdout,
                             capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr


def test_a_symlink_stays_a_link_and_its_target_is_fixed(tmp_path):
    real = tmp_path / "src" / "train.py"
    real.parent.mkdir()
    real.write_text(LOOP + "\n")
    (tmp_path / "link.py").symlink_to(real)
    result = _cli(tmp_path, "link.py")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "link.py").is_symlink() and CLIP in real.read_text()
    assert sorted(p.name for p in real.parent.iterdir()) == ["train.py"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes read-only files")
@pytest.mark.parametrize("what", ["file", "directory"])
def test_read_only_file_or_directory_gets_one_clear_line(tmp_path, what):
    path = tmp_path / "train.py"
    path.write_text(LOOP + "\n")
    locked = path if what == "file" else tmp_path
    os.chmod(locked, 0o555 if what == "directory" else 0o444)
    try:
        result = _cli(tmp_path, "train.py")
    finally:
        os.chmod(locked, 0o755 if what == "directory" else 0o644)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [l for l in result.stderr.splitlines() if "error" in l]
    assert f"the {what}" in line and "read-only" in line and "internal error" not in line
    assert path.read_text() == LOOP + "\n"


def test_read_only_check_without_root_privileges(tmp_path, monkeypatch):
    """Root bypasses file modes, so the one-line message is also checked with access() denied."""
    from gradcheck_tool.errors import GradhealthError
    from gradcheck_tool.fixes import engine

    path = tmp_path / "train.py"
    path.write_text("x = 1\n")
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(path))
    with pytest.raises(GradhealthError, match=r"the file .*train\.py is read-only"):
        engine.write_atomic(path, "x = 2\n")
    assert path.read_text() == "x = 1\n"


def test_newline_helpers():
    assert newline_of("a\r\nb") == "\r\n" and newline_of("a\rb") == "\r"
    assert newline_of("a") == "\n"
    assert edits.unified_diff("a\n", "a\n", "x.py") == ""


def test_diff_with_only_display_only_findings_still_ends_with_the_summary(tmp_path):
    (tmp_path / "net.py").write_text(textwrap.dedent("""\
        import torch
        from torch import nn

        model = nn.RNN(8, 8)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=0.1)
        for x in loader:
            model(x)[0].sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    """))
    result = _cli(tmp_path, "net.py", "--diff")
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == ("gradhealth: Would fix 0 finding(s); 1 with no automatic fix (GH201); "
                                              "0 withheld as unsafe or unverified.")
