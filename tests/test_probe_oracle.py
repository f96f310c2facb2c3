"""Every number the probe reports, checked against plain autograd on small models."""
import math

import pytest
import torch
from torch import nn

from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.probe.outputs import default_loss, target_seed


def mse(output, inputs):
    return output.pow(2).mean()


def _models():
    torch.manual_seed(0)
    yield "mlp", nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)), \
        lambda: torch.randn(5, 8)
    yield "cnn", nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Dropout(0.2),
                               nn.Flatten(), nn.Linear(4 * 6 * 6, 2)), lambda: torch.randn(4, 3, 8, 8)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.lstm = nn.LSTM(8, 12, batch_first=True)
            self.out = nn.Linear(12, 20)

        def forward(self, tokens):
            return self.out(self.lstm(self.embed(tokens))[0])

    yield "lm", LM(), lambda: torch.randint(0, 20, (3, 7))


@pytest.mark.parametrize("name,model,make", list(_models()), ids=lambda x: x if isinstance(x, str) else "")
def test_grad_norms_equal_plain_autograd(name, model, make):
    record = run_probe(model, make, mse, probes=1, seed=7)
    torch.manual_seed(7)
    inputs = make()
    model.train()
    mse(model(inputs), inputs).backward()
    for stats in record.parameters:
        expected = dict(model.named_parameters())[stats.name].grad.norm().item()
        assert stats.grad_norm == pytest.approx(expected, rel=1e-5, abs=1e-12), stats.name
    expected_total = math.sqrt(sum(p.grad.norm().item() ** 2 for p in model.parameters()))
    assert record.total_grad_norms[0] == pytest.approx(expected_total, rel=1e-5)


def test_several_batches_average_the_per_batch_norms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))
    make = lambda: torch.randn(6, 4)  # noqa: E731
    record = run_probe(model, make, mse, probes=3, seed=11)
    per_batch = []
    for batch in range(3):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(11 + batch)
        x = make()
        mse(model(x), x).backward()
        per_batch.append(model[0].weight.grad.norm().item())
    model.zero_grad(set_to_none=True)
    stats = next(p for p in record.parameters if p.name == "0.weight")
    assert stats.grad_norms == pytest.approx(per_batch, rel=1e-5)
    assert stats.grad_norm == pytest.approx(sum(per_batch) / 3, rel=1e-5)


def test_layer_activation_rms_and_output_gradients():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 2))
    make = lambda: torch.randn(5, 8)  # noqa: E731
    record = run_probe(model, make, mse, probes=1, seed=3)
    torch.manual_seed(3)
    x = make()
    outs, h = [], x
    for layer in model:
        h = layer(h)
        outs.append(h)
    grads = torch.autograd.grad(mse(h, x), outs)
    for i, layer in enumerate(record.layers):
        assert layer.name == str(i) and layer.order == i
        assert layer.out_rms == pytest.approx(outs[i].pow(2).mean().sqrt().item(), rel=1e-5)
        assert layer.grad_norm == pytest.approx(grads[i].norm().item(), rel=1e-5)
    relu_out = outs[1]
    assert record.layers[1].dead_fraction == pytest.approx(1 - (relu_out > 0).any(0).float().mean().item())
    assert record.layers[1].samples_per_unit == 5


def test_saturated_fraction_counts_units_in_the_tails():
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([5.0, -5.0, 4.0, 0.0, 0.1, -0.2]))  # 3 of 6 units saturated
    record = run_probe(model, lambda: torch.randn(10, 4), probes=2)
    assert record.layers[1].saturated_fraction == pytest.approx(0.5)


def test_dead_units_use_channels_for_convolutions():
    conv = nn.Conv2d(2, 4, 3, padding=1)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([-100.0, -100.0, -100.0, 0.0]))  # 3 of 4 channels never fire
    model = nn.Sequential(conv, nn.ReLU())
    record = run_probe(model, lambda: torch.randn(2, 2, 5, 5), probes=1)
    relu = record.layers[1]
    # The 25 positions of an image are one sample, not 25: two images are two samples.
    assert relu.units == 4 and relu.dead_fraction == pytest.approx(0.75) and relu.samples_per_unit == 2


def test_default_loss_on_a_scalar_output_is_a_unit_cotangent_and_quotes_no_max_norm():
    class Energy(nn.Module):  # returns a scalar: no target shape makes sense for it
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(50, 50)

        def forward(self, x):
            return self.lin(x).pow(2).mean()

    y = torch.randn((), requires_grad=True)
    (grad,) = torch.autograd.grad(default_loss(y, seed=0), y)
    assert grad.item() == torch.randn((), generator=torch.Generator().manual_seed(target_seed(0))).item()  # v/sqrt(1)
    record = run_probe(Energy(), lambda: torch.randn(4, 50), probes=1)
    assert record.output_grad_norm == pytest.approx(abs(grad.item()), rel=1e-6)
    assert record.loss.startswith("default: unit-norm random cotangent") and record.recommended_max_norm is None


def test_recurrent_step_gradients_match_autograd():
    torch.manual_seed(0)
    rnn = nn.GRU(3, 5, batch_first=True)
    x = torch.randn(2, 6, 3)
    record = run_probe(rnn, lambda: x, probes=1, seed=4)
    (stats,) = record.recurrent
    xr = x.clone().requires_grad_(True)
    last = rnn(xr)[0][:, -1]
    v = torch.randn(last.shape, generator=torch.Generator().manual_seed(4))
    (grad,) = torch.autograd.grad((last * v).sum(), xr)
    expected = [grad[:, t].norm().item() for t in reversed(range(6))]
    assert stats.steps == 6 and stats.step_grad_norms == pytest.approx(expected, rel=1e-5)
    w = rnn.weight_hh_l0.detach()
    radius = max(torch.linalg.eigvals(b).abs().max().item() for b in w.split(5))
    assert stats.spectral_radius == pytest.approx(radius, rel=0.05)  # Gelfand estimate, k = 64


def test_nonfinite_forward_is_flagged_not_propagated_as_nan():
    class Log(nn.Module):
        def forward(self, x):
            return torch.log(x)

    model = nn.Sequential(nn.Linear(4, 4), Log(), nn.Linear(4, 2))
    record = run_probe(model, lambda: torch.randn(8, 4), probes=1)
    assert [l.out_nonfinite for l in record.layers] == [False, True, True]
    assert record.layers[1].out_rms is None


def test_record_round_trips_through_json():
    import json

    from gradcheck_tool.probe.record import ProbeRecord

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))
    for record in (run_probe(model, lambda: torch.randn(6, 4), probes=2),
                   run_probe(nn.LSTM(3, 4, batch_first=True), lambda: torch.randn(2, 5, 3), probes=1)):
        again = ProbeRecord.from_dict(json.loads(json.dumps(record.to_dict())))
        assert again == record


def test_output_walk_keeps_no_reference_cycle():
    """The logits must be freed when the caller drops them, without waiting for the cyclic GC."""
    import gc
    import weakref

    from gradcheck_tool.probe.outputs import floating_outputs

    gc.disable()
    try:
        logits = torch.randn(4, 10)
        ref = weakref.ref(logits)
        assert len(floating_outputs({"logits": logits, "aux": (logits, [torch.zeros(1)])})) == 1
        del logits
        assert ref() is None
    finally:
        gc.enable()
