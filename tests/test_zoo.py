"""The calibration zoo's in-suite subset (benchmarks/zoo.py runs the whole zoo).

Real architectures from transformers configs at their library's default init (no downloads): a
model the field trains every day from that init gets no warning or error (info is allowed), and
the known true positives (DeiT, MobileViT, EfficientNet) are found, each in the right direction.  Most run in-process through
``gradcheck_tool.scan`` (the CLI's default options: 3 probes, seed 0, no optimizer); a few go
through the real CLI, ``python -m gradcheck_tool scan DIR --format json``, in one call
(``benchmarks/cli_scan.py``, the benchmarks' runner).

Each false alarm the rules raised here before issue 9's part 2 (GH112 on optional parameters,
GH102 on encoder-decoder steps, GH101 on RWKV's embeddings and ResNet-50's residual growth, GH120
on BatchNorm'd convolutions) is a failure now.
"""
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import cli_scan  # noqa: E402
import zoo  # noqa: E402
from zoo_models import KNOWN_TRUE_POSITIVES, SPECS  # noqa: E402

from gradcheck_tool import scan  # noqa: E402

pytestmark = pytest.mark.slow

SUBSET = [
    "gpt2", "llama", "bert", "roberta", "xlnet", "fnet", "t5", "bart", "whisper", "wav2vec2", "rwkv",
    "resnet-50", "mobilenet-v2", "regnet-y", "efficientnet", "convnext", "vit", "swin", "dinov2",
    "lstm-lm", "optional-heads", "deit", "mobilevit",
]
THROUGH_CLI = ["bert", "lstm-lm", "optional-heads"]
# The true positives' expected finding: (code, what its module must name).
TRUE_POSITIVE = {"deit": ("GH101", "embeddings"), "mobilevit": ("GH106", ""), "efficientnet": ("GH106", "")}


def _judge(name, findings):
    """findings: (code, severity, module, message) tuples, runtime rules only."""
    alarms = [f for f in findings if f[1] in ("warning", "error")]
    if name in KNOWN_TRUE_POSITIVES:
        code, where = TRUE_POSITIVE[name]
        assert any(f[0] == code and where in (f[2] or "") for f in alarms), \
            f"{name}: the true positive ({KNOWN_TRUE_POSITIVES[name]}) expected as {code} at *{where}*: {findings}"
    else:
        assert not alarms, f"{name} at its default init: false alarm(s) {alarms}"


@pytest.mark.parametrize("name", [n for n in SUBSET if n not in THROUGH_CLI])
def test_zoo_model_in_process(name):
    spec = SPECS[name]
    torch.manual_seed(0)
    model = spec.build()
    report = scan(model, spec.inputs, probes=3, seed=0)
    findings = [(f.code, f.severity.value, f.module, f.message) for f in report.findings if f.code.startswith("GH1")]
    _judge(name, findings)


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    directory = tmp_path_factory.mktemp("zoo")
    for name in THROUGH_CLI:
        zoo.write_model_file(directory, name, "default")
    done = cli_scan.scan_json(str(directory), cwd=directory, timeout=600)
    assert done.code in (0, 1) and done.report is not None, done.stderr
    return done.report


@pytest.mark.parametrize("name", THROUGH_CLI)
def test_zoo_model_through_the_cli(name, cli_results):
    filename = f"zoo_{name.replace('-', '_')}_default.py"
    (probe,) = [p for p in cli_results["probes"] if p["filename"].endswith(filename)]
    assert probe["status"] == "ok", probe["reason"]
    assert probe["loss"].startswith("default: cross-entropy")  # logits-shaped outputs, all three
    findings = [(f["code"], f["severity"], f["module"], f["message"]) for f in cli_results["findings"]
                if f["filename"].endswith(filename) and f["code"].startswith("GH1")]
    _judge(name, findings)
