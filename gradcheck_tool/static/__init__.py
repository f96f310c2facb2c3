"""Static source rules (GH201-GH208): read a training script with one libcst parse, never
import torch, never run user code.

    from gradcheck_tool.static import check_source, STATIC_RULES
    findings = check_source(path.read_text(), str(path))
"""
from gradcheck_tool.static.engine import PROBE_CHECKED_RULES, STATIC_RULES, check_source

__all__ = ["PROBE_CHECKED_RULES", "STATIC_RULES", "check_source"]
