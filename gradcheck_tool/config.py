"""``[tool.gradhealth]`` in the nearest pyproject.toml: read, validated, merged under the CLI.

Keys use ruff's kebab-case: select, extend-select, ignore, per-file-ignores, exclude,
extend-exclude, fail-on, static-only, probes, train-steps, seed, device, timeout (seconds),
max-memory (GiB).  An unknown key or a value of the wrong type is an error (exit 2) naming
the file and the key, never silently ignored.
"""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, Optional

from gradcheck_tool.errors import GradhealthError

SEVERITIES = ("error", "warning", "info")


class Config(NamedTuple):
    """The ``[tool.gradhealth]`` table of a pyproject.toml, as read (None: not set there)."""

    path: Optional[Path] = None  # the pyproject.toml it came from
    select: Optional[tuple[str, ...]] = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: Mapping[str, tuple[str, ...]] = MappingProxyType({})
    exclude: Optional[tuple[str, ...]] = None
    extend_exclude: tuple[str, ...] = ()
    fail_on: Optional[str] = None
    static_only: Optional[bool] = None
    probes: Optional[int] = None
    train_steps: Optional[int] = None
    seed: Optional[int] = None
    device: Optional[str] = None
    timeout: Optional[float] = None
    max_memory: Optional[float] = None  # GiB

    @property
    def root(self) -> Optional[Path]:
        return self.path.parent if self.path else None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GradhealthError(f"{where} must be a list of strings")
    return tuple(value)


_NAMES = {int: "an integer", bool: "true or false", str: "a string"}


def _typed(value: Any, kind, where: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        expected = "a number" if isinstance(kind, tuple) else _NAMES[kind]
        raise GradhealthError(f"{where} must be {expected}, got {type(value).__name__}")
    return value


# The ranges numbers must fall in, for the CLI option and the config key alike.  Beyond them a
# value is a typo, not a wish: 1e9 probe batches, a timeout of centuries, an infinite memory cap.
LIMITS: dict[str, tuple[float, float]] = {
    "probes": (1, 10_000), "train-steps": (0, 100_000), "seed": (0, 2**63 - 1),
    "timeout": (0, 1e6),  # seconds (11 days); 0: no limit
    "max-memory": (0, 2**20),  # GiB (1 PiB); 0: no cap
}
_UNITS = {"timeout": " s (0: no limit)", "max-memory": " GiB (0: no cap)"}


def check_range(value: Any, key: str, where: str) -> Any:
    """``value`` if it is a finite number within ``LIMITS[key]``, else a GradhealthError naming ``where``."""
    low, high = LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise GradhealthError(f"{where} must be a finite number from {low:,.0f} to {high:,.0f}{_UNITS.get(key, '')}, "
                              f"got {value!r}")
    return value


_LISTS = {"select", "extend-select", "ignore", "exclude", "extend-exclude"}
_SCALARS = {"static-only": bool, "probes": int, "train-steps": int, "seed": int, "device": str, "fail-on": str,
            "timeout": (int, float), "max-memory": (int, float)}
KEYS = sorted(_LISTS | set(_SCALARS) | {"per-file-ignores"})


def parse(table: dict[str, Any], path: Path) -> Config:
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{path}: [tool.gradhealth] {key}"
        if key in _LISTS:
            values[key.replace("-", "_")] = _strings(value, where)
        elif key in _SCALARS:
            values[key.replace("-", "_")] = _typed(value, _SCALARS[key], where)
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise GradhealthError(f"{where} must be a table of glob = [codes]")
            values["per_file_ignores"] = {glob: _strings(codes, f"{where}.{glob}") for glob, codes in value.items()}
        else:
            raise GradhealthError(f"{path}: unknown key [tool.gradhealth] {key!r}; known keys: {', '.join(KEYS)}")
    if values.get("fail_on") not in (None, *SEVERITIES):
        raise GradhealthError(f"{path}: [tool.gradhealth] fail-on must be one of {', '.join(SEVERITIES)}")
    for key in LIMITS:
        if values.get(key.replace("-", "_")) is not None:
            check_range(values[key.replace("-", "_")], key, f"{path}: [tool.gradhealth] {key}")
    return Config(path=path, **values)


# Every way a TOML file can hold a [tool.gradhealth] table starts a line with one of: a header
# `[tool.gradhealth...]` (spaces and quotes allowed), a `[tool]` header (then `gradhealth = ...`),
# a root dotted key `tool.gradhealth.x = ...`, or a root `tool = {...}`.  A file with none of
# them is not parsed at all.
_MAY_CONFIGURE = re.compile(r"""(?m)^[ \t]*(?:\[{1,2}[ \t]*)?["']?tool["']?[ \t]*(?:\.[ \t]*["']?gradhealth\b|\]|=)""")


def find_pyproject(start: Path) -> Optional[Path]:
    start = start.resolve()
    for directory in (start if start.is_dir() else start.parent, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load(start: Path) -> Config:
    """The config of the nearest pyproject.toml at or above ``start`` (empty Config when none)."""
    path = find_pyproject(start)
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise GradhealthError(f"{path}: not valid TOML: {err}") from err
    except OSError as err:
        raise GradhealthError(f"{path}: cannot read it ({err.strerror}); check its permissions") from err
    if not _MAY_CONFIGURE.search(text):  # most projects' pyproject.toml: no need to parse it
        return Config(path=path)
    if sys.version_info >= (3, 11):  # imported here: its import costs a hook run ~8 ms
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise GradhealthError(f"{path}: not valid TOML: {err}") from err
    tools = data.get("tool", {})
    if not isinstance(tools, dict):
        raise GradhealthError(f"{path}: [tool] must be a table (tool = {tools!r} hides every tool's settings)")
    table = tools.get("gradhealth")
    if table is None:
        return Config(path=path)
    if not isinstance(table, dict):
        raise GradhealthError(f"{path}: [tool.gradhealth] must be a table")
    return parse(table, path)
