"""GH113 codemod: register layers held in a plain list, tuple or dict.

A GH113 finding names the attribute (``evidence["holder"]``: ``hidden``, ``encoder.heads``) and says
whether every item the probe found in it is a module (and a dict's keys strings), so that
``nn.ModuleList`` / ``nn.ModuleDict`` takes it as it is (``evidence["registrable"]``).  The edit
wraps the value of the file's one assignment ``self.<attr> = <literal>`` made in an ``__init__``:
a list or list comprehension (``[nn.Linear(8, 8) for _ in range(4)]``, ``[]`` filled by
``append`` later) becomes ``nn.ModuleList(...)``, a dict literal whose
keys are all string literals ``nn.ModuleDict({...})``, spelled as the file imports ``torch.nn``.
Two insertions, one before and one after the value: nothing of the user's text is deleted, so
comments and layout stay, and the output has no plain container left to wrap (idempotent).

Anything else keeps display-only advice: no ``torch.nn`` import to spell it with, several
assignments to the attribute, a value built elsewhere (``self.layers = make_layers()``), a tuple
(rare, and a tuple's parentheses are not part of its libcst span), a plain tensor (``nn.Parameter`` changes what the tensor is).  The fix is unsafe: it changes what trains,
what ``.to(device)`` moves and the keys of ``state_dict()`` (an old checkpoint no longer loads
strictly), which is the point, but a change of behaviour all the same.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import libcst as cst

from gradcheck_tool.findings import Applicability, Edit, Finding, Fix
from gradcheck_tool.fixes.parsed import ParsedFile, module_imports, spelling
from gradcheck_tool.static.engine import python_error

_CODE = "GH113"


def attach_registration_fixes(source: str, findings: Sequence[Finding]) -> list[Finding]:
    findings = list(findings)
    if not any(_eligible(f) for f in findings):
        return findings
    try:
        if python_error(source, "<gh113>") is not None:
            return findings
        file = ParsedFile(source)
        nn = spelling(module_imports(file.module), "torch.nn")
    except Exception:  # libcst raises several kinds on odd sources; a fix is never worth a crash
        return findings
    out = []
    for finding in findings:
        if _eligible(finding) and nn is not None:
            edits = _plan(file, finding, nn)
            if edits and file.claim(edits):
                container = "ModuleDict" if finding.evidence["container"] == "dict" else "ModuleList"
                finding = dataclasses.replace(finding, fix=Fix(
                    Applicability.UNSAFE, f"Wrap self.{_attr(finding)} in {nn}.{container} so model.parameters() "
                    "lists its layers", tuple(edits)))
        out.append(finding)
    return out


def _eligible(finding: Finding) -> bool:
    evidence = finding.evidence or {}
    return (finding.code == _CODE and evidence.get("registrable") is True
            and evidence.get("container") in ("list", "dict") and isinstance(evidence.get("holder"), str))


def _attr(finding: Finding) -> str:
    return finding.evidence["holder"].rpartition(".")[2]


def _plan(file: ParsedFile, finding: Finding, nn: str) -> Optional[list[Edit]]:
    attr, container = _attr(finding), finding.evidence["container"]
    values = []
    for node in file.positions:
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign)):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self"
               and t.attr.value == attr for t in targets):
            values.append((node, _init_of(file, node)))
    if len(values) != 1:
        return None
    node, init = values[0]
    if init is None or not isinstance(node, cst.Assign) or len(node.targets) != 1:
        return None
    value = node.value
    if container == "dict":
        if not (isinstance(value, cst.Dict) and value.elements
                and all(isinstance(e, cst.DictElement) and isinstance(e.key, cst.SimpleString) for e in value.elements)):
            return None
        opening, closing = f"{nn}.ModuleDict(", ")"
    elif isinstance(value, (cst.List, cst.ListComp)):
        opening, closing = f"{nn}.ModuleList(", ")"
    else:
        return None
    return [Edit(opening, file.start(value), file.start(value)), Edit(closing, file.end(value), file.end(value))]


def _init_of(file: ParsedFile, node: cst.CSTNode) -> Optional[cst.FunctionDef]:
    """The ``__init__`` method the assignment is made in, directly (not in a nested function)."""
    parent = file.parents.get(node)
    while parent is not None and not isinstance(parent, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
        parent = file.parents.get(parent)
    return parent if isinstance(parent, cst.FunctionDef) and parent.name.value == "__init__" else None
