"""Renderers: one module per format, each exactly ``render(report) -> str``."""
from __future__ import annotations

from typing import Callable

from gradcheck_tool.findings import Report
from gradcheck_tool.report import github, html, sarif, text
from gradcheck_tool.report import json as json_format

RENDERERS: dict[str, Callable[[Report], str]] = {
    "text": text.render,
    "json": json_format.render,
    "sarif": sarif.render,
    "github": github.render,
    "html": html.render,
}
