"""What the probe records about normalisation, residual branches and parameter use, against the model's own structure."""
import torch
from torch import nn

from gradcheck_tool import inputs as probe_inputs
from gradcheck_tool.probe import kinds
from gradcheck_tool.probe.engine import run_probe


def test_activation_kinds_are_matched_exactly():
    assert kinds.activation_family(nn.GELU()) == "gelu"  # "ELU" is inside "GELU"
    assert kinds.activation_family(nn.ELU()) == "elu"
    assert kinds.activation_family(nn.SELU()) == "selu"
    assert kinds.activation_family(nn.LeakyReLU()) == "leaky_relu"
    assert kinds.activation_family(nn.Hardsigmoid()) == "sigmoid"

    class NewGELUActivation(nn.Module):  # a library's own class: matched by its longest token
        pass

    assert kinds.activation_family(NewGELUActivation()) == "gelu"


def test_normalisation_kinds_include_library_classes():
    class LlamaRMSNorm(nn.Module):
        pass

    class T5LayerNorm(nn.Module):
        pass

    assert [kinds.normalisation(m) for m in (nn.BatchNorm2d(3), nn.LayerNorm(3), nn.GroupNorm(1, 3),
                                              LlamaRMSNorm(), T5LayerNorm(), nn.Linear(2, 2))] == \
        ["batch", "layer", "group", "rms", "layer", None]


class Block(nn.Module):
    def __init__(self, zero_gamma=False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.out = nn.Identity()  # as transformers' conv layers end: invisible to autograd
        if zero_gamma:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x):
        h = self.out(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        h += x
        return torch.relu(h)


def test_residual_sums_name_the_last_norm_of_each_branch():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Block(), Block(zero_gamma=True), nn.Flatten(), nn.Linear(64, 2))
    record = run_probe(model, lambda: torch.randn(4, 3, 4, 4), probes=1)
    ends = {layer.name: layer.residual_sum for layer in record.layers if layer.residual_sum is not None}
    assert set(ends) == {"1.bn2", "2.bn2"} and len(set(ends.values())) == 2
    by_name = {layer.name: layer for layer in record.layers}
    assert by_name["1.conv1"].normalised and by_name["1.conv2"].normalised
    assert by_name["1.bn1"].normalisation == "batch" and not by_name["4"].normalised
    assert by_name["0"].normalised is False  # Conv2d then Block's conv1: a weight layer first


def test_parameters_the_forward_consumed_are_told_from_unused_ones():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.detached, self.stopped, self.pooler, self.unused, self.numpy = (
                nn.Linear(4, 4) for _ in range(6))

        def forward(self, x):
            h = self.fc(x)
            with torch.no_grad():
                g = self.stopped(h)
            self.pooler(h)  # computed, then dropped: nothing it makes reaches the loss
            n = torch.as_tensor(self.numpy(h).detach().numpy())  # a numpy round trip
            return h + self.detached(h).detach() + g + n + self.fc.weight.data.sum()

    record = run_probe(Net(), lambda: torch.randn(3, 4), probes=2)
    use = {p.name: p.use for p in record.parameters if p.name.endswith(".weight")}
    assert use == {"fc.weight": "cut",  # fc.weight.data: that op is cut, though fc's other use trains it
                   "detached.weight": "cut", "stopped.weight": "cut", "pooler.weight": "used",
                   "unused.weight": "unused", "numpy.weight": "cut"}
    assert {p.name.partition(".")[0] for p in record.parameters if p.grad_norm is None} == {
        "detached", "stopped", "pooler", "unused", "numpy"}


def test_inferred_inputs_give_batchnorm_a_usable_batch():
    with_bn = nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6))
    make, text = probe_inputs.infer(with_bn, torch.device("cpu"))
    assert make().shape == (probe_inputs.BN_BATCH, 6) and "BatchNorm" in text
    make, text = probe_inputs.infer(nn.Sequential(nn.Linear(6, 6)), torch.device("cpu"))
    assert make().shape == (probe_inputs.BATCH, 6) and "BatchNorm" not in text
