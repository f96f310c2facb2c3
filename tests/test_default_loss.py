"""The probe's default loss (probe/outputs.py): which loss it picks, each checked against the same
loss computed by hand with plain autograd, and the max_norm it quotes against the model's real loss."""
import math
import statistics
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradcheck_tool.probe.engine import run_probe
from gradcheck_tool.probe.outputs import CTC_LOSS, MSE_LOSS, OWN_LOSS, describe_default_loss, target_seed


class MnistNet(nn.Module):
    """pytorch/examples mnist/main.py's Net, as written there (log_softmax output, nll_loss)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


class LstmLM(nn.Module):
    def __init__(self, vocab=50, width=32):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, batch_first=True)
        self.out = nn.Linear(width, vocab)

    def forward(self, tokens):
        out, state = self.lstm(self.embed(tokens))
        return self.out(out), state  # logits first, as word_language_model returns them


class SmallCnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        return self.fc(self.features(x))


class SqueezeHead(nn.Module):
    """torchvision SqueezeNet's classifier: a 1x1 conv per class, ReLU, global average pool, flatten."""

    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU())
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(16, classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class WithOwnLoss(nn.Module):
    """Returns a dict with its own loss when given labels, as a transformers model does."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 4)

    def forward(self, x, labels=None):
        logits = self.lin(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels) * 3.0  # not what the CE default would give
        return out


def _labels(shape, classes, seed):
    return torch.randint(0, classes, shape, generator=torch.Generator().manual_seed(target_seed(seed)))


def _ce(output, seed):
    logits = output[0] if isinstance(output, tuple) else output
    labels = _labels(logits.shape[:-1], logits.shape[-1], seed)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def _mse(output, seed):
    target = torch.randn(output.shape, generator=torch.Generator().manual_seed(target_seed(seed)))
    return (output - target).pow(2).mean()


def _own(output, seed):
    return output["loss"]


def _cases():
    torch.manual_seed(0)
    yield "ce-mlp-head", nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), \
        lambda: torch.randn(5, 8), _ce, "cross-entropy of logits [5, 3]"
    yield "ce-log-softmax", MnistNet(), lambda: torch.randn(4, 1, 28, 28), _ce, "cross-entropy of logits [4, 10]"
    yield "ce-lstm-lm-tuple", LstmLM(), lambda: torch.randint(0, 50, (3, 7)), _ce, \
        "cross-entropy of logits [3, 7, 50]"
    yield "ce-conv-classifier", SqueezeHead(), lambda: torch.randn(4, 3, 12, 12), _ce, "cross-entropy of logits [4, 10]"
    yield "mse-pooled-features", nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                               nn.AdaptiveAvgPool2d(1), nn.Flatten()), \
        lambda: torch.randn(4, 3, 12, 12), _mse, MSE_LOSS
    yield "mse-conv-output", nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)), \
        lambda: torch.randn(2, 3, 8, 8), _mse, MSE_LOSS
    yield "mse-regression", nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1)), \
        lambda: torch.randn(7, 6), _mse, MSE_LOSS
    yield "mse-activation-after-head", nn.Sequential(nn.Linear(6, 5), nn.Sigmoid()), \
        lambda: torch.randn(7, 6), _mse, MSE_LOSS
    yield "own-loss", WithOwnLoss(), lambda: {"x": torch.randn(6, 8), "labels": torch.randint(0, 4, (6,))}, \
        _own, OWN_LOSS


@pytest.mark.parametrize("name,model,make,oracle,described", list(_cases()),
                         ids=lambda x: x if isinstance(x, str) and "-" in x else "")
def test_default_loss_grad_norms_equal_the_documented_loss_by_hand(name, model, make, oracle, described):
    record = run_probe(model, make, probes=1, seed=7)
    assert record.loss.startswith("default: ") and described in record.loss
    torch.manual_seed(7)
    inputs = make()
    model.train()
    output = model(**inputs) if isinstance(inputs, dict) else model(inputs)
    oracle(output, 7).backward()
    for stats in record.parameters:
        expected = dict(model.named_parameters())[stats.name].grad.norm().item()
        assert stats.grad_norm == pytest.approx(expected, rel=1e-5, abs=1e-12), stats.name
    assert record.recommended_max_norm is not None  # quoted from a task-shaped loss


def test_labels_and_targets_are_independent_of_the_inputs_drawn_with_the_batch_seed():
    """The probe seeds the global RNG with the batch seed before example_inputs(): labels drawn
    with that seed again would equal random token inputs (an identity task)."""
    record = run_probe(LstmLM(), lambda: torch.randint(0, 50, (4, 9)), probes=1, seed=3)
    torch.manual_seed(3)
    tokens = torch.randint(0, 50, (4, 9))
    assert "cross-entropy" in record.loss
    assert not torch.equal(_labels((4, 9), 50, 3), tokens)
    assert target_seed(3) != 3


def test_a_flatten_that_folds_another_axis_into_the_last_is_not_logits():
    head = nn.Linear(8, 5)
    assert describe_default_loss(head(torch.randn(4, 3, 8)).flatten(1)) == MSE_LOSS
    assert "cross-entropy of logits [12, 5]" in describe_default_loss(head(torch.randn(4, 3, 8)).reshape(12, 5))


def _real_median(model, make, loss, batches=9, seed=100):
    norms = []
    for b in range(batches):
        torch.manual_seed(seed + b)
        x, y = make()
        model.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        norms.append(math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters() if p.grad is not None)))
    model.zero_grad(set_to_none=True)
    return statistics.median(norms)


def _mnist_like(batch):
    def make():  # MNIST's normalisation of mostly-black images with bright strokes
        pixels = (torch.rand(batch, 1, 28, 28) < 0.19).float() * torch.rand(batch, 1, 28, 28)
        return (pixels - 0.1307) / 0.3081, torch.randint(0, 10, (batch,))
    return make


@pytest.mark.slow
@pytest.mark.parametrize("name,build,make,loss", [
    ("mnist-b8", MnistNet, _mnist_like(8), F.nll_loss),
    ("mnist-b64", MnistNet, _mnist_like(64), F.nll_loss),
    ("lstm-lm", LstmLM, lambda: (torch.randint(0, 50, (8, 20)), torch.randint(0, 50, (8, 20))),
     lambda out, y: F.cross_entropy(out[0].reshape(-1, 50), y.reshape(-1))),
    ("small-cnn", SmallCnn, lambda: (torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))), F.cross_entropy),
    ("squeeze-head", SqueezeHead, lambda: (torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))), F.cross_entropy),
], ids=lambda x: x if isinstance(x, str) else "")
def test_quoted_max_norm_matches_the_real_loss_gradient_norm(name, build, make, loss):
    """The default loss sees what training sees: the probe's median gradient norm (3 batches, no
    loss_fn) is within 1.5x of the median real-loss norm over 9 batches (plain autograd, the
    model's real loss and labels), and the quoted max_norm, twice the probe's median by design,
    sits between 1x and 3x of it.  The unit cotangent quoted 35 on the MNIST net, whose real norm
    is a few units."""
    torch.manual_seed(0)
    model = build()
    record = run_probe(model, lambda: make()[0], probes=3, seed=0)
    real = _real_median(model, make, loss)
    probe_median = statistics.median(record.total_grad_norms)
    print(f"{name}: probe median {probe_median:.3g}, real median {real:.3g}, max_norm {record.recommended_max_norm}")
    assert 1 / 1.5 <= probe_median / real <= 1.5, (probe_median, real)
    assert 1.0 <= record.recommended_max_norm / real <= 3.0, (record.recommended_max_norm, real)


@pytest.mark.slow
@pytest.mark.parametrize("cls", ["BertForMaskedLM", "BertForSequenceClassification"])
def test_on_a_transformers_model_the_default_is_its_own_labels_loss(cls):
    """Without labels in the inputs, cross-entropy on the logits against random labels is exactly
    what the model's own ``labels`` loss computes with those labels: same gradients, to 1e-5."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, num_labels=3)
    torch.manual_seed(0)
    model = getattr(transformers, cls)(config)
    make = lambda: {"input_ids": torch.randint(0, 100, (4, 10))}  # noqa: E731
    record = run_probe(model, make, probes=1, seed=5)
    assert "cross-entropy of logits" in record.loss
    torch.manual_seed(5)
    inputs = make()
    classes = 100 if cls.endswith("MaskedLM") else 3
    shape = (4, 10) if cls.endswith("MaskedLM") else (4,)
    model(**inputs, labels=_labels(shape, classes, 5)).loss.backward()
    for stats in record.parameters:
        grad = dict(model.named_parameters())[stats.name].grad
        if grad is not None:
            assert stats.grad_norm == pytest.approx(grad.norm().item(), rel=1e-5, abs=1e-12), stats.name


class FrameClassifier(nn.Module):
    """Per-frame logits [batch, frames, classes] with a transformers-style config: a CTC head."""

    def __init__(self, reduction, blank=0):
        super().__init__()
        self.config = types.SimpleNamespace(ctc_loss_reduction=reduction, pad_token_id=blank, ctc_zero_infinity=False)
        self.rnn = nn.GRU(6, 16, batch_first=True)
        self.head = nn.Linear(16, 12)

    def forward(self, x):
        return {"logits": self.head(self.rnn(x)[0])}


def _transcripts(batch, frames, classes, blank, seed):
    length = max(1, frames // 3)
    labels = torch.randint(0, classes - 1, (batch, length), generator=torch.Generator().manual_seed(target_seed(seed)))
    return labels + (labels >= blank).long(), length


@pytest.mark.parametrize("reduction,blank", [("sum", 0), ("mean", 0), ("mean", 11)])
def test_a_ctc_model_gets_its_configured_ctc_loss_not_frame_cross_entropy(reduction, blank):
    torch.manual_seed(0)
    model = FrameClassifier(reduction, blank)
    make = lambda: torch.randn(3, 30, 6)  # noqa: E731
    record = run_probe(model, make, probes=1, seed=4)
    assert record.loss.startswith(CTC_LOSS) and f"({reduction}," in record.loss and "of 10 tokens" in record.loss
    torch.manual_seed(4)
    logits = model(make())["logits"]
    labels, length = _transcripts(3, 30, 12, blank, 4)
    F.ctc_loss(F.log_softmax(logits, -1).transpose(0, 1), labels, torch.full((3,), 30), torch.full((3,), length),
               blank=blank, reduction=reduction).backward()
    for stats in record.parameters:
        expected = dict(model.named_parameters())[stats.name].grad.norm().item()
        assert stats.grad_norm == pytest.approx(expected, rel=1e-5, abs=1e-12), stats.name
    # Without a CTC config the same logits are a frame classifier's: cross-entropy.
    del model.config
    assert "cross-entropy of logits [3, 30, 12]" in run_probe(model, make, probes=1, seed=4).loss


@pytest.mark.slow
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_on_a_transformers_ctc_model_the_default_is_its_own_ctc_labels_loss(reduction):
    """Wav2Vec2ForCTC without labels: the gradients of its own ``labels`` loss with the probe's
    transcripts (transformers computes the frame lengths and the loss itself), to 1e-5."""
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2Config(
        conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_feat_extract_layers=3,
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=20, mask_time_prob=0.0,
        ctc_loss_reduction=reduction)
    torch.manual_seed(0)
    model = transformers.Wav2Vec2ForCTC(config)
    make = lambda: {"input_values": torch.randn(2, 4000)}  # noqa: E731
    record = run_probe(model, make, probes=1, seed=6)
    torch.manual_seed(6)
    inputs = make()
    frames = model(**inputs).logits.shape[1]
    assert record.loss.startswith(CTC_LOSS) and f"of {frames // 3} tokens" in record.loss
    model.zero_grad()
    torch.manual_seed(6)
    inputs = make()
    labels, _ = _transcripts(2, frames, 20, config.pad_token_id, 6)
    model(**inputs, labels=labels).loss.backward()
    compared = 0
    for stats in record.parameters:
        grad = dict(model.named_parameters())[stats.name].grad
        if grad is not None:
            assert stats.grad_norm == pytest.approx(grad.norm().item(), rel=1e-4, abs=1e-10), stats.name
            compared += 1
    assert compared > 10
