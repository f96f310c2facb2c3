"""Which files a scan covers: paths expanded to Python files, minus excludes (ruff's semantics);
and the report's output file, checked before the scan and written after it.

Directories are walked for ``*.py``; files named on the command line are always scanned
unless ``--force-exclude`` (what pre-commit needs: it passes every changed file).  A pattern
matches a path relative to the project root, or any single component of it
(``tests/fixtures/*``, ``generated_*.py``, ``legacy``).
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

from gradcheck_tool.errors import GradhealthError

DEFAULT_EXCLUDE = (
    ".bzr", ".direnv", ".eggs", ".git", ".hg", ".mypy_cache", ".nox", ".pants.d", ".pytype", ".ruff_cache",
    ".svn", ".tox", ".venv", "__pypackages__", "_build", "buck-out", "build", "dist", "node_modules",
    "site-packages", "venv", ".ci-venv",
)


def excluded(path: Path, root: Path, patterns: Iterable[str]) -> bool:
    try:
        relative = PurePosixPath(path.resolve().relative_to(root.resolve()).as_posix())
    except ValueError:
        relative = PurePosixPath(path.resolve().as_posix())
    text = str(relative)
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatchcase(text, pattern) or any(fnmatch.fnmatchcase(part, pattern) for part in relative.parts):
            return True
    return False


def python_files(paths: Iterable[str], root: Path, exclude: tuple[str, ...], force_exclude: bool) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            if force_exclude and excluded(path, root, exclude):
                continue
            found = sorted(p for p in path.rglob("*.py") if p.is_file())
            if not found:
                raise GradhealthError(f"{raw}: directory has no Python files; pass .py files or a directory that holds some")
            files.extend(p for p in found if not excluded(p, root, exclude))
        elif path.is_file():
            if not (force_exclude and excluded(path, root, exclude)):
                files.append(path)
        else:
            raise GradhealthError(f"{raw}: no such file or directory; give a Python file or a directory of them")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def check_output(output: Optional[str]) -> None:
    """Before the scan, not after it: a report that cannot be written must not cost a whole probe."""
    if not output:
        return
    target = Path(output)
    folder = target.parent
    if target.is_dir():
        raise GradhealthError(f"-o {output}: is a directory; give a file name for the report")
    if not folder.is_dir():
        raise GradhealthError(f"-o {output}: the folder {folder} does not exist; create it, or write the report "
                              "elsewhere")
    if target.exists() and not os.access(target, os.W_OK):
        raise GradhealthError(f"-o {output}: not writable; check its permissions, or write the report elsewhere")
    if not target.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise GradhealthError(f"-o {output}: cannot create files in {folder}; write the report elsewhere")


def write_report(output: str, text: str) -> None:
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as err:
        raise GradhealthError(f"-o {output}: cannot write the report ({err.strerror}); check free space and "
                              "permissions, or write it elsewhere") from err
