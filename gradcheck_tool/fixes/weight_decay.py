"""GH143 codemod: give the optimizer the weight decay that keeps the weights' norm bounded.

A runtime GH143 finding spans the ``torch.optim`` constructor call
(``torch.optim.Adam(model.parameters(), lr=1e-3)``) and carries the optimizer's class and the
suggested decay in its evidence.  From there:

1. **AdamW** (or any other class a finding names): ``weight_decay=<v>`` is added as a keyword,
   or replaces a literal zero (``weight_decay=0.0``).  GH143 suggests a value for Adam and
   AdamW only; the others get advice.
2. **Adam**: the call also switches to decoupled weight decay (AdamW, Loshchilov & Hutter), where
   only the class name changes (``torch.optim.Adam`` / ``optim.Adam`` / ``O.Adam``).  A bare
   ``Adam`` from ``from torch.optim import Adam`` (or ``Adam as A``) becomes the file's own AdamW
   name, and ``AdamW`` is added to that import when the file has none.  With
   ``decoupled_weight_decay=True`` the class stays.
3. Anything else (``*args`` / ``**kwargs``, positional arguments past ``lr``, a non-zero or
   computed ``weight_decay``, a star import) keeps display-only advice: no edit is ever guessed.

Edits are text splices (1-based, end-exclusive, character columns) computed from libcst
positions: a single-line call gets ``, weight_decay=v`` after its last argument, a call with one
argument per line and a trailing comma gets a new ``weight_decay=v,`` line indented like the
argument above it, so everything else (comments included) stays byte-identical.  Running the
codemod on its own output yields no edits.  Only a file with a GH143 finding is parsed.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional, Sequence, Union

import libcst as cst

from gradcheck_tool.findings import Applicability, Edit, Finding, Fix, Position
from gradcheck_tool.fixes.parsed import ParsedFile
from gradcheck_tool.static.engine import python_error

_CODE = "GH143"
_OPTIM = "torch.optim"
_BLANK_OR_COMMENT = re.compile(r"[ \t\f]*(?:#.*)?")


def attach_weight_decay_fixes(source: str, findings: Sequence[Finding]) -> list[Finding]:
    """Return findings where runtime GH143 findings carry a Fix(Applicability.UNSAFE, message, edits)
    adding weight decay to the optimizer call (display-only advice when no edit is safe); other
    findings unchanged."""
    findings = list(findings)
    if not any(_eligible(f) for f in findings):
        return findings
    try:
        if python_error(source, "<gh143>") is not None:  # never hand libcst what CPython refuses
            return findings
        file = _File(source)
    except Exception:  # libcst raises several kinds on odd sources; a fix is never worth a crash
        return findings
    out: list[Finding] = []
    for finding in findings:
        if _eligible(finding):
            try:
                fix = _plan(file, finding)
            except RecursionError:
                fix = None
            if fix is not None and fix.edits and not file.claim(fix.edits):
                fix = Fix(Applicability.DISPLAY_ONLY, fix.message)
            keep = finding.fix is not None and finding.fix.applicability is Applicability.DISPLAY_ONLY
            if fix is not None and (fix.edits or not keep):
                finding = dataclasses.replace(finding, fix=fix)
        out.append(finding)
    return out


def _eligible(finding: Finding) -> bool:
    evidence = finding.evidence or {}
    value = evidence.get("suggested_weight_decay")
    return (finding.code == _CODE and finding.location is not None and isinstance(evidence.get("optimizer"), str)
            and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0)


class _File(ParsedFile):
    def __init__(self, source: str) -> None:
        super().__init__(source)
        attrs = {id(n.attr) for n in self.positions if isinstance(n, cst.Attribute)}
        self.adamw_used = any(isinstance(n, cst.Name) and n.value == "AdamW" and id(n) not in attrs
                              for n in self.positions)
        # (statement, alias, imported name, bound name) for each ``from torch.optim import X [as Y]``
        self.optim_imports: list[tuple[cst.ImportFrom, cst.ImportAlias, str, str]] = []
        for node in self.positions:
            if isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None \
                    and self.module.code_for_node(node.module) == _OPTIM and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    name = self.module.code_for_node(alias.name)
                    bound = alias.asname.name.value if alias.asname is not None and isinstance(
                        alias.asname.name, cst.Name) else name
                    self.optim_imports.append((node, alias, name, bound))


    def call_at(self, start: Position, end: Optional[Position]) -> Optional[cst.Call]:
        calls = [n for n in self.positions if isinstance(n, cst.Call) and self.start(n) == start]
        exact = [c for c in calls if self.end(c) == end]
        # Several calls start at one place only when called in turn (``Adam(...)(...)``): the innermost.
        return (exact or sorted(calls, key=lambda c: (self.end(c).row, self.end(c).column)) or [None])[0]

    def imported(self, bound: str) -> Optional[tuple[cst.ImportFrom, str]]:
        """The ``from torch.optim import`` statement binding ``bound``, and the name it imports."""
        return next(((s, name) for s, _, name, b in self.optim_imports if b == bound), None)

    def append(self, items: Sequence[Union[cst.Arg, cst.ImportAlias]], text: str) -> Optional[Edit]:
        """An edit adding ``text`` as a new last item of a comma-separated list, in its layout."""
        if not items:
            return None
        last = items[-1]
        if not isinstance(last.comma, cst.Comma):
            at = self.end(last)
            return Edit(f", {text}", at, at)
        after = self.end(last.comma)
        line = self.lines[after.row - 1]
        body = line.rstrip("\r\n")
        first = self.positions[last].start
        indent = self.lines[first.line - 1][:first.column]
        if _BLANK_OR_COMMENT.fullmatch(body[after.column - 1:]) and not indent.strip() and after.row < len(self.lines):
            at = Position(after.row + 1, 1)  # one item per line: a line of its own, like the one above
            return Edit(f"{indent}{text},{line[len(body):]}", at, at)
        return Edit(f" {text},", after, after)


def _plan(file: _File, finding: Finding) -> Optional[Fix]:
    evidence = finding.evidence
    optimizer: str = evidence["optimizer"]
    value = f"{evidence['suggested_weight_decay']:g}"
    call = file.call_at(finding.location, finding.end_location)
    if call is None:
        return None
    keywords = {a.keyword.value: a for a in call.args if a.keyword is not None}
    decoupled = keywords.get("decoupled_weight_decay")
    adamw = optimizer == "Adam" and decoupled is None
    switch = " and switch to torch.optim.AdamW (decoupled decay)" if adamw else ""
    advice = Fix(Applicability.DISPLAY_ONLY,
                 f"Add weight_decay={value} to the {optimizer} optimizer{switch} by hand so the weights' norm "
                 "stays bounded")
    if decoupled is not None and not (isinstance(decoupled.value, cst.Name) and decoupled.value.value == "True"):
        return advice
    if any(a.star for a in call.args) or sum(1 for a in call.args if a.keyword is None) > 2:
        return advice  # weight_decay could be among them
    current = keywords.get("weight_decay")
    if current is not None and not _is_zero(current.value):
        return Fix(Applicability.DISPLAY_ONLY,
                   f"The {optimizer} optimizer already passes weight_decay={file.module.code_for_node(current.value)}"
                   f"; set it to about {value}{switch} by hand if the weights' norm keeps growing")
    edits = _rename(file, call.func) if adamw else ([] if _is_class(file, call.func, optimizer) else None)
    if edits is None:
        return advice
    if current is not None:
        edits.append(Edit(value, file.start(current.value), file.end(current.value)))
    else:
        added = file.append(call.args, f"weight_decay={value}")
        if added is None:
            return advice
        edits.append(added)
    use = " and use AdamW (decoupled decay)" if adamw else ""
    return Fix(Applicability.UNSAFE, f"{'Set' if current is not None else 'Add'} weight_decay={value}{use} "
               "so the weights' norm stays bounded", tuple(edits))


def _is_zero(node: cst.BaseExpression) -> bool:
    return isinstance(node, (cst.Integer, cst.Float)) and node.evaluated_value == 0


def _is_class(file: _File, func: cst.BaseExpression, optimizer: str) -> bool:
    """Whether ``func`` names torch.optim's ``optimizer`` (trusting the finding for an attribute)."""
    if isinstance(func, cst.Attribute):
        return func.attr.value == optimizer
    if isinstance(func, cst.Name):
        found = file.imported(func.value)
        return found[1] == optimizer if found is not None else func.value == optimizer
    return False


def _rename(file: _File, func: cst.BaseExpression) -> Optional[list[Edit]]:
    """Edits turning the ``Adam`` that ``func`` names into ``AdamW``, or None when that needs a guess."""
    if isinstance(func, cst.Attribute):
        if func.attr.value != "Adam":
            return None
        return [Edit("AdamW", file.start(func.attr), file.end(func.attr))]
    if not isinstance(func, cst.Name):
        return None
    found = file.imported(func.value)
    if found is None or found[1] != "Adam":
        return None  # a star import, or a name from elsewhere
    statement = found[0]
    existing = next((bound for _, _, name, bound in file.optim_imports if name == "AdamW"), None)
    if existing is not None:
        return [Edit(existing, file.start(func), file.end(func))]
    if file.adamw_used:
        return None  # the name AdamW means something else in this file
    added = file.append(statement.names, "AdamW")
    if added is None:
        return None
    return [added, Edit("AdamW", file.start(func), file.end(func))]
