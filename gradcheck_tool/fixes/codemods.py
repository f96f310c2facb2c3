"""The source edits that resolve runtime findings, attached to them once the probe has run.

Each codemod takes the file's source and its findings and returns the findings with a Fix
carrying edits (or display-only advice) for the codes it knows; it parses the file only when
one of its findings is present.  They rewrite with libcst, imported here only when a probe's
findings arrive: a static scan never loads it.
"""
from __future__ import annotations

from typing import Sequence

from gradcheck_tool.findings import Finding


def attach_runtime_fixes(source: str, findings: Sequence[Finding]) -> list[Finding]:
    """GH120: an init that fits the activation; GH143: weight decay on the optimizer; GH113: layers
    in a plain list or dict registered with nn.ModuleList / nn.ModuleDict."""
    from gradcheck_tool.fixes.init_codemods import attach_init_fixes
    from gradcheck_tool.fixes.module_list import attach_registration_fixes
    from gradcheck_tool.fixes.weight_decay import attach_weight_decay_fixes

    return attach_registration_fixes(source, attach_weight_decay_fixes(source, attach_init_fixes(source, findings)))
