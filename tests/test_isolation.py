"""User code runs in a child process: whatever it does, the parent answers with one clear line.

Every case runs the real CLI and checks the exit code, a single-line message on stderr naming
the file and what happened, and that the scanned file was not modified.
"""
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

HEADER = "import torch\nimport torch.nn as nn\n\n"


def _cli(path, *args, timeout=120):
    return subprocess.Popen([sys.executable, "-m", "gradcheck_tool", "scan", str(path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=path.parent)


def _run(tmp_path, body, *args):
    path = tmp_path / "model.py"
    path.write_text(HEADER + textwrap.dedent(body))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    proc = _cli(path, *args)
    out, err = proc.communicate(timeout=180)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    lines = [l for l in err.splitlines() if "gradhealth: error:" in l]  # a prompt may precede it
    return proc.returncode, lines, err


CASES = {
    "hang": ("""\
        def build_model():
            while True:
                pass
        """, ["--timeout", "3"], "did not finish within 3s"),
    "segfault": ("""\
        import ctypes

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                ctypes.string_at(0)
        """, [], "crashed (SIGSEGV)"),
    "sys-exit-in-build": ("""\
        import sys

        def build_model():
            sys.exit(3)
        """, [], "called sys.exit(3)"),
    "os-exit": ("""\
        import os

        def build_model():
            os._exit(7)
        """, [], "exited with code 7 before finishing"),
    "input": ("""\
        def build_model():
            input("width? ")
            return nn.Linear(4, 4)
        """, [], "raised EOFError"),
    "memory-cap": ("""\
        def build_model():
            model = nn.Linear(4, 4)
            model.huge = torch.empty(3 * 1024**3)  # 12 GiB of address space
            return model
        """, ["--max-memory", "6"], "can't allocate memory"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_code_failures_are_one_clear_line(tmp_path, case):
    body, args, expected = CASES[case]
    code, lines, err = _run(tmp_path, body, *args)
    assert code == 2, err
    assert len(lines) == 1 and "model.py" in lines[0] and expected in lines[0], err
    assert "Traceback" not in err


def test_killing_the_child_mid_probe_is_reported(tmp_path):
    marker = tmp_path / "pid"
    path = tmp_path / "model.py"
    path.write_text(HEADER + textwrap.dedent(f"""\
        import os, time

        def build_model():
            open({str(marker)!r}, "w").write(str(os.getpid()))
            time.sleep(60)
        """))
    proc = _cli(path)
    deadline = time.time() + 60
    while not (marker.exists() and marker.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    os.kill(int(marker.read_text()), signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "model.py: the probe was killed (SIGKILL)" in err and "Traceback" not in err


def test_training_at_import_is_refused_and_static_still_runs(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(HEADER + textwrap.dedent("""\
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(1000000):
            model(torch.randn(8, 4)).pow(2).mean().backward()
            opt.step()
        """))
    proc = _cli(path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1  # the static GH205 (no zero_grad) is a warning
    assert "GH205" in out and "probe skipped: importing it would train (line 7" in err


def test_user_prints_do_not_corrupt_json(tmp_path):
    import json

    path = tmp_path / "noisy.py"
    path.write_text(HEADER + "print('hello from import')\n\ndef build_model():\n    print('building')\n"
                    "    return nn.Linear(4, 4)\n")
    proc = _cli(path, "--format", "json")
    out, err = proc.communicate(timeout=60)
    assert json.loads(out)["probes"][0]["status"] == "ok" and "hello from import" in err
