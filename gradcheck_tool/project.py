"""Where a user's file sits in its project, and how to import it the way the project does.

A file inside a package (``x_transformers/x_transformers.py`` beside an ``__init__.py``) is
imported as ``x_transformers.x_transformers``, its package first, so relative imports
(``from .attend import Attend``) and the package's own absolute imports work, and the file
cannot shadow the package it is named after.  A loose file (a script beside its siblings) is
imported under a private name with its folder on the path, as ``python model.py`` would.

The project's folders go on ``sys.path`` right after the standard library, never ahead of it:
a ``random.py`` in the project must not replace the stdlib's ``random`` under torch, while the
project's own packages still win over installed copies (a checkout of x-transformers over the
``pip install``-ed one).
"""
from __future__ import annotations

import argparse
import builtins
import contextlib
import hashlib
import importlib
import importlib.util
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Optional

from gradcheck_tool.errors import GradhealthError

PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg")
# The fix engine's re-probe copy of a patched file (api._as_file): ``.model.gradhealth-1a2b.py``
# beside ``model.py``.  It is imported under the original's name, so its package-relative
# imports, and the package's imports of it, resolve as the original's do.
_COPY = re.compile(r"\.(?P<stem>.+)\.gradhealth-[^.]+\.py")


@dataclass(frozen=True)
class Placement:
    module_name: str  # what the file is imported as
    package: Optional[str]  # its package when it is part of one, else None
    paths: tuple[str, ...]  # folders the import needs on sys.path, in order


def _stem(path: Path) -> str:
    copy = _COPY.fullmatch(path.name)
    return copy.group("stem") if copy else path.stem


def project_root(start: Path) -> Optional[Path]:
    """The nearest folder at or above ``start`` with a pyproject.toml, setup.py or setup.cfg."""
    for folder in (start, *start.parents):
        if any((folder / marker).is_file() for marker in PROJECT_MARKERS):
            return folder
    return None


def placement(path: Path) -> Placement:
    """How to import ``path`` (absolute): its dotted name inside its package, or a private name."""
    parts: list[str] = []
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    stem = _stem(path)
    project = project_root(path.parent)
    extra = [str(project)] if project is not None else []
    if parts and stem.isidentifier():
        package = ".".join(parts)
        name = package if stem == "__init__" else f"{package}.{stem}"
        # The package's root first; its own folder last, for code that imports a sibling absolutely.
        paths = _unique([str(folder), *extra, str(path.parent)])
        return Placement(name, package, paths)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    return Placement(f"_gradhealth_user_{digest}", None, _unique([str(path.parent), *extra]))


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _is_stdlib(entry: str) -> bool:
    real = os.path.normcase(os.path.realpath(entry or os.curdir))
    if "site-packages" in real or "dist-packages" in real:
        return False
    roots = {os.path.normcase(os.path.realpath(sysconfig.get_paths()[k])) for k in ("stdlib", "platstdlib")}
    zipped = {f"{os.path.dirname(r)}{os.sep}python{sys.version_info[0]}{sys.version_info[1]}.zip" for r in roots}
    return real in roots or real in zipped or any(real.startswith(r + os.sep) for r in roots)


def after_stdlib(path: list[str], added: tuple[str, ...]) -> list[str]:
    """``path`` with ``added`` inserted right after its standard-library entries (and removed elsewhere)."""
    rest = [p for p in path if p not in added]
    end = max((i + 1 for i, entry in enumerate(rest) if _is_stdlib(entry)), default=0)
    return rest[:end] + list(added) + rest[end:]


def stdlib_first(path: list[str]) -> list[str]:
    """``path`` with the standard library first and no "" (the working directory): the child's sys.path."""
    return [p for p in path if _is_stdlib(p)] + [p for p in path if p and not _is_stdlib(p)]


def _evict_foreign(package: str, root: str) -> None:
    """Forget a same-named package imported from elsewhere (an installed copy, or an earlier load in
    this process), so that the project's own is imported."""
    top = package.split(".")[0]
    loaded = sys.modules.get(top)
    origin = getattr(loaded, "__file__", None) or next(iter(getattr(loaded, "__path__", []) or []), None)
    if loaded is None or (origin and Path(origin).resolve().is_relative_to(Path(root).resolve())):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def import_placed(path: Path, place: Placement) -> ModuleType:
    """Execute ``path`` as ``place.module_name``; for a package member, after importing its package
    (whose ``__init__`` may already have imported this very file: that module is then reused)."""
    before = sys.modules.get(place.module_name)
    if place.package is not None:
        _evict_foreign(place.package, place.paths[0])
        before = sys.modules.get(place.module_name)
        importlib.import_module(place.package)
        current = sys.modules.get(place.module_name)
        fresh = current is not before or place.module_name == place.package
        if fresh and _same_file(current, path):  # the package's __init__ imported this very file
            return current
    spec = importlib.util.spec_from_file_location(place.module_name, path)
    if spec is None or spec.loader is None:
        raise GradhealthError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[place.module_name] = module  # dataclasses, pickling and relative imports look it up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if before is not None:
            sys.modules[place.module_name] = before
        else:
            sys.modules.pop(place.module_name, None)  # no half-initialised module left behind
        raise
    if place.package is not None and place.module_name != place.package:
        parent = sys.modules.get(place.package)
        if parent is not None:  # as the import system does: pkg.mod is an attribute of pkg
            setattr(parent, place.module_name.rpartition(".")[2], module)
    return module


def _same_file(module: Optional[ModuleType], path: Path) -> bool:
    origin = getattr(module, "__file__", None)
    return origin is not None and Path(origin).resolve() == path


class ArgparseExit(SystemExit):
    """argparse's error() while the file's code runs: the message is kept for the one error line
    instead of being printed as usage lines."""


@contextlib.contextmanager
def as_script(path: Path, place: Placement) -> Iterator[None]:
    """The file's world while its code runs here, as ``python model.py`` sets it up: ``sys.argv`` is
    ``[the file]`` (not the probe's own argv), the project's folders are importable (after the
    standard library), and an argparse error is kept for one line rather than printed.  That covers
    the import, build_model(), --model and example_inputs(), which may import siblings lazily;
    sys.path and sys.argv are then restored exactly, whatever the file did to them."""
    saved_path, saved_argv = list(sys.path), sys.argv
    sys.path[:] = after_stdlib(sys.path, place.paths)
    sys.argv = [str(path)]

    def error(parser, message):
        raise ArgparseExit(2, message)

    original_error = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original_error
        sys.path[:] = saved_path
        sys.argv = saved_argv


class ProjectNames(dict):
    """--model's names beyond the file's own: what its package exports (``pkg.Block`` as ``Block``),
    a module of the package already imported that defines it, or a module by that name (a sibling
    ``layers`` or a package of the project), so ``--model "layers.Block(64)"`` works as it would in
    the file."""

    def __init__(self, module: ModuleType):
        super().__init__()
        self.namespace = vars(module)
        self.package = module.__package__ or ""

    def __missing__(self, name: str) -> Any:
        if name in self.namespace or hasattr(builtins, name):
            raise KeyError(name)  # eval looks in the locals first: the file's globals win
        if self.package:
            members = [self.package] + sorted(n for n in sys.modules if n.startswith(self.package + "."))
            for member in members:
                if hasattr(sys.modules.get(member), name):
                    return getattr(sys.modules[member], name)
        for candidate in ([f"{self.package}.{name}"] if self.package else []) + [name]:
            try:
                return importlib.import_module(candidate)
            except ImportError as err:
                if err.name not in (candidate, name):  # the module exists, and its own import failed
                    raise
        raise KeyError(name)
