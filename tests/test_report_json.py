"""The JSON report: its shape, strictness (no NaN), determinism, and the shipped schema."""
from __future__ import annotations

import copy
import dataclasses
import json
import math

import jsonschema
import numpy as np
import pytest
import torch
from jsonschema import Draft202012Validator
from torch import nn

import gradcheck_tool
from gradcheck_tool.findings import (
    Applicability, Edit, Finding, Fix, Position, ProbeResult, ProbeStatus, Report, Severity,
)
from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.probe.record import LayerStats, ParamStats, RecurrentStats
from gradcheck_tool.report.json import SCHEMA_PATH, load_schema, render
from gradcheck_tool.rules import examples

EDIT = Edit("    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n", Position(14, 1), Position(14, 1))

FINDINGS = (
    Finding(
        code="GH201", name="missing-gradient-clipping", severity=Severity.WARNING,
        message="optimizer.step() with no gradient clipping", filename="train.py",
        location=Position(14, 5), end_location=Position(14, 21),
        evidence={"call": "optimizer.step", "line": 14},
        fix=Fix(Applicability.UNSAFE, "clip gradients before the step", (EDIT,)),
    ),
    Finding(
        code="GH102", name="vanishing-gradients", severity=Severity.ERROR,
        message="the backward signal shrinks 1e6x across depth", module="body.0",
        evidence={
            "nan": float("nan"), "inf": float("inf"), "ninf": -math.inf,
            "np_float": np.float64(0.25), "np_float32": np.float32(0.5), "np_int": np.int64(7),
            "np_bool": np.bool_(True), "np_nan": np.float32("nan"),
            "tuple": (1, 2.5, float("nan")),
            "nested": {"deep": [({"x": float("inf")},), (np.float64(1.5), None)]},
            "array": np.array([1.0, np.inf]), "tensor": torch.tensor(3.0),
            "severity": Severity.INFO, "text": "ok", "flag": False, "none": None,
        },
        fix=Fix(Applicability.DISPLAY_ONLY, "use a residual connection"),
    ),
    Finding(code="GH112", name="gradient-free-parameters", severity=Severity.INFO, message="head.bias gets no gradient"),
    # safe but with nothing to apply: not fixable
    Finding(code="GH206", name="unscaled-normal-init", severity=Severity.WARNING, message="std=1",
            filename="m.py", location=Position(3, 9), fix=Fix(Applicability.SAFE, "nothing to do")),
)


def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def _report(*probes: ProbeResult, findings=FINDINGS) -> Report:
    return Report(findings=tuple(findings), probes=tuple(probes), files=2)


def _render_valid(report: Report) -> dict:
    text = render(report)
    assert text.endswith("}\n")
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    _validator().validate(doc)
    return doc


SKIPPED = ProbeResult(filename="utils.py", status=ProbeStatus.SKIPPED, reason="no model defined")
MLP = ProbeResult(filename="model.py", status=ProbeStatus.OK, record=examples.mlp())
RNN = ProbeResult(filename="rnn.py", status=ProbeStatus.OK, record=examples.rnn(0.5))


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert SCHEMA_PATH.name == "schema.json" and SCHEMA_PATH.exists()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://gradhealth.dev/schema/report-1.json"
    assert schema["properties"]["schema_version"]["const"] == 1


def test_top_level_shape_and_summary():
    doc = _render_valid(_report(SKIPPED, MLP))
    assert list(doc) == ["schema_version", "tool", "summary", "findings", "probes"]
    assert doc["schema_version"] == 1
    assert doc["tool"] == {"name": "gradhealth", "version": gradcheck_tool.__version__}
    assert doc["summary"] == {"files": 2, "error": 1, "warning": 2, "info": 1, "fixable": 1}


def test_render_format_is_two_space_indent_with_trailing_newline():
    text = render(_report())
    assert text.startswith('{\n  "schema_version": 1,\n  "tool": {\n    "name": "gradhealth"')
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_finding_with_location_and_fix():
    f = _render_valid(_report())["findings"][0]
    assert list(f) == ["code", "name", "severity", "message", "filename", "location", "end_location",
                       "module", "evidence", "fix"]
    assert f["severity"] == "warning"
    assert f["location"] == {"row": 14, "column": 5}
    assert f["end_location"] == {"row": 14, "column": 21}
    assert f["module"] is None
    assert f["fix"] == {
        "applicability": "unsafe", "message": "clip gradients before the step",
        "edits": [{"content": EDIT.content, "location": {"row": 14, "column": 1}, "end_location": {"row": 14, "column": 1}}],
    }


def test_finding_without_location_and_display_only_fix():
    findings = _render_valid(_report())["findings"]
    f = findings[1]
    assert f["filename"] is None and f["location"] is None and f["end_location"] is None
    assert f["module"] == "body.0" and f["severity"] == "error"
    assert f["fix"] == {"applicability": "displayonly", "message": "use a residual connection", "edits": []}
    assert findings[2]["fix"] is None and findings[2]["evidence"] == {}
    assert [x["code"] for x in findings] == ["GH201", "GH102", "GH112", "GH206"]  # order kept, not sorted


def test_evidence_is_converted_recursively_and_non_finite_becomes_null():
    ev = _render_valid(_report())["findings"][1]["evidence"]
    assert ev == {
        "nan": None, "inf": None, "ninf": None,
        "np_float": 0.25, "np_float32": 0.5, "np_int": 7, "np_bool": True, "np_nan": None,
        "tuple": [1, 2.5, None],
        "nested": {"deep": [[{"x": None}], [1.5, None]]},
        "array": [1.0, None], "tensor": 3.0,
        "severity": "info", "text": "ok", "flag": False, "none": None,
    }
    assert type(ev["np_int"]) is int and type(ev["np_bool"]) is bool
    assert list(ev) == list(FINDINGS[1].evidence)  # evidence keeps its own order


def test_floats_keep_full_precision():
    value = 0.1234567890123456789
    rec = dataclasses.replace(examples.mlp(depth=1), output_grad_norm=value, input_rms=1 / 3)
    finding = Finding("GH101", "exploding-gradients", Severity.ERROR, "m", evidence={"ratio": math.pi})
    doc = _render_valid(Report(findings=(finding,), probes=(ProbeResult("m.py", ProbeStatus.OK, record=rec),)))
    assert doc["probes"][0]["output_grad_norm"] == value
    assert doc["probes"][0]["input_rms"] == 1 / 3
    assert doc["findings"][0]["evidence"]["ratio"] == math.pi


def test_skipped_probe_has_null_fields_and_empty_arrays():
    probe = _render_valid(_report(SKIPPED))["probes"][0]
    assert list(probe) == ["filename", "model", "device", "seed", "batches", "loss", "status", "reason", "inputs",
                           "duration_s", "parameters", "layers", "recurrent", "total_grad_norms",
                           "output_grad_norm", "input_rms", "recommended_max_norm", "steps", "precision",
                           "symmetry", "attention", "amp"]
    assert probe["filename"] == "utils.py" and probe["status"] == "skipped" and probe["reason"] == "no model defined"
    for key in ("model", "device", "seed", "batches", "loss", "inputs", "duration_s", "output_grad_norm",
                "input_rms", "recommended_max_norm", "steps", "precision", "amp"):
        assert probe[key] is None, key
    for key in ("parameters", "layers", "recurrent", "total_grad_norms", "symmetry", "attention"):
        assert probe[key] == [], key


def test_failed_probe():
    failed = ProbeResult("broken.py", ProbeStatus.FAILED, reason="forward raised ValueError")
    probe = _render_valid(_report(failed, findings=()))["probes"][0]
    assert probe["status"] == "failed" and probe["parameters"] == [] and probe["model"] is None


def test_ok_probe_from_mlp_record():
    rec = MLP.record
    probe = _render_valid(_report(MLP))["probes"][0]
    assert probe["status"] == "ok" and probe["reason"] == ""
    assert (probe["model"], probe["device"], probe["seed"], probe["batches"]) == ("Synthetic", "cpu", 0, 3)
    assert probe["loss"] == "default" and probe["inputs"] == "synthetic"
    assert probe["total_grad_norms"] == [1.0, 1.1, 0.9]
    assert probe["recommended_max_norm"] == 2.0 and probe["output_grad_norm"] == 1.0
    assert probe["recurrent"] == []

    assert len(probe["parameters"]) == len(rec.parameters)
    first = probe["parameters"][0]
    assert list(first) == ["name", "shape", "norm", "grad_norm", "grad_norms", "grad_nonfinite", "requires_grad", "module"]
    p = rec.parameters[0]
    assert first == {"name": p.name, "shape": [64, 64], "norm": p.norm, "grad_norm": p.grad_norm,
                     "grad_norms": list(p.grad_norms), "grad_nonfinite": False, "requires_grad": True,
                     "module": p.module}

    assert [layer["name"] for layer in probe["layers"]] == [layer.name for layer in rec.layers]
    linear, relu = probe["layers"][0], probe["layers"][1]
    assert list(linear) == [f.name for f in dataclasses.fields(LayerStats)]
    assert linear["out_shape"] == [8, 64] and linear["params"] == ["body.0.weight", "body.0.bias"]
    assert linear["weight_init"] == {"scheme": "kaiming-normal", "std": 0.177, "fan_in": 64, "fan_out": 64, "gain2": 2.0}
    assert linear["next_activation"] == "relu" and linear["activation"] is None
    assert relu["weight_init"] is None and relu["activation"] == "relu" and relu["dead_fraction"] == 0.0
    assert relu["params"] == [] and relu["units"] == 64


def test_ok_probe_from_rnn_record():
    probe = _render_valid(_report(RNN))["probes"][0]
    assert probe["layers"] == [] and probe["parameters"] == []
    (rec,) = probe["recurrent"]
    assert list(rec) == [f.name for f in dataclasses.fields(RecurrentStats)]
    assert rec["name"] == "rnn" and rec["type"] == "LSTM" and rec["steps"] == 32
    assert rec["spectral_radius"] == 0.6
    assert rec["step_grad_norms"] == [0.5**k for k in range(32)]


def test_non_finite_record_values_become_null():
    base = examples.mlp(depth=1)
    bad_param = ParamStats("w", "", (2,), float("inf"), float("nan"), (1.0, float("nan")), grad_nonfinite=True)
    rec = dataclasses.replace(
        examples.with_params(base, bad_param),
        layers=(dataclasses.replace(base.layers[0], samples_per_unit=float("inf")),),
        recurrent=(RecurrentStats("rnn", "GRU", 2, (1.0, float("inf")), float("nan")),),
        total_grad_norms=(1.0, float("inf")), output_grad_norm=float("nan"), duration_s=float("inf"),
    )
    probe = _render_valid(_report(ProbeResult("m.py", ProbeStatus.OK, record=rec)))["probes"][0]
    param = probe["parameters"][-1]
    assert param["norm"] is None and param["grad_norm"] is None and param["grad_norms"] == [1.0, None]
    assert probe["layers"][0]["samples_per_unit"] is None
    assert probe["recurrent"][0]["step_grad_norms"] == [1.0, None] and probe["recurrent"][0]["spectral_radius"] is None
    assert probe["total_grad_norms"] == [1.0, None]
    assert probe["output_grad_norm"] is None and probe["duration_s"] is None


def test_rendering_is_deterministic():
    report = _report(SKIPPED, MLP, RNN)
    assert render(report) == render(report)
    assert render(report) == render(copy.deepcopy(report))


def test_empty_report():
    doc = _render_valid(Report())
    assert doc["findings"] == [] and doc["probes"] == []
    assert doc["summary"] == {"files": 0, "error": 0, "warning": 0, "info": 0, "fixable": 0}


def _mutations():
    def extra_top(d): d["extra"] = 1
    def extra_tool(d): d["tool"]["extra"] = 1
    def extra_summary(d): d["summary"]["extra"] = 1
    def extra_finding(d): d["findings"][0]["extra"] = 1
    def extra_location(d): d["findings"][0]["location"]["extra"] = 1
    def extra_fix(d): d["findings"][0]["fix"]["extra"] = 1
    def extra_edit(d): d["findings"][0]["fix"]["edits"][0]["extra"] = 1
    def extra_probe(d): d["probes"][1]["extra"] = 1
    def extra_parameter(d): d["probes"][1]["parameters"][0]["extra"] = 1
    def extra_layer(d): d["probes"][1]["layers"][0]["extra"] = 1
    def extra_weight_init(d): d["probes"][1]["layers"][0]["weight_init"]["extra"] = 1
    def extra_recurrent(d): d["probes"][2]["recurrent"][0]["extra"] = 1
    def bad_severity(d): d["findings"][0]["severity"] = "fatal"
    def bad_applicability(d): d["findings"][0]["fix"]["applicability"] = "maybe"
    def bad_status(d): d["probes"][0]["status"] = "crashed"
    def bad_version(d): d["schema_version"] = 2
    def zero_row(d): d["findings"][0]["location"]["row"] = 0
    def zero_column(d): d["findings"][0]["fix"]["edits"][0]["end_location"]["column"] = 0
    def float_row(d): d["findings"][0]["location"]["row"] = 1.5
    def null_array(d): d["probes"][0]["layers"] = None
    def null_findings(d): d["findings"] = None
    def missing_key(d): del d["findings"][0]["evidence"]
    def missing_layer_field(d): del d["probes"][1]["layers"][0]["out_rms"]
    def evidence_not_object(d): d["findings"][0]["evidence"] = [1]
    def nan_as_string(d): d["probes"][1]["total_grad_norms"][0] = "NaN"
    return [extra_top, extra_tool, extra_summary, extra_finding, extra_location, extra_fix, extra_edit,
            extra_probe, extra_parameter, extra_layer, extra_weight_init, extra_recurrent, bad_severity,
            bad_applicability, bad_status, bad_version, zero_row, zero_column, float_row, null_array,
            null_findings, missing_key, missing_layer_field, evidence_not_object, nan_as_string]


@pytest.mark.parametrize("mutate", _mutations(), ids=lambda m: m.__name__)
def test_schema_rejects_invalid_documents(mutate):
    doc = _render_valid(_report(SKIPPED, MLP, RNN))
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(doc)


def test_evidence_is_free_form():
    doc = _render_valid(_report())
    doc["findings"][0]["evidence"] = {"anything": {"goes": [1, "two", None, {"x": True}]}}
    _validator().validate(doc)


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))


def test_real_probe_renders_and_validates():
    model = _tiny_model()
    rec = run_probe(model, lambda: torch.randn(4, 8), probes=1)
    report = Report(probes=(ProbeResult(filename="m.py", status=ProbeStatus.OK, record=rec),), files=1)
    doc = _render_valid(report)
    probe = doc["probes"][0]
    assert probe["status"] == "ok" and probe["model"] == "Sequential" and probe["batches"] == 1
    assert [p["name"] for p in probe["parameters"]] == [n for n, _ in model.named_parameters()]
    assert probe["parameters"][0]["shape"] == [16, 8]
    assert [layer["type"] for layer in probe["layers"]] == ["Linear", "Tanh", "Linear"]
    assert render(report) == render(report)


def test_real_probe_grad_norms_match_plain_autograd():
    """The JSON carries the probe's numbers unrounded: they equal plain autograd to 1e-5."""
    model = _tiny_model()

    def make_inputs():
        return torch.randn(4, 8)

    def loss_fn(output, inputs):
        return (output**2).mean()

    rec = run_probe(model, make_inputs, loss_fn, probes=1, seed=3)
    probe = _render_valid(Report(probes=(ProbeResult("m.py", ProbeStatus.OK, record=rec),)))["probes"][0]

    torch.manual_seed(3)
    loss_fn(model(make_inputs()), None).backward()
    expected = {n: float(p.grad.norm()) for n, p in model.named_parameters()}
    got = {p["name"]: p["grad_norm"] for p in probe["parameters"]}
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-5), name
        assert got[name] == next(p.grad_norm for p in rec.parameters if p.name == name)  # no rounding


def test_symmetry_and_attention_records_validate_and_round_trip():
    from gradcheck_tool.probe.record import ProbeRecord

    rec = dataclasses.replace(examples.symmetric(learning=1), attention=examples.attention(0.7).attention)
    probe = _render_valid(_report(ProbeResult("m.py", ProbeStatus.OK, record=rec)))["probes"][0]
    assert probe["symmetry"] == [{"name": "body.2", "type": "Linear", "units": 64, "distinct_weights": 1,
                                  "learning_units": 1, "constant": True}]
    assert probe["attention"][0]["kind"] == "softmax" and probe["attention"][0]["entropy"] == 0.7
    assert ProbeRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
