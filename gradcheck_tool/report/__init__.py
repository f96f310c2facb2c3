"""Renderers: one module per format, each exactly ``render(report) -> str``."""
from __future__ import annotations

import importlib
from typing import Callable, Iterator, Mapping

from gradcheck_tool.findings import Report

_MODULES = {"text": "text", "json": "json", "sarif": "sarif", "github": "github", "html": "html"}


class _Renderers(Mapping[str, Callable[[Report], str]]):
    """``RENDERERS[fmt]``: a format's module is imported when asked for (a hook run that
    prints text never pays for the others)."""

    def __getitem__(self, fmt: str) -> Callable[[Report], str]:
        return importlib.import_module(f"gradcheck_tool.report.{_MODULES[fmt]}").render

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


RENDERERS: Mapping[str, Callable[[Report], str]] = _Renderers()
