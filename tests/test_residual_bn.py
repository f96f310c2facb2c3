"""Residual BatchNorm nets from transformers configs (random init, no downloads): the gradient growth
toward the stem of a ResNet whose branches end at γ = 1 is information with the zero-init / warmup
remedy, gone once γ is zero; MobileNetV2 is clean."""
import pytest
import torch

from gradcheck_tool.findings import Severity
from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.rules import run_rules

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

# ResNet-50's layout (bottleneck, [3, 4, 6, 3]) at a quarter of the width, as benchmarks/zoo_models.py builds it.
RESNET = dict(embedding_size=32, hidden_sizes=[64, 128, 256, 512], depths=[3, 4, 6, 3], layer_type="bottleneck",
              num_labels=10)


def _findings(model):
    torch.manual_seed(0)
    record = run_probe(model, lambda: torch.randn(8, 3, 64, 64), probes=2, seed=0)
    return record, run_rules(record)


def _resnet(zero_gamma: bool):
    torch.manual_seed(0)
    model = transformers.ResNetForImageClassification(transformers.ResNetConfig(**RESNET))
    if zero_gamma:  # torchvision's zero_init_residual=True: the last BatchNorm of every branch at γ = 0
        for stage in model.resnet.encoder.stages:
            for block in stage.layers:
                torch.nn.init.zeros_(block.layer[-1].normalization.weight)
    return model


def test_resnet50_layout_gets_the_residual_batchnorm_story_as_information():
    record, findings = _findings(_resnet(zero_gamma=False))
    assert not [f for f in findings if f.severity.at_least(Severity.WARNING)], [f.message for f in findings]
    (info,) = [f for f in findings if f.code == "GH101"]
    assert info.severity is Severity.INFO and "zero_init_residual" in info.fix.message
    assert len(info.evidence["residual_bn_branches"]) == 16  # 3 + 4 + 6 + 3 bottlenecks
    assert info.evidence["total_decades"] <= -2


def test_resnet50_layout_with_zero_init_residual_is_clean():
    record, findings = _findings(_resnet(zero_gamma=True))
    assert [f for f in findings if f.code.startswith("GH1")] == [], [f.message for f in findings]


def test_mobilenet_v2_is_clean():
    torch.manual_seed(0)
    model = transformers.MobileNetV2ForImageClassification(
        transformers.MobileNetV2Config(depth_multiplier=0.35, num_labels=10))
    _, findings = _findings(model)
    assert not [f for f in findings if f.severity.at_least(Severity.WARNING)], [f.message for f in findings]
