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

from processes import alive_with, leftovers, new_tag, tagged_env

HEADER = "import torch\nimport torch.nn as nn\n\n"


def _cli(path, *args, tag=None):
    return subprocess.Popen([sys.executable, "-m", "gradcheck_tool", "scan", str(path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=path.parent,
                            env=tagged_env(tag or new_tag()))


def _run(tmp_path, body, *args):
    path = tmp_path / "model.py"
    path.write_text(HEADER + textwrap.dedent(body))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    tag = new_tag()
    proc = _cli(path, *args, tag=tag)
    out, err = proc.communicate(timeout=180)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not leftovers(tag)
    lines = [l for l in err.splitlines() if "gradhealth: error:" in l]  # a prompt may precede it
    return proc.returncode, lines, err


CASES = {
    "hang": ("""\
        import subprocess, sys

        def build_model():  # what it started dies with it at the timeout (checked: no leftovers)
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
            while True:
                pass
        """, ["--timeout", "15"], "did not finish within 15s"),
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
        """, ["--max-memory", "6"], ("can't allocate memory", "raise --max-memory")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_code_failures_are_one_clear_line(tmp_path, case):
    body, args, expected = CASES[case]
    code, lines, err = _run(tmp_path, body, *args)
    assert code == 2, err
    expected = (expected,) if isinstance(expected, str) else expected
    assert len(lines) == 1 and "model.py" in lines[0] and all(e in lines[0] for e in expected), err
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


# --- process lifetime (issue 11): nothing the probe started outlives gradhealth ----------------

SPAWNS_AND_HANGS = """\
    import os, subprocess, sys, time

    def build_model():
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                  start_new_session=True)  # out of the probe's group, holding its stderr
        with open(os.environ["PIDS_FILE"], "w") as f:
            f.write(f"{os.getpid()} {grandchild.pid} {daemon.pid}")
        time.sleep(300)
    """


# For `fix`: the first probe returns an ungated RNN whose training loop has no clipping (GH201's
# edit, unsafe); the re-probe of the patched copy beside the file is the one that spawns and hangs.
SPAWNS_AND_HANGS_ON_REPROBE = SPAWNS_AND_HANGS.replace("""    def build_model():
""", """    def build_model():
        marker = os.environ["PIDS_FILE"] + ".first"
        if not os.path.exists(marker):
            open(marker, "w").close()
            return nn.RNN(8, 8)
""") + """
    def train(model, loader):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            model(x)[0].sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    """


def _start_spawner(tmp_path, tag, command="scan", body=SPAWNS_AND_HANGS, args=()):
    """gradhealth scanning a model that starts a grandchild and a daemon, then hangs; returns once
    all three run.  TMPDIR is private to the test, to check what is left in it."""
    project, scratch = tmp_path / "project", tmp_path / "scratch"
    project.mkdir()
    scratch.mkdir()
    path = project / "model.py"
    path.write_text(HEADER + textwrap.dedent(body))
    pids = tmp_path / "pids"
    env = tagged_env(tag, PIDS_FILE=str(pids), TMPDIR=str(scratch))
    proc = subprocess.Popen([sys.executable, "-m", "gradcheck_tool", command, str(path), *args], cwd=project,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (pids.exists() and len(pids.read_text().split()) == 3) and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    assert len(alive_with(tag)) >= 4  # gradhealth, the child, the grandchild and the daemon
    return proc, project, scratch


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_to_gradhealth_stops_everything_the_probe_started(tmp_path, signum):
    tag = new_tag()
    proc, project, scratch = _start_spawner(tmp_path, tag)
    before = sorted(p.name for p in project.iterdir())
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip().splitlines() == [f"gradhealth: error: interrupted ({signum.name}); the probe and "
                                        "everything it started were stopped"], err
    assert not leftovers(tag)
    assert list(scratch.iterdir()) == []  # the private temp dir, the child's TMPDIR inside it, removed
    assert sorted(p.name for p in project.iterdir()) == before


@pytest.mark.slow
def test_a_signal_during_fix_removes_the_hidden_copy_beside_the_file(tmp_path):
    """`fix` probes a patched copy beside the file (.model.gradhealth-*.py, for its imports)."""
    tag = new_tag()
    proc, project, scratch = _start_spawner(tmp_path, tag, "fix", SPAWNS_AND_HANGS_ON_REPROBE, ("--unsafe-fixes",))
    assert any(p.name.startswith(".model.gradhealth-") for p in project.iterdir())
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "interrupted (SIGTERM)" in err, err
    assert sorted(p.name for p in project.iterdir()) == ["model.py"]
    assert not leftovers(tag) and list(scratch.iterdir()) == []


@pytest.mark.slow
def test_killing_gradhealth_outright_still_ends_the_probe(tmp_path):
    """SIGKILL runs no handler in gradhealth: the child sees its lifeline close and ends its tree."""
    tag = new_tag()
    proc, _, _ = _start_spawner(tmp_path, tag)
    proc.kill()
    proc.communicate(timeout=60)
    assert not leftovers(tag, grace_s=10)


@pytest.mark.slow
def test_a_daemon_started_at_import_does_not_hold_the_callers_pipes(tmp_path):
    """subprocess.run (and pre-commit) wait for EOF on the pipes they give: a daemon the model starts
    in its own session must neither hold them nor survive the scan."""
    path = tmp_path / "model.py"
    path.write_text(HEADER + textwrap.dedent("""\
        import subprocess, sys

        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
        model = nn.Linear(4, 2)
        """))
    tag = new_tag()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", str(path)], cwd=tmp_path,
                            env=tagged_env(tag), capture_output=True, text=True, timeout=200)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 150  # not the daemon's 300 s
    assert not leftovers(tag)
