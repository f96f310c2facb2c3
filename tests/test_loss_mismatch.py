"""GH107/GH108 on real modules: what LossWatch records around loss_fn, its gradient shrink against
the analytic values, and that watching changes nothing the user's loss computes."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gradcheck_tool import scan
from gradcheck_tool.probe.engine import run_probe

N, C = 16, 10


def labels(n=N, classes=C):
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(1))


def head(out=C, zero=False):
    layer = nn.Linear(8, out)
    if zero:  # zero logits: p uniform, where the shrink has a closed form
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    return layer


def calls(model, loss_fn, x=None):
    x = torch.randn(N, 8, generator=torch.Generator().manual_seed(0)) if x is None else x
    return run_probe(model, lambda: x, loss_fn, probes=1).loss_calls


class FunctionalSoftmax(nn.Module):
    def __init__(self, zero=False):
        super().__init__()
        self.fc = head(zero=zero)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)


# producer: the module whose output the probabilities are, when that output is still alive at the
# loss (a softmax module's); F.softmax(self.fc(x)) frees fc's output, and GH107 then points at the head.
@pytest.mark.parametrize("model,loss_fn,producer", [
    (nn.Sequential(head(), nn.Softmax(dim=1)), lambda out, x: nn.CrossEntropyLoss()(out, labels()), "1"),
    (FunctionalSoftmax(), lambda out, x: F.cross_entropy(out, labels()), None),
    (nn.Sequential(head()), lambda out, x: F.cross_entropy(out.softmax(-1), labels()), "0"),
    (nn.Sequential(head()), lambda out, x: F.cross_entropy(torch.exp(F.log_softmax(out, 1)), labels()), None),
    (FunctionalSoftmax(), lambda out, x: nn.NLLLoss()(out, labels()), None),
    (nn.Sequential(head(1), nn.Sigmoid()), lambda out, x: nn.BCEWithLogitsLoss()(out.view(-1), labels(classes=2).float()), "1"),
])
def test_probabilities_into_a_logit_loss_are_seen_in_each_idiom(model, loss_fn, producer):
    (call,) = calls(model, loss_fn)
    assert call.squashed_by in ("softmax", "sigmoid") and 0 < call.shrink < 1
    assert call.producer == producer


@pytest.mark.parametrize("model,loss_fn", [
    (nn.Sequential(head(), nn.LogSoftmax(dim=1)), lambda out, x: nn.NLLLoss()(out, labels())),
    (nn.Sequential(head()), lambda out, x: nn.CrossEntropyLoss()(out, labels())),
    (nn.Sequential(head(1), nn.Sigmoid()), lambda out, x: nn.BCELoss()(out.view(-1), labels(classes=2).float())),
    (nn.Sequential(head(1)), lambda out, x: F.binary_cross_entropy_with_logits(out.view(-1), labels(classes=2).float())),
    (nn.Sequential(head(1)), lambda out, x: F.mse_loss(out, torch.randn(N, 1))),
    (nn.Sequential(head(4)), lambda out, x: F.l1_loss(out, torch.zeros(1, 4))),  # a (1, D) target: no larger shape
])
def test_healthy_pairs_are_not_recorded(model, loss_fn):
    assert calls(model, loss_fn) == ()


def test_shrink_of_softmax_into_cross_entropy_is_one_over_c_at_uniform_probabilities():
    # p = 1/C: softmax(p) is uniform too, so dL/dp = (1/C - y)/N and the softmax Jacobian
    # diag(p) - p p^T maps it to (1/C - y)/(C N): exactly 1/C of cross-entropy's (p - y)/N.
    for loss_fn in (lambda out, x: F.cross_entropy(out, labels()), lambda out, x: F.nll_loss(out, labels())):
        (call,) = calls(FunctionalSoftmax(zero=True), loss_fn)
        assert call.shrink == pytest.approx(1 / C, rel=1e-5)


def test_shrink_of_sigmoid_into_bce_with_logits_matches_the_closed_form():
    y = labels(classes=2).float()
    model = nn.Sequential(head(1, zero=True), nn.Sigmoid())
    (call,) = calls(model, lambda out, x: F.binary_cross_entropy_with_logits(out.view(-1), y))
    # z = 0: written sigmoid'(0) (sigmoid(1/2) - y) = (sigmoid(1/2) - y)/4; expected sigmoid(0) - y.
    written = torch.linalg.vector_norm((torch.sigmoid(torch.tensor(0.5)) - y) / 4)
    expected = torch.linalg.vector_norm(0.5 - y)
    assert call.shrink == pytest.approx(float(written / expected), rel=1e-5)


def test_broadcast_target_is_recorded_with_its_joint_shape():
    (call,) = calls(nn.Sequential(head(1)), lambda out, x: nn.MSELoss()(out, torch.randn(N)))
    assert (call.function, call.input_shape, call.target_shape, call.broadcast) == ("mse_loss", (N, 1), (N,), (N, N))
    for fn in (F.l1_loss, F.smooth_l1_loss, F.huber_loss):
        (call,) = calls(nn.Sequential(head(1)), lambda out, x: fn(torch.randn(N), out))
        assert call.broadcast == (N, N)


def test_watching_changes_neither_the_loss_nor_the_gradients():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), head_in := nn.Linear(32, C), nn.Softmax(dim=1))
    x = torch.randn(N, 8)
    loss_fn = lambda out, inputs: F.cross_entropy(out, labels())  # noqa: E731
    record = run_probe(model, lambda: x, loss_fn, probes=1)
    loss_fn(model(x), x).backward()
    for p in record.parameters:
        expected = dict(model.named_parameters())[p.name].grad
        assert p.grad_norm == pytest.approx(float(expected.norm()), rel=1e-5)
    assert head_in.weight.grad is not None


def test_a_raising_loss_fn_raises_as_without_the_watch():
    def loss_fn(out, x):
        raise ValueError("user bug")

    with pytest.raises(ValueError, match="user bug"):
        run_probe(nn.Sequential(head()), lambda: torch.randn(N, 8), loss_fn, probes=1)


def test_scan_reports_the_rules_with_their_numbers():
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 100), nn.Softmax(dim=1))
    y = torch.randint(0, 100, (N,))
    report = scan(model, torch.randn(N, 8), lambda out, x: F.cross_entropy(out, y), probes=1, select=["GH107"])
    (finding,) = report.findings
    assert finding.code == "GH107" and finding.severity.value == "error" and finding.module == "3"
    assert finding.evidence["gradient_shrink"] > 10 and "log(1 + 99/e)" in finding.message
    assert f"{math.log(1 + 99 / math.e):.3g}" in finding.message
    regression = scan(nn.Linear(8, 1), torch.randn(N, 8), lambda out, x: F.mse_loss(out, torch.zeros(N)), probes=1,
                      select=["GH108"])
    assert [f.code for f in regression.findings] == ["GH108"]
    # The probe's own default loss is never judged.
    assert scan(model, torch.randn(N, 8), probes=1, select=["GH107", "GH108"]).findings == ()
