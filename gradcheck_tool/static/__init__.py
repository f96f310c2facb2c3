"""Static source rules (GH201-GH212): read a training script with one parse, never import torch,
never run user code. ``analysis/`` reads the file (names, facts, loop events...), ``rules/``
holds one module per rule family, ``engine`` runs them.

    from gradcheck_tool.static import check_source, STATIC_RULES
    findings = check_source(path.read_text(), str(path))
"""
from gradcheck_tool.static.engine import PROBE_CHECKED_RULES, STATIC_RULES, check_source

__all__ = ["PROBE_CHECKED_RULES", "STATIC_RULES", "check_source"]
