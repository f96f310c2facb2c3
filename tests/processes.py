"""Finding what a gradhealth run left running: every process it starts (the probe child, whatever the
model starts, daemons in sessions of their own) inherits the environment, so a unique tag there
finds them all afterwards.  Zombies are dead (nothing reaps orphans in some containers)."""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

TAG = "GRADHEALTH_TEST_TAG"


def tagged_env(tag: str, **extra: str) -> dict[str, str]:
    """The environment a user's shell gives (no PYTHONDONTWRITEBYTECODE, which this repository's
    shell sets), plus the tag."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, TAG: tag, **extra}


def new_tag() -> str:
    return uuid.uuid4().hex


def alive_with(tag: str) -> list[int]:
    """Live (not zombie) processes whose environment carries ``tag``; [] where /proc is missing."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def leftovers(tag: str, grace_s: float = 5.0) -> list[int]:
    """Processes still alive with ``tag`` after ``grace_s`` (a SIGKILL takes a moment to land)."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = alive_with(tag)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)
