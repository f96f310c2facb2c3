"""SARIF 2.1.0 and GitHub Actions renderers: schema validity, URIs, regions, fixes, escaping."""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import jsonschema
import pytest

import gradcheck_tool
from gradcheck_tool import registry
from gradcheck_tool.findings import (
    Applicability, Edit, Finding, Fix, Position, ProbeResult, ProbeStatus, Report, Severity,
)
from gradcheck_tool.report import github, sarif
from gradcheck_tool.static import STATIC_RULES, check_source

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
VALIDATOR_CLASS = jsonschema.validators.validator_for(SCHEMA)  # draft-04, as its $schema says
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}

WEIRD = "dir with space/ünï, a:b 100%.py"  # spaces, non-ASCII, comma, colon, percent
OUTSIDE = "/opt/other project/init,utils.py"  # absolute, not under the root (need not exist)
CLIP = Edit("    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n", Position(14, 1), Position(14, 1))

RUNTIME = Finding(
    "GH102", "vanishing-gradients", Severity.ERROR, "the backward signal shrinks 1e6x across depth",
    filename="model.py", location=Position(10, 22), end_location=Position(10, 45), module="body.0",
    evidence={"ratio": 1e-6, "nan": math.nan, "inf": -math.inf, "layers": ("body.0", "body.2"),
              "nested": {"values": (1.5, math.inf)}, "severity": Severity.INFO},
    fix=Fix(Applicability.DISPLAY_ONLY, "use He init"),
)
STATIC = Finding(
    "GH201", "missing-gradient-clipping", Severity.WARNING,
    "`optimizer.step()` with no clipping: 50% of runs\ndiverge",
    filename=WEIRD, location=Position(14, 5), end_location=Position(14, 21),
    evidence={"step_line": 14}, fix=Fix(Applicability.UNSAFE, "clip: max_norm=1.0, then step", (CLIP,)),
)
SYNTAX = Finding(
    "GH001", "syntax-error", Severity.ERROR, "Syntax error: invalid syntax (static checks skipped for this file)",
    filename="broken.py", location=Position(3, 9), end_location=Position(3, 10),
    evidence={"parser_message": "invalid syntax"},
)
NO_LOCATION = Finding("GH112", "gradient-free-parameters", Severity.INFO, "head.bias gets no gradient",
                      filename="model.py", module="head")
NO_FILE = Finding("GH110", "dead-units", Severity.WARNING, "80% of fc's units never activate\r\n", module="fc")
MULTILINE = Finding("GH207", "deep-saturating-stack", Severity.WARNING, "4 tanh layers in a row",
                    filename="nets.py", location=Position(3, 7), end_location=Position(6, 2))
OUTSIDE_ROOT = Finding(
    "GH206", "unscaled-normal-init", Severity.WARNING, "std=1 whatever the fan-in",
    filename=OUTSIDE, location=Position(7, 9), end_location=Position(7, 40),
    fix=Fix(Applicability.DISPLAY_ONLY, "scale by fan_in ** -0.5"),
)
FINDINGS = (RUNTIME, STATIC, SYNTAX, NO_LOCATION, NO_FILE, MULTILINE, OUTSIDE_ROOT)
FAILED = ProbeResult("broken model.py", ProbeStatus.FAILED, "ValueError: shapes (2,3) and (4,)\ndo not match")
PROBES = (ProbeResult("model.py", ProbeStatus.OK), FAILED, ProbeResult("utils.py", ProbeStatus.SKIPPED, "no model"))


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A project root whose own path needs percent-encoding; filenames are relative to it."""
    path = tmp_path / "proj root é"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def hand_report(root) -> Report:
    return Report(findings=FINDINGS, probes=PROBES, files=5, root=str(root))


def _validate(document: dict) -> None:
    errors = sorted(VALIDATOR_CLASS(SCHEMA).iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def _sarif(report: Report) -> dict:
    text = sarif.render(report)
    assert text.endswith("\n") and text == sarif.render(report), "rendering must be deterministic"
    document = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    _validate(document)
    _check_consistency(report, document)
    return document


def _region(start, end) -> dict:
    region = {}
    if start is not None:
        region = {"startLine": start.row, "startColumn": start.column}
        if end is not None:
            region |= {"endLine": end.row, "endColumn": end.column}
    return region


def _check_consistency(report: Report, document: dict) -> None:
    """What must hold for every report: rules, indices, levels, regions, fixes, URIs."""
    (run,) = document["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted({f.code for f in report.findings}), "one descriptor per triggered rule"
    assert len(run["results"]) == len(report.findings)
    base = run["originalUriBaseIds"]["SRCROOT"]["uri"]
    assert base == Path(report.root).as_uri() + "/"
    for finding, result in zip(report.findings, run["results"]):
        assert result["ruleId"] == finding.code
        assert rules[result["ruleIndex"]]["id"] == finding.code
        assert result["level"] == LEVELS[finding.severity]
        assert result["message"]["text"].startswith(finding.message.rstrip())
        locations = result.get("locations", [{}])
        physical = locations[0].get("physicalLocation")
        assert (physical is not None) == bool(finding.filename)
        if physical:
            assert _resolve(physical["artifactLocation"], base) == _absolute(finding.filename)
            assert physical.get("region", {}) == _region(finding.location, finding.end_location)
        if finding.module:
            assert locations[0]["logicalLocations"] == [{"fullyQualifiedName": finding.module, "kind": "member"}]
        has_edits = bool(finding.fix and finding.fix.edits and finding.filename)
        assert ("fixes" in result) == has_edits, "fixes exactly for findings with edits"
        if has_edits:
            (fix,) = result["fixes"]
            (change,) = fix["artifactChanges"]
            assert change["artifactLocation"] == physical["artifactLocation"]
            assert fix["description"]["text"] == finding.fix.message
            assert [(r["deletedRegion"], r["insertedContent"]["text"]) for r in change["replacements"]] == [
                (_region(e.location, e.end_location), e.content) for e in finding.fix.edits]
        if finding.fix is not None and finding.fix.message:
            assert result["message"]["text"].endswith(f" Fix: {finding.fix.message}")


def _absolute(filename: str) -> Path:
    return Path(filename) if Path(filename).is_absolute() else Path.cwd() / filename


def _resolve(artifact: dict, base: str) -> Path:
    """Follow an artifactLocation back to a path the way a SARIF viewer does."""
    uri = artifact["uri"]
    parts = urllib.parse.urlsplit(uri)
    if "uriBaseId" in artifact:
        assert artifact["uriBaseId"] == "SRCROOT"
        assert not parts.scheme and not uri.startswith("/"), f"not repo-relative: {uri}"
        uri = urllib.parse.urljoin(base, uri)
    else:
        assert parts.scheme == "file", "only files outside the root keep an absolute URI"
    assert " " not in uri and "," not in uri
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(uri).path))


# -- SARIF: the schema and the check itself --------------------------------------------

def test_schema_is_the_shared_one_and_is_itself_valid():
    shared = REPO.parent / "shared" / "data" / "sarif-schema-2.1.0.json"
    if shared.exists():  # the copy in tests/data must stay verbatim
        assert json.loads(shared.read_text(encoding="utf-8")) == SCHEMA
    assert VALIDATOR_CLASS is jsonschema.Draft4Validator
    VALIDATOR_CLASS.check_schema(SCHEMA)


@pytest.mark.parametrize(("path", "value"), [
    (("runs", 0, "results", 0, "level"), "fatal"),
    (("runs", 0, "results", 0, "locations", 0, "physicalLocation", "region", "startLine"), 0),
    (("runs", 0, "results", 1, "fixes", 0, "artifactChanges"), []),
    (("runs", 0, "invocations", 0, "executionSuccessful"), "no"),
    (("version",), "2.0.0"),
])
def test_mutated_documents_fail_validation(hand_report, path, value):
    document = json.loads(sarif.render(hand_report))
    _validate(document)
    broken = copy.deepcopy(document)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(AssertionError):
        _validate(broken)


def test_dropping_a_required_message_fails_validation(hand_report):
    document = json.loads(sarif.render(hand_report))
    del document["runs"][0]["results"][0]["message"]
    assert list(VALIDATOR_CLASS(SCHEMA).iter_errors(document))


# -- SARIF: hand-built report ----------------------------------------------------------

def test_hand_built_report(hand_report, root):
    document = _sarif(hand_report)
    assert document["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert document["version"] == "2.1.0"
    (run,) = document["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("gradhealth", gradcheck_tool.__version__)
    assert driver["informationUri"].startswith("https://")
    assert run["columnKind"] == "unicodeCodePoints"
    base = run["originalUriBaseIds"]["SRCROOT"]["uri"]
    assert base.startswith("file:///") and base.endswith("/proj%20root%20%C3%A9/")
    assert [r["ruleIndex"] for r in run["results"]] == [1, 4, 0, 3, 2, 6, 5]

    runtime, static, syntax, no_location, no_file, multiline, outside = run["results"]
    assert runtime["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "model.py", "uriBaseId": "SRCROOT"},
        "region": {"startLine": 10, "startColumn": 22, "endLine": 10, "endColumn": 45},
    }
    assert runtime["message"]["text"] == "the backward signal shrinks 1e6x across depth. Fix: use He init"
    assert runtime["properties"]["evidence"] == {
        "ratio": 1e-6, "nan": None, "inf": None, "layers": ["body.0", "body.2"],
        "nested": {"values": [1.5, None]}, "severity": "info"}
    assert "fixes" not in runtime

    assert static["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "dir%20with%20space/%C3%BCn%C3%AF%2C%20a%3Ab%20100%25.py", "uriBaseId": "SRCROOT"}
    assert urllib.parse.unquote(static["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) == WEIRD
    assert static["fixes"] == [{
        "description": {"text": "clip: max_norm=1.0, then step"},
        "artifactChanges": [{
            "artifactLocation": {"uri": "dir%20with%20space/%C3%BCn%C3%AF%2C%20a%3Ab%20100%25.py",
                                 "uriBaseId": "SRCROOT"},
            "replacements": [{
                "deletedRegion": {"startLine": 14, "startColumn": 1, "endLine": 14, "endColumn": 1},
                "insertedContent": {"text": CLIP.content},
            }],
        }],
        "properties": {"applicability": "unsafe"},
    }]
    assert syntax["level"] == "error" and "fixes" not in syntax
    assert no_location["level"] == "note"
    assert no_location["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "model.py", "uriBaseId": "SRCROOT"}}
    assert no_file["locations"] == [{"logicalLocations": [{"fullyQualifiedName": "fc", "kind": "member"}]}]
    assert multiline["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 3, "startColumn": 7, "endLine": 6, "endColumn": 2}
    assert outside["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "file:///opt/other%20project/init%2Cutils.py"}
    assert "fixes" not in outside  # display-only advice is not a SARIF fix

    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"] == [{
        "level": "error",
        "message": {"text": FAILED.reason},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "broken%20model.py", "uriBaseId": "SRCROOT"}}}],
    }]


def test_rule_descriptors_carry_the_registry_documentation(hand_report):
    rules = _sarif(hand_report)["runs"][0]["tool"]["driver"]["rules"]
    for descriptor in rules:
        rule = registry.ALL_RULES[descriptor["id"]]
        doc = registry.documentation(rule)
        assert descriptor["name"] == rule.NAME
        assert descriptor["fullDescription"]["text"] == doc == descriptor["help"]["text"]
        assert descriptor["help"]["markdown"].strip()
        assert descriptor["defaultConfiguration"]["level"] == LEVELS[rule.SEVERITY]
        family = {"GH0": "meta", "GH1": "runtime", "GH2": "static"}[descriptor["id"][:3]]
        assert descriptor["properties"]["tags"] == [family]
        short = descriptor["shortDescription"]["text"]
        assert short and "\n" not in short and not short.endswith(":")
        if not registry.summary(rule).endswith(":"):
            assert short == registry.summary(rule)
    by_id = {d["id"]: d for d in rules}
    assert by_id["GH102"]["shortDescription"]["text"] == "The backward signal shrinks from the output toward the input."
    # GH201's docstring opens on "What it does:": its first sentence, asides dropped, stands in.
    assert by_id["GH201"]["shortDescription"]["text"] == (
        "Finds training steps in a loop or function that never clips gradients.")
    assert "```python\nmodel = nn.LSTM(64, 64)\n...\nloss.backward()" in by_id["GH201"]["help"]["markdown"]
    assert "**Why it matters:**" in by_id["GH201"]["help"]["markdown"]


def test_no_failed_probe_means_a_successful_invocation(root):
    document = _sarif(Report(findings=(SYNTAX,), probes=PROBES[:1] + PROBES[2:], root=str(root)))
    assert document["runs"][0]["invocations"] == [{"executionSuccessful": True, "toolExecutionNotifications": []}]


def test_empty_report(root):
    document = _sarif(Report(root=str(root)))
    (run,) = document["runs"]
    assert run["results"] == [] and run["tool"]["driver"]["rules"] == []


def test_root_defaults_to_the_working_directory(root):
    document = json.loads(sarif.render(Report(findings=(SYNTAX,))))
    assert document["runs"][0]["originalUriBaseIds"]["SRCROOT"]["uri"] == root.as_uri() + "/"
    assert document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "broken.py", "uriBaseId": "SRCROOT"}


def test_filenames_relative_to_a_working_directory_below_the_root(root, monkeypatch):
    (root / "sub").mkdir()
    monkeypatch.chdir(root / "sub")
    document = _sarif(Report(findings=(SYNTAX,), root=str(root)))
    artifact = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "sub/broken.py", "uriBaseId": "SRCROOT"}


# -- SARIF: real runs ------------------------------------------------------------------

BAD_EXAMPLES = [pytest.param(code, i, source, id=f"{code}-bad-{i}")
                for code, rule in STATIC_RULES.items() for i, source in enumerate(rule.BAD)]


@pytest.mark.parametrize(("code", "index", "source"), BAD_EXAMPLES)
def test_static_bad_examples(root, code, index, source):
    findings = tuple(check_source(source, "examples/bad train.py"))
    assert any(f.code == code for f in findings)
    _sarif(Report(findings=findings, files=1, root=str(root)))


def test_static_fixes_with_edits_become_sarif_fixes(root):
    findings = tuple(f for code, rule in STATIC_RULES.items() for source in rule.BAD
                     for f in check_source(source, "train.py"))
    assert any(f.fix and f.fix.edits for f in findings) and any(f.fix and not f.fix.edits for f in findings)
    results = _sarif(Report(findings=findings, root=str(root)))["runs"][0]["results"]
    assert sum("fixes" in r for r in results) == sum(bool(f.fix and f.fix.edits) for f in findings)


def test_syntax_error_from_a_real_parse(root):
    findings = tuple(check_source("def train(:\n    pass\n", "broken.py"))
    assert [f.code for f in findings] == ["GH001"]
    _sarif(Report(findings=findings, root=str(root)))


def _probe_fixture(name: str):
    from gradcheck_tool import api  # torch enters here, not at collection

    path = Path("fixtures") / name
    if hasattr(api, "scan_path"):
        return api.scan_path(path)
    result = api.lint_file(path, api.ScanOptions(root=REPO), display_name=path.as_posix())
    return list(result.findings), result.probe


def test_probed_fixture(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(REPO)
    source = (REPO / "fixtures" / "exploding_normal_init.py").read_text(encoding="utf-8")
    static = check_source(source, "fixtures/exploding_normal_init.py")
    findings, probe = _probe_fixture("exploding_normal_init.py")
    assert probe.status is ProbeStatus.OK
    runtime = [f for f in findings if f.code.startswith("GH1")]
    assert runtime and all(f.module and f.location for f in runtime)
    merged = {(f.code, f.location, f.module): f for f in [*static, *findings]}
    report = Report(findings=tuple(sorted(merged.values(), key=lambda f: f.sort_key)), probes=(probe,),
                    files=1, root=str(REPO))
    run = _sarif(report)["runs"][0]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert uris == {"fixtures/exploding_normal_init.py"}
    assert {r["ruleId"] for r in run["results"]} >= {"GH101", "GH206"}
    assert any(r.get("locations", [{}])[0].get("logicalLocations") for r in run["results"])
    assert run["invocations"][0]["executionSuccessful"] is True
    # The GitHub rendering of the same report: one annotation per finding, all on the fixture.
    lines = github.render(report).splitlines()
    assert len(lines) == len(report.findings)
    assert all(line.startswith(("::error file=fixtures/exploding_normal_init.py,line=",
                                "::warning file=fixtures/exploding_normal_init.py,line=",
                                "::notice file=fixtures/exploding_normal_init.py,line=")) for line in lines)


# -- GitHub Actions --------------------------------------------------------------------

EXPECTED_GITHUB = [
    "::error file=broken model.py::gradhealth could not probe this file: "
    "ValueError: shapes (2,3) and (4,)%0Ado not match",
    "::error file=model.py,line=10,col=22,endLine=10,endColumn=45,title=GH102 vanishing-gradients::"
    "the backward signal shrinks 1e6x across depth — fix: use He init",
    "::warning file=dir with space/ünï%2C a%3Ab 100%25.py,line=14,col=5,endLine=14,endColumn=21,"
    "title=GH201 missing-gradient-clipping::"
    "`optimizer.step()` with no clipping: 50%25 of runs%0Adiverge — fix: clip: max_norm=1.0, then step",
    "::error file=broken.py,line=3,col=9,endLine=3,endColumn=10,title=GH001 syntax-error::"
    "Syntax error: invalid syntax (static checks skipped for this file)",
    "::notice file=model.py,title=GH112 gradient-free-parameters::head.bias gets no gradient",
    "::warning title=GH110 dead-units::80%25 of fc's units never activate%0D%0A",
    "::warning file=nets.py,line=3,endLine=6,title=GH207 deep-saturating-stack::4 tanh layers in a row",
    "::warning file=/opt/other project/init%2Cutils.py,line=7,col=9,endLine=7,endColumn=40,"
    "title=GH206 unscaled-normal-init::std=1 whatever the fan-in — fix: scale by fan_in ** -0.5",
]


def test_github_exact_lines(hand_report):
    text = github.render(hand_report)
    assert text == "".join(line + "\n" for line in EXPECTED_GITHUB)
    assert text == github.render(hand_report)
    assert "\r" not in text and text.count("\n") == len(EXPECTED_GITHUB)


def test_github_empty_report_is_empty():
    assert github.render(Report()) == ""
    # Skipped and successful probes annotate nothing either.
    assert github.render(Report(probes=(PROBES[0], PROBES[2]))) == ""


@pytest.mark.parametrize(("severity", "command"), [
    (Severity.ERROR, "error"), (Severity.WARNING, "warning"), (Severity.INFO, "notice")])
def test_github_severity_mapping(severity, command):
    finding = Finding("GH201", "missing-gradient-clipping", severity, "m", filename="t.py",
                      location=Position(1, 1), end_location=Position(1, 2))
    assert github.render(Report(findings=(finding,))) == (
        f"::{command} file=t.py,line=1,col=1,endLine=1,endColumn=2,title=GH201 missing-gradient-clipping::m\n")


def test_github_escaping_matches_actions_toolkit():
    assert github.escape_data("100% a:b,c\r\nd") == "100%25 a:b,c%0D%0Ad"
    assert github.escape_property("100% a:b,c\r\nd") == "100%25 a%3Ab%2Cc%0D%0Ad"
    # Already-escaped-looking text is escaped again, so it reads back literally.
    assert github.escape_property("%2C%3A%0A") == "%252C%253A%250A"


def _parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """Read one workflow command back the way the Actions runner does."""
    assert line.startswith("::")
    head, sep, data = line[2:].partition("::")
    assert sep, line
    name, _, props = head.partition(" ")
    properties = {}
    for pair in filter(None, props.split(",")):
        key, _, value = pair.partition("=")
        properties[key] = _unescape(value, property_value=True)
    return name, properties, _unescape(data, property_value=False)


def _unescape(text: str, *, property_value: bool) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if property_value else [])
    for escaped, plain in pairs + [("%25", "%")]:
        text = text.replace(escaped, plain)
    return text


def test_github_parse_back_recovers_every_value(hand_report):
    lines = github.render(hand_report).splitlines()
    assert _parse_command(lines[0]) == (
        "error", {"file": FAILED.filename}, f"gradhealth could not probe this file: {FAILED.reason}")
    for finding, line in zip(FINDINGS, lines[1:], strict=True):
        name, properties, data = _parse_command(line)
        assert name == {"error": "error", "warning": "warning", "info": "notice"}[finding.severity.value]
        assert properties.get("file") == finding.filename
        assert properties["title"] == f"{finding.code} {finding.name}"
        start, end = finding.location, finding.end_location
        assert properties.get("line") == (str(start.row) if start else None)
        assert properties.get("endLine") == (str(end.row) if end else None)
        single = start is not None and end is not None and start.row == end.row
        assert properties.get("col") == (str(start.column) if single else None)
        assert properties.get("endColumn") == (str(end.column) if single else None)
        expected = finding.message + (f" — fix: {finding.fix.message}" if finding.fix else "")
        assert data == expected


@pytest.mark.parametrize("filename", [
    "a,b.py", "a:b.py", "100%.py", "%2C.py", "new\nline.py", "über módel.py", "x=y.py", "a::b.py"])
def test_github_parse_back_of_odd_filenames(filename):
    finding = Finding("GH206", "unscaled-normal-init", Severity.WARNING, "a::b, 5% of it", filename=filename,
                      location=Position(2, 3), end_location=Position(2, 9))
    (line,) = github.render(Report(findings=(finding,))).splitlines()
    assert _parse_command(line) == ("warning", {
        "file": filename, "line": "2", "col": "3", "endLine": "2", "endColumn": "9",
        "title": "GH206 unscaled-normal-init"}, "a::b, 5% of it")


def test_github_for_static_bad_examples():
    for rule in STATIC_RULES.values():
        for source in rule.BAD:
            findings = tuple(check_source(source, "train.py"))
            lines = github.render(Report(findings=findings)).splitlines()
            assert len(lines) == len(findings)
            for finding, line in zip(findings, lines):
                name, properties, _ = _parse_command(line)
                assert properties["title"].split()[0] == finding.code
                assert properties["line"] == str(finding.location.row)


# -- no torch --------------------------------------------------------------------------

def test_renderers_import_and_run_without_torch():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import gradcheck_tool.report.sarif, gradcheck_tool.report.github\n"
        "from gradcheck_tool.findings import Finding, Position, Report, Severity\n"
        "f = Finding('GH201', 'missing-gradient-clipping', Severity.WARNING, 'm', 'a.py', Position(1, 1))\n"
        "r = Report(findings=(f,))\n"
        "assert gradcheck_tool.report.sarif.render(r) and gradcheck_tool.report.github.render(r)\n"
        "assert sys.modules['torch'] is None\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
