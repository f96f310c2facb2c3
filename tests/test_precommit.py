"""The hooks in .pre-commit-hooks.yaml, run by the real pre-commit program against a temporary repo.

gradhealth-static goes through `pre-commit try-repo`, which builds the hook's own virtualenv
from this checkout exactly as a user's pre-commit would (PyPI must be reachable; only tracked
files travel), and we check that environment has no torch.  The full probe hook needs torch in its environment; it is run
as `repo: local` / `language: system` with the entry and options published for it, from the
environment running these tests.
"""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRE_COMMIT = shutil.which("pre-commit") or str(Path(sys.executable).with_name("pre-commit"))
BAD = textwrap.dedent("""\
    import torch

    def train(model, data):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for x, y in data:
            loss = model(x).sub(y).pow(2).mean()
            loss.backward()
            opt.step()
""")
GOOD = BAD.replace("    for x, y in data:\n", "    for x, y in data:\n        opt.zero_grad()\n")
assert GOOD != BAD

pytestmark = pytest.mark.skipif(not Path(PRE_COMMIT).exists(), reason="pre-commit is a test dependency")


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.fixture
def project(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "good.py").write_text(GOOD)
    (repo / "bad.py").write_text(BAD)
    _git(repo, "add", ".")
    return repo


def _run(args, cwd, home):
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([PRE_COMMIT, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_static_hook_through_try_repo(project, tmp_path):
    home = tmp_path / "pre-commit-home"
    bad = _run(["try-repo", str(ROOT), "gradhealth-static", "--files", "bad.py", "--verbose"], project, home)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "GH205" in bad.stdout and "bad.py:8" in bad.stdout
    good = _run(["try-repo", str(ROOT), "gradhealth-static", "--files", "good.py"], project, home)
    assert good.returncode == 0, good.stdout + good.stderr
    # Both published hooks install the same environment: the full one finding no torch there
    # proves the static hook's environment was built without downloading it.
    full = _run(["try-repo", str(ROOT), "gradhealth", "--files", "bad.py"], project, home)
    assert full.returncode == 1 and "probing a model needs PyTorch" in full.stdout, full.stdout + full.stderr


def test_full_hook_as_local_system_hook(project, tmp_path):
    import yaml  # pre-commit depends on PyYAML

    published = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    hook = dict(published["gradhealth"], language="system")
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": [hook]}]}))
    (project / "model.py").write_text(textwrap.dedent("""\
        import torch.nn as nn

        def build_model():
            layers = []
            for _ in range(10):
                layers += [nn.Linear(32, 32), nn.Sigmoid()]
            return nn.Sequential(*layers)
    """))
    _git(project, "add", ".")
    home = tmp_path / "pre-commit-home"
    result = _run(["run", "--files", "model.py", "good.py", "--verbose"], project, home)
    assert result.returncode == 1 and "GH102" in result.stdout, result.stdout + result.stderr
    clean = _run(["run", "--files", "good.py"], project, home)
    assert clean.returncode == 0, clean.stdout + clean.stderr
