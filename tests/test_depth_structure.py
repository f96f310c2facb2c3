"""Depth trends over the model's structure, as torchvision names it (found by the zoo's torchvision arm).

torchvision numbers its ResNet stages by name (``layer1`` ... ``layer4``), not by index: fitted as
four stacks, ResNet-152's residual BatchNorm growth (3.5 decades over 50 blocks) was no trend in
any of them, and reached the rule as a "peak" at the stem with DeiT's story (a zero row into a
normalisation).  The stages are one stack now, and a peak must be a jump over the layers after it.
Synthetic records here; real models of our own (torchvision's layout, no torchvision) below.
"""
import dataclasses

import pytest
import torch
from torch import nn

from gradcheck_tool.findings import Severity
from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.rules import examples, run_rules
from gradcheck_tool.rules.signals import numbered_stages, stack_key, stacks


def _renamed(record, name_of):
    """``record`` with each ``blocks.<i>.<rest>`` layer (and its parameters) renamed by ``name_of(i, rest)``."""
    def rename(name):
        _, i, rest = name.split(".", 2)
        return name_of(int(i), rest)

    layers = tuple(dataclasses.replace(l, name=rename(l.name), params=tuple(rename(p) for p in l.params))
                   for l in record.layers)
    params = tuple(dataclasses.replace(p, name=rename(p.name), module=rename(p.module)) for p in record.parameters)
    return dataclasses.replace(record, layers=layers, parameters=params)


def _torchvision_resnet(**kw):
    """examples.residual_bn's 16 blocks in four stages named as torchvision does: layer1.0 ... layer4.3."""
    return _renamed(examples.residual_bn(**kw), lambda i, rest: f"layer{i // 4 + 1}.{i % 4}.{rest}")


def test_stages_numbered_by_name_are_one_stack():
    names = ["conv1", "bn1", "layer1.0.conv1", "layer2.0.conv1", "layer3.1.bn2", "layer4.2.conv3", "fc",
             "trunk_output.block1.block1-0.f.a.0", "trunk_output.block2.block2-0.f.a.0",
             "trunk_output.block3.block3-0.f.a.0", "fc1", "fc2", "fc3",  # leaves: a hand-written MLP
             "AuxLogits.conv0.conv", "AuxLogits.conv1.conv"]  # a pair is no series of stages
    stages = frozenset(numbered_stages(names))
    assert stages == {"layer1", "layer2", "layer3", "layer4", "trunk_output.block1", "trunk_output.block2",
                      "trunk_output.block3"}
    assert {stack_key(n, stages) for n in names[2:6]} == {"layer*"}
    assert stack_key("trunk_output.block2.block2-0.f.a.0", stages) == "trunk_output.block*"
    assert [stack_key(n, stages) for n in ("conv1", "fc", "fc1", "AuxLogits.conv0.conv")] == [None] * 4
    assert stack_key("model.encoder.layers.3.fc1", stages) == "model.encoder.layers"

    record = _torchvision_resnet()
    assert [len(s) for s in stacks(record)] == [48]


def test_residual_growth_across_named_stages_gets_the_residual_story():
    # 1.4x per block: 0.58 decades in each stage, 2.2 over the 16 blocks.
    findings = [f for f in run_rules(_torchvision_resnet()) if f.code == "GH101"]
    assert [(f.severity, f.module) for f in findings] == [(Severity.INFO, "layer1.0.conv")]
    assert "zero_init_residual" in findings[0].fix.message


def _with_stem(record, stem_grad, after_grad=None):
    """A stem layer before ``record``'s layers whose output gradient is ``stem_grad`` x the output's
    (and large activations, so its grad x activation product stands out too); ``after_grad``
    replaces the gradient of every later layer."""
    first = record.layers[0]
    stem = dataclasses.replace(first, name="stem", order=-1, out_rms=10.0, grad_norm=stem_grad, residual_sum=None,
                               params=())
    layers = record.layers if after_grad is None else tuple(
        dataclasses.replace(l, grad_norm=after_grad) for l in record.layers)
    return dataclasses.replace(record, layers=(stem, *layers))


def _stacks_apart(record):
    """The blocks in four stacks whose names are no numbered series: no trend in any."""
    return _renamed(record, lambda i, rest: f"stage_{'abcd'[i // 4]}.{i % 4}.{rest}")


def test_a_growth_spread_over_the_blocks_is_no_peak():
    record = _with_stem(_stacks_apart(examples.residual_bn()), stem_grad=5000.0)  # blocks after it: ~100
    assert [f for f in run_rules(record) if f.code == "GH101"] == []


def test_a_jump_over_the_next_layers_is_still_a_peak():
    record = _with_stem(_stacks_apart(examples.residual_bn()), stem_grad=5000.0, after_grad=1.0)
    (finding,) = [f for f in run_rules(record) if f.code == "GH101"]
    assert finding.severity is Severity.ERROR and finding.module == "stem"


# Real models of our own, torchvision's layout and names (torchvision is not a test dependency).

class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class NamedStageResNet(nn.Module):
    """torchvision's ResNet: stem ``conv1``/``bn1``, stages ``layer1`` ... ``layer4`` of bottlenecks,
    He fan-out init, BatchNorm γ = 1 (``zero_init_residual``: the last γ of each branch 0), ``fc``."""

    def __init__(self, depths, width=8, zero_init_residual=False):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        cin = width
        for i, depth in enumerate(depths):
            blocks = []
            for j in range(depth):
                blocks.append(Bottleneck(cin, width * 2**i, 2 if j == 0 and i > 0 else 1))
                cin = width * 2**i * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(cin, 10)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if zero_init_residual and isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def _scan(model):
    torch.manual_seed(0)
    record = run_probe(model, lambda: torch.randn(8, 3, 32, 32), probes=2, seed=0)
    return [f for f in run_rules(record) if f.code.startswith("GH1")]


RESNET50 = (3, 4, 6, 3)  # ResNet-50's layout at width 8: 2.2 decades toward the stem (ResNet-152's: 3.2)


@pytest.mark.slow
def test_resnet_named_as_torchvision_gets_the_residual_story_and_zero_init_is_clean():
    torch.manual_seed(0)
    findings = _scan(NamedStageResNet(RESNET50))
    assert not [f for f in findings if f.severity.at_least(Severity.WARNING)], [f.message for f in findings]
    (info,) = [f for f in findings if f.code == "GH101"]
    assert info.evidence["residual_bn_branches"] and "zero_init_residual" in info.fix.message
    torch.manual_seed(0)
    assert _scan(NamedStageResNet(RESNET50, zero_init_residual=True)) == []


class ZeroTokenEncoder(nn.Module):
    """DeiT's trap: a class token and position embeddings at zero, then pre-LN blocks whose
    LayerNorm has eps 1e-12: the class token's row enters the first LayerNorm all zero."""

    def __init__(self, width=32, depth=4):
        super().__init__()
        self.patch = nn.Linear(48, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.zeros(1, 17, width))
        self.dropout = nn.Dropout(0.0)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "norm1": nn.LayerNorm(width, eps=1e-12), "attn": nn.MultiheadAttention(width, 4, batch_first=True),
            "norm2": nn.LayerNorm(width, eps=1e-12), "fc1": nn.Linear(width, 4 * width), "act": nn.GELU(),
            "fc2": nn.Linear(4 * width, width)}) for _ in range(depth))
        self.head = nn.Linear(width, 10)

    def forward(self, patches):
        x = self.patch(patches)
        x = self.dropout(torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.position)
        for b in self.blocks:
            h = b["norm1"](x)
            x = x + b["attn"](h, h, h, need_weights=False)[0]
            x = x + b["fc2"](b["act"](b["fc1"](b["norm2"](x))))
        return self.head(x[:, 0])


def test_zero_token_into_layernorm_is_still_found_at_the_embeddings():
    torch.manual_seed(0)
    record = run_probe(ZeroTokenEncoder(), lambda: torch.randn(8, 16, 48), probes=2, seed=0)
    errors = [f for f in run_rules(record) if f.code == "GH101" and f.severity is Severity.ERROR]
    assert [f.module for f in errors] == ["dropout"], [f.message for f in run_rules(record)]
    assert "LayerNorm" in errors[0].message
