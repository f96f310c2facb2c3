"""Every rule by code, and rule selection by code, prefix or name.  Never imports torch.

Codes are public API: GH0xx meta, GH1xx runtime probe, GH2xx static source.
A selector is a full code (``GH201``), a code prefix (``GH2``, ``GH20``), a rule name
(``missing-gradient-clipping``) or ``ALL``.
"""
from __future__ import annotations

import functools
import inspect
import re
from typing import Iterable, Optional

from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.findings import Severity
from gradcheck_tool.static import PROBE_CHECKED_RULES, STATIC_RULES


class SyntaxErrorRule:
    """A scanned file does not parse.

    What it does: reports a file that Python cannot parse (or that is not valid UTF-8) as a
    finding at the error's position, instead of stopping the scan.

    Why it matters: nothing else can be checked in that file, and a hook over many files
    should report every problem in one run.

    Example: ``def train(:`` left half-edited.

    Fix: correct the syntax; ``python -m py_compile FILE`` shows the same error.
    """

    CODE = "GH001"
    NAME = "syntax-error"
    SEVERITY = Severity.ERROR


SECTION = re.compile(r"^(What it does|Why it matters|Examples?|Fix):(?=\s|$)")  # a docstring's section labels

META_RULES = {SyntaxErrorRule.CODE: SyntaxErrorRule}
# What a static-only scan can report.  The runtime rules (and the probe record they read) are
# imported on first use of ALL_RULES: a pre-commit hook run never pays for them.
SOURCE_RULES: dict[str, type] = dict(sorted({**META_RULES, **STATIC_RULES, **PROBE_CHECKED_RULES}.items()))


@functools.cache
def _all_rules() -> dict[str, type]:
    from gradcheck_tool.rules import RULES as RUNTIME_RULES

    return dict(sorted({**SOURCE_RULES, **RUNTIME_RULES}.items()))


def __getattr__(name: str):
    if name == "ALL_RULES":  # every rule by code (module attribute, computed on first use)
        return _all_rules()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def documentation(rule: type) -> str:
    return inspect.cleandoc(rule.__doc__ or "")


def summary(rule: type) -> str:
    """One sentence.  A docstring that opens on a section label ("What it does:") has no
    summary line, so the first sentence of that section stands in, without its asides:
    parentheticals and anything after a colon (lists of examples) are dropped."""
    doc = documentation(rule)
    first = doc.splitlines()[0] if doc else rule.NAME
    if not SECTION.match(first):
        return first
    text = SECTION.sub("", " ".join(doc.split("\n\n", 1)[0].split())).strip()
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", text, maxsplit=1)[0]
    kept, depth, i = [], 0, 0
    while i < len(sentence):
        if sentence.startswith("``", i):  # a code span is opaque: its ( ) and : are code
            end = sentence.find("``", i + 2)
            end = len(sentence) if end < 0 else end + 2
            kept += [sentence[i:end]] if depth == 0 else []
            i = end
            continue
        char = sentence[i]
        if char == ":" and depth == 0 and sentence[i + 1:i + 2] in (" ", ""):
            break
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            kept.append(char)
        i += 1
    short = re.sub(r"\s+(?=[,.;])", "", " ".join("".join(kept).split())).rstrip(".,;")
    return f"{short}." if short else rule.NAME


def find(selector: str) -> type:
    """The one rule named by a code or a name (for ``gradhealth rule``)."""
    rules, text = _all_rules(), selector.strip()
    code = text.upper() if text.upper() in rules else _names(rules).get(text.lower())
    if code is None:
        raise GradhealthError(f"unknown rule {selector!r}; `gradhealth rule --all` lists them")
    return rules[code]


def _names(rules: dict[str, type]) -> dict[str, str]:
    return {rule.NAME: code for code, rule in rules.items()}


def _match(text: str, rules: dict[str, type]) -> Optional[set[str]]:
    """The codes among ``rules`` that one selector names; None when it names none of them."""
    upper = text.upper()
    if upper == "ALL":
        return set(rules)
    by_name = _names(rules)
    if text.lower() in by_name:
        return {by_name[text.lower()]}
    found = {c for c in rules if c.startswith(upper)} if upper.startswith("GH") else set()
    return found or None


def resolve(selectors: Iterable[str], *, option: str = "--select", source_only: bool = False) -> set[str]:
    """The codes a list of selectors names; an unknown selector is an error naming the option.
    ``source_only``: only the codes a static-only scan can report (a selector of runtime rules
    is still checked, and adds nothing), without importing the runtime rules when every
    selector names a source rule."""
    codes: set[str] = set()
    for raw in selectors:
        text = raw.strip()
        if not text:
            continue
        found = _match(text, SOURCE_RULES) if source_only else None
        if found is None:
            found = _match(text, _all_rules())
        if found is None:
            raise GradhealthError(f"{option}: unknown rule code or name {raw!r}; `gradhealth rule --all` lists them")
        codes |= found
    return {c for c in codes if c in SOURCE_RULES} if source_only else codes
