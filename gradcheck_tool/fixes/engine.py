"""Apply fixes to one file: collect edits, apply them in one pass, re-scan, verify, repeat until stable.

Guarantees: the result parses (an edit set that would not is rejected whole); a second run
changes nothing (codemods are idempotent and the loop stops when a round changes nothing);
unsafe fixes, and any edit that deletes a comment, need ``unsafe=True``; only findings at or
above the fix level are fixed; every fix must pass :mod:`gradcheck_tool.fixes.safety` (its new
code can run where it lands) or is withdrawn with the reason; runtime fixes are verified by
probing the patched text (in the isolated child when the options say so): the engine reads
the number the rule itself measures (``RuntimeRule.METRIC`` / ``measure`` / ``BETTER``) before
and after, and a fix whose finding does not improve is taken back, with the reason.  Nothing
is written here: the caller writes ``FixResult.fixed`` with ``write_atomic``.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from gradcheck_tool import api, registry
from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.findings import Applicability, Finding, ProbeResult, Severity, newline_of
from gradcheck_tool.fixes import edits as text_edits
from gradcheck_tool.fixes import safety

MAX_ROUNDS = 4


@dataclass(frozen=True)
class Verification:
    code: str
    module: Optional[str]
    metric: str
    before: Optional[float]
    after: Optional[float]
    improved: bool

    def describe(self) -> str:
        fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
        verdict = "verified" if self.improved else "not improved: fix taken back"
        return f"{self.code} {self.module or ''}: {self.metric} {fmt(self.before)} -> {fmt(self.after)} ({verdict})"


@dataclass(frozen=True)
class FixResult:
    filename: str
    original: str
    fixed: str
    applied: tuple[Finding, ...]
    rejected: tuple[tuple[Finding, str], ...]
    remaining: tuple[Finding, ...]
    verifications: tuple[Verification, ...]
    probe: Optional[ProbeResult]
    probe_error: Optional[str] = None  # why the probe could not run: only static fixes were made

    @property
    def changed(self) -> bool:
        return self.fixed != self.original


def _metric(code: str, module: Optional[str], probe: Optional[ProbeResult]) -> tuple[str, Optional[float], int]:
    """What the rule says its signal is, its value on the probe, and which way is better; a
    rule with no number is measured by its finding being present (1) or gone (0)."""
    rule = registry.ALL_RULES.get(code)
    record = probe.record if probe is not None else None
    if record is None:
        return "probe", None, -1
    if rule is None or getattr(rule, "METRIC", None) is None:
        return "finding present", 1.0, -1
    value = rule.measure(record, module)
    return rule.METRIC, (None if value is None or math.isnan(value) else value), rule.BETTER


def verify(finding: Finding, before: api.FileResult, after: api.FileResult) -> Verification:
    metric, old, better = _metric(finding.code, finding.module, before.probe)
    _, new, _ = _metric(finding.code, finding.module, after.probe)
    gone = not any(f.code == finding.code for f in after.findings)
    improved = gone and (old is None or new is None or new == old or (new - old) * better > 0)
    return Verification(finding.code, finding.module, metric, old, 0.0 if (gone and metric == "finding present") else new,
                        improved)


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def _applicable(finding: Finding, text: str, unsafe: bool, level: Severity) -> bool:
    fix = finding.fix
    if fix is None or not fix.edits or fix.applicability is Applicability.DISPLAY_ONLY:
        return False
    if not finding.severity.at_least(level):
        return False
    if fix.applicability is Applicability.UNSAFE or text_edits.deletes_comment(text, fix.edits):
        return unsafe
    return True


def _key(finding: Finding) -> tuple:
    return finding.code, finding.module, tuple(e.content for e in finding.fix.edits) if finding.fix else ()


def _lint(path: Path, text: Optional[str], options: api.ScanOptions, display: str) -> api.FileResult:
    return api.lint_file(path, options, display_name=display, text=text)


def _named(message: str, path: Path) -> str:
    """The probe's error naming the user's file, never the hidden sibling the engine probed."""
    hidden = re.compile(re.escape(f".{path.stem}.gradhealth-") + r"\w+\.py")
    return hidden.sub(path.name, message)


def fix_file(path: Path, options: api.ScanOptions, *, unsafe: bool = False,
             display_name: Optional[str] = None, level: Severity = Severity.WARNING) -> FixResult:
    """Fix the findings at or above ``level`` (the CLI's ``--fix-level``, by default ``--fail-on``).

    Each fix is first applied alone and withdrawn, with the reason, when :mod:`safety` cannot
    prove its new code runs where it lands.  When the probe cannot run, the static fixes are
    still made and ``probe_error`` says why (naming the user's file)."""
    display = display_name or str(path)
    original = path.read_bytes().decode("utf-8-sig")
    newline = newline_of(original)
    text = original
    probe_error: Optional[str] = None
    try:
        result = _lint(path, None, options, display)
    except GradhealthError as err:
        probe_error = _named(str(err), path)
        options = dataclasses.replace(options, static_only=True)
        result = _lint(path, None, options, display)
    applied: list[Finding] = []
    rejected: list[tuple[Finding, str]] = []
    withdrawn: set = set()
    verifications: list[Verification] = []
    for _ in range(MAX_ROUNDS):
        chosen, chosen_edits = [], []
        for finding in result.findings:
            if not _applicable(finding, text, unsafe, level) or _key(finding) in withdrawn:
                continue
            fix_edits = text_edits.with_newline(finding.fix.edits, newline)
            if text_edits.overlaps(text, chosen_edits, fix_edits):
                continue
            alone = text_edits.apply(text, fix_edits)
            parses = _parses(alone)
            problems = safety.problems(text, alone) if parses else []
            if problems or not parses:
                withdrawn.add(_key(finding))
                rejected.append((finding, "unsafe: " + "; ".join(problems) if parses
                                 else "the patched file would not parse"))
                continue
            chosen.append(finding)
            chosen_edits.extend(fix_edits)
        if not chosen:
            break
        patched = text_edits.apply(text, chosen_edits)
        if patched == text:
            break
        if not _parses(patched) or safety.new_undefined(text, patched):
            reason = "the patched file would not parse" if not _parses(patched) else \
                "unsafe: together, the fixes add an undefined name"
            rejected.extend((f, reason) for f in chosen)
            break
        try:
            after = _lint(path, patched, options, display)
        except GradhealthError as err:
            after = None
            failure = f"the patched file could not be probed: {_named(str(err), path)}"
        except OSError as err:  # the re-probe imports a hidden sibling: a read-only directory
            raise GradhealthError(f"{display}: cannot probe the patched file beside it "
                                  f"({err.strerror}): the directory is read-only") from err
        runtime = [f for f in chosen if f.code.startswith("GH1")]
        if runtime:
            checks = [verify(f, result, after) for f in runtime] if after is not None else []
            verifications.extend(checks)
            failed = [f for f, check in zip(runtime, checks) if not check.improved] if after is not None else runtime
            if failed:
                rejected.extend((f, failure if after is None else "the re-probe did not show it improved")
                                for f in failed)
                withdrawn.update(_key(f) for f in failed)
                chosen = [f for f in chosen if f not in failed]
                if not chosen:
                    break
                patched = text_edits.apply(text, [e for f in chosen
                                                  for e in text_edits.with_newline(f.fix.edits, newline)])
                after = _lint(path, patched, options, display)
        elif after is None:
            raise GradhealthError(failure)
        applied.extend(chosen)
        text, result = patched, after
    return FixResult(display, original, text, tuple(applied), tuple(rejected), result.findings,
                     tuple(verifications), result.probe, probe_error)


def write_atomic(path: Path, text: str) -> None:
    """Replace the file in one rename, keeping its mode and a UTF-8 byte-order mark if it had one.

    A symlink is followed and its target rewritten (as ruff does), so the link stays a link.  A
    file or directory the user cannot write raises GradhealthError with one line saying so."""
    target = Path(os.path.realpath(path))
    if not os.access(target, os.W_OK) or not os.access(target.parent, os.W_OK | os.X_OK):
        what = "file" if not os.access(target, os.W_OK) else "directory"
        where = target if what == "file" else target.parent
        raise GradhealthError(f"{path}: cannot write the fix: the {what} {where} is read-only")
    raw = target.read_bytes()
    data = (b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b"") + text.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".gradhealth-tmp")
    except OSError as err:
        raise GradhealthError(f"{path}: cannot write the fix in {target.parent}: {err.strerror}") from err
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise GradhealthError(f"{path}: cannot write the fix: {err.strerror}") from err
        raise
