"""The calibration zoo's models: real architectures at realistic small sizes, library default init.

Every transformers model is built by calling its class on a config (``Cls(config)``), so
``post_init()`` / ``_init_weights`` run exactly as in real use; nothing is downloaded.  Sizes
are small (2-4 layers, width 64-256, vocab 1000, 32-64 px images, short audio) so one scan is
seconds on a CPU; depth-defining layouts are kept where depth is the point (ResNet-50's
bottleneck [3, 4, 6, 3]).

Each ``Spec`` gives ``build()`` (the model), ``inputs()`` (the batch, no labels: what the probe's
default loss sees) and ``task_inputs()`` + ``task_loss(output, inputs)`` (the realistic task loss:
the model's own ``labels`` loss, or cross-entropy / CTC / MSE by hand where it has none).
``KNOWN_TRUE_POSITIVES`` are the models whose default init really is broken (issue 9): a warning
or error on any other model at default init is a false alarm.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

VOCAB = 1000
BATCH = 4
SEQ = 32
IMAGE_BATCH = 8
KNOWN_TRUE_POSITIVES = {
    "deit": "HF DeiT zeroes cls/distillation/position embeddings; LayerNorm (eps 1e-12) of an all-zero row has gain ~1e6",
    "mobilevit": "HF MobileViT draws BatchNorm gamma from N(0, 0.02): activations collapse",
    # Found by this zoo, the DeiT mechanism: BEiT's cls_token is left at zeros and, without absolute
    # position embeddings (the config's default), its row enters a LayerNorm with eps 1e-12 all-zero.
    # HF EfficientNet's _init_weights draws BatchNorm2d weights from N(0, initializer_range=0.02),
    # MobileViT's mechanism: every BN scales its output by ~0.02 at init.
    "efficientnet": "HF EfficientNet draws BatchNorm gamma from N(0, 0.02), as MobileViT: activations collapse",
    "beit": "HF BEiT leaves cls_token at zeros and has no absolute position embeddings by default: "
            "an all-zero row into LayerNorm eps 1e-12 (gain ~1e6), as DeiT",
}


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    family: str  # text-decoder, text-encoder, seq2seq, vision-cnn, vision-transformer, speech, ssm-rnn, custom,
    # torchvision (zoo_torchvision.py, where torchvision imports)
    build: Callable[[], nn.Module]
    inputs: Callable[[], Any]
    task_inputs: Callable[[], Any]
    task_loss: Callable[[Any, Any], torch.Tensor]
    note: str = ""


def _hf(cls_name: str, config_name: str, **config) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers

        cfg = getattr(transformers, config_name)(**config)
        return getattr(transformers, cls_name)(cfg)

    return build


def _tokens(vocab: int = VOCAB, batch: int = BATCH, seq: int = SEQ) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, seq))


def _own_loss(output: Any, inputs: Any) -> torch.Tensor:
    return output["loss"]


def _with_labels(make: Callable[[], dict], labels: Callable[[dict], torch.Tensor]) -> Callable[[], dict]:
    def task() -> dict:
        batch = make()
        return dict(batch, labels=labels(batch))

    return task


def _lm(name: str, family: str, cls_name: str, config_name: str, note: str = "", **config) -> Spec:
    make = lambda: {"input_ids": _tokens()}  # noqa: E731
    return Spec(name, family, _hf(cls_name, config_name, **config), make,
                _with_labels(make, lambda b: b["input_ids"].clone()), _own_loss, note)


def _seq2seq(name: str, cls_name: str, config_name: str, **config) -> Spec:
    make = lambda: {"input_ids": _tokens(), "decoder_input_ids": _tokens(seq=SEQ // 2)}  # noqa: E731
    return Spec(name, "seq2seq", _hf(cls_name, config_name, **config), make,
                _with_labels(make, lambda b: _tokens(seq=SEQ // 2)), _own_loss)


def _vision(name: str, family: str, cls_name: str, config_name: str, size: int = 64, note: str = "", **config) -> Spec:
    labels = config.setdefault("num_labels", 10)
    make = lambda: {"pixel_values": torch.randn(IMAGE_BATCH, 3, size, size)}  # noqa: E731
    return Spec(name, family, _hf(cls_name, config_name, **config), make,
                _with_labels(make, lambda b: torch.randint(0, labels, (IMAGE_BATCH,))), _own_loss, note)


def _ctc(name: str, cls_name: str, config_name: str) -> Spec:
    conv = dict(conv_dim=(64, 64, 64, 64, 64), conv_stride=(5, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 2),
                num_feat_extract_layers=5, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=256, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                vocab_size=32, mask_time_prob=0.0)
    make = lambda: {"input_values": torch.randn(BATCH, 8000)}  # noqa: E731 - 0.5 s of 16 kHz audio
    return Spec(name, "speech", _hf(cls_name, config_name, **conv), make,
                _with_labels(make, lambda b: torch.randint(1, 32, (BATCH, 12))), _own_loss)


def _mel(batch: int, bins: int, frames: int, time_last: bool) -> torch.Tensor:
    return torch.randn(batch, bins, frames) if time_last else torch.randn(batch, frames, bins)


class LSTMLanguageModel(nn.Module):
    """The pytorch/examples word_language_model shape: embedding, 2-layer LSTM, tied-size decoder."""

    def __init__(self, vocab: int = VOCAB, width: int = 128, layers: int = 2):
        super().__init__()
        self.encoder = nn.Embedding(vocab, width)
        self.rnn = nn.LSTM(width, width, layers, batch_first=True, dropout=0.2)
        self.drop = nn.Dropout(0.2)
        self.decoder = nn.Linear(width, vocab)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)  # as the example does
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.drop(self.encoder(tokens)))
        return self.decoder(self.drop(out))


class OptionalHeadClassifier(nn.Module):
    """A CNN classifier with an auxiliary head and a mask token used only in another mode
    (pre-training); this forward never touches them, as FNet's pooler or DINOv2's mask_token."""

    def __init__(self, classes: int = 10, pretraining: bool = False):
        super().__init__()
        self.pretraining = pretraining
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(64, classes)
        self.aux_head = nn.Linear(64, 128)  # pre-training only
        self.mask_token = nn.Parameter(torch.zeros(1, 3, 1, 1))  # pre-training only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pretraining:
            x = x + self.mask_token
            return self.aux_head(self.features(x))
        return self.head(self.features(x))


def _custom(name: str, cls: type, make: Callable[[], Any], classes: int, note: str) -> Spec:
    def loss(output: torch.Tensor, inputs: Any) -> torch.Tensor:
        # Labels from the global RNG, which the probe seeds per batch: a fresh random batch of labels.
        labels = torch.randint(0, classes, output.shape[:-1])
        return F.cross_entropy(output.reshape(-1, classes), labels.reshape(-1))

    return Spec(name, "custom", cls, make, make, loss, note)


_TEXT = dict(vocab_size=VOCAB)
_DEC = dict(_TEXT, hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512,
            max_position_embeddings=128)
_ENC = dict(_DEC, type_vocab_size=2)
_S2S = dict(vocab_size=VOCAB, d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=512, decoder_ffn_dim=512, max_position_embeddings=128,
            pad_token_id=1, decoder_start_token_id=2)

SPECS: dict[str, Spec] = {s.name: s for s in [
    # text decoders (Pre-LN / RMSNorm residual streams)
    _lm("gpt2", "text-decoder", "GPT2LMHeadModel", "GPT2Config", vocab_size=VOCAB, n_embd=128, n_layer=4, bos_token_id=0, eos_token_id=0,
        n_head=4, n_positions=128),
    _lm("gpt-neo", "text-decoder", "GPTNeoForCausalLM", "GPTNeoConfig", vocab_size=VOCAB, hidden_size=128,
        num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]], max_position_embeddings=128,
        window_size=16),
    _lm("llama", "text-decoder", "LlamaForCausalLM", "LlamaConfig", num_key_value_heads=2, **_DEC),
    _lm("mistral", "text-decoder", "MistralForCausalLM", "MistralConfig", num_key_value_heads=2, **_DEC),
    _lm("qwen2", "text-decoder", "Qwen2ForCausalLM", "Qwen2Config", num_key_value_heads=2, **_DEC),
    _lm("gemma", "text-decoder", "GemmaForCausalLM", "GemmaConfig", num_key_value_heads=2, head_dim=32, **_DEC),
    _lm("phi", "text-decoder", "PhiForCausalLM", "PhiConfig", **_DEC),
    _lm("opt", "text-decoder", "OPTForCausalLM", "OPTConfig", vocab_size=VOCAB, hidden_size=128,
        num_hidden_layers=2, num_attention_heads=4, ffn_dim=512, word_embed_proj_dim=128,
        max_position_embeddings=128),
    _lm("bloom", "text-decoder", "BloomForCausalLM", "BloomConfig", vocab_size=VOCAB, hidden_size=128, n_layer=2,
        n_head=4),
    _lm("falcon", "text-decoder", "FalconForCausalLM", "FalconConfig", vocab_size=VOCAB, hidden_size=128,
        num_hidden_layers=2, num_attention_heads=4),
    # text encoders (BERT family: Post-LN)
    _lm("bert", "text-encoder", "BertForMaskedLM", "BertConfig", **_ENC),
    _lm("roberta", "text-encoder", "RobertaForMaskedLM", "RobertaConfig", pad_token_id=1,
        **dict(_ENC, max_position_embeddings=130)),
    _lm("albert", "text-encoder", "AlbertForMaskedLM", "AlbertConfig", embedding_size=64, **_ENC),
    _lm("distilbert", "text-encoder", "DistilBertForMaskedLM", "DistilBertConfig", vocab_size=VOCAB, dim=128,
        n_layers=2, n_heads=4, hidden_dim=512, max_position_embeddings=128),
    _lm("electra", "text-encoder", "ElectraForMaskedLM", "ElectraConfig", embedding_size=64, **_ENC),
    _lm("deberta-v2", "text-encoder", "DebertaV2ForMaskedLM", "DebertaV2Config", **_ENC),
    _lm("mpnet", "text-encoder", "MPNetForMaskedLM", "MPNetConfig", **dict(_DEC, max_position_embeddings=130)),
    _lm("xlnet", "text-encoder", "XLNetLMHeadModel", "XLNetConfig", vocab_size=VOCAB, d_model=128, n_layer=2,
        n_head=4, d_inner=512, note="mask_emb / seg_embed are used only in other modes"),
    _lm("fnet", "text-encoder", "FNetForMaskedLM", "FNetConfig", **dict(_ENC, use_tpu_fourier_optimizations=False),
        note="the pooler is unused by the MLM head"),
    # encoder-decoders
    _seq2seq("t5", "T5ForConditionalGeneration", "T5Config", vocab_size=VOCAB, d_model=128, d_kv=32, d_ff=512,
             num_layers=2, num_decoder_layers=2, num_heads=4, decoder_start_token_id=0),
    _seq2seq("bart", "BartForConditionalGeneration", "BartConfig", **_S2S),
    _seq2seq("mbart", "MBartForConditionalGeneration", "MBartConfig", **_S2S),
    _seq2seq("pegasus", "PegasusForConditionalGeneration", "PegasusConfig", **_S2S),
    _seq2seq("marian", "MarianMTModel", "MarianConfig", **dict(_S2S, decoder_vocab_size=VOCAB)),
    # vision CNNs
    _vision("resnet-50", "vision-cnn", "ResNetForImageClassification", "ResNetConfig", embedding_size=32,
            hidden_sizes=[64, 128, 256, 512], depths=[3, 4, 6, 3], layer_type="bottleneck",
            note="ResNet-50 layout (bottleneck, [3, 4, 6, 3]) at a quarter of the width"),
    _vision("convnext", "vision-cnn", "ConvNextForImageClassification", "ConvNextConfig",
            hidden_sizes=[32, 64, 128, 256], depths=[2, 2, 2, 2]),
    _vision("regnet-y", "vision-cnn", "RegNetForImageClassification", "RegNetConfig", embedding_size=32,
            hidden_sizes=[32, 64, 128, 256], depths=[1, 2, 2, 1], groups_width=16, layer_type="y",
            note="RegNetY: squeeze-excitation blocks"),
    _vision("mobilenet-v1", "vision-cnn", "MobileNetV1ForImageClassification", "MobileNetV1Config",
            depth_multiplier=0.25),
    _vision("mobilenet-v2", "vision-cnn", "MobileNetV2ForImageClassification", "MobileNetV2Config",
            depth_multiplier=0.35),
    _vision("mobilevit", "vision-cnn", "MobileViTForImageClassification", "MobileViTConfig",
            hidden_sizes=[64, 80, 96], neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320], image_size=64),
    _vision("efficientnet", "vision-cnn", "EfficientNetForImageClassification", "EfficientNetConfig",
            width_coefficient=0.25, depth_coefficient=0.5, image_size=64, hidden_dim=320,
            note="EfficientNet: depthwise + squeeze-excitation"),
    # vision transformers
    _vision("vit", "vision-transformer", "ViTForImageClassification", "ViTConfig", size=32, image_size=32,
            patch_size=4, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512),
    _vision("deit", "vision-transformer", "DeiTForImageClassification", "DeiTConfig", size=32, image_size=32,
            patch_size=4, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
            note=KNOWN_TRUE_POSITIVES["deit"]),
    _vision("beit", "vision-transformer", "BeitForImageClassification", "BeitConfig", size=32, image_size=32,
            patch_size=4, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
            note=KNOWN_TRUE_POSITIVES["beit"]),
    _vision("swin", "vision-transformer", "SwinForImageClassification", "SwinConfig", size=32, image_size=32,
            patch_size=2, embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=4),
    _vision("dinov2", "vision-transformer", "Dinov2ForImageClassification", "Dinov2Config", size=32,
            image_size=32, patch_size=4, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
            note="mask_token is used only for masked pre-training"),
    # speech
    Spec("whisper", "speech",
         _hf("WhisperForConditionalGeneration", "WhisperConfig", vocab_size=VOCAB, num_mel_bins=80, d_model=128,
             encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
             encoder_ffn_dim=512, decoder_ffn_dim=512, max_source_positions=64, max_target_positions=64,
             decoder_start_token_id=1, pad_token_id=0),
         lambda: {"input_features": _mel(BATCH, 80, 128, True), "decoder_input_ids": _tokens(seq=16)},
         lambda: {"input_features": _mel(BATCH, 80, 128, True), "labels": _tokens(seq=16)}, _own_loss),
    Spec("speech2text", "speech",
         _hf("Speech2TextForConditionalGeneration", "Speech2TextConfig", vocab_size=VOCAB, d_model=128,
             encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
             encoder_ffn_dim=512, decoder_ffn_dim=512, input_feat_per_channel=80, conv_channels=128,
             max_source_positions=256, max_target_positions=64, decoder_start_token_id=2, pad_token_id=1),
         lambda: {"input_features": _mel(BATCH, 80, 128, False), "decoder_input_ids": _tokens(seq=16)},
         lambda: {"input_features": _mel(BATCH, 80, 128, False), "labels": _tokens(seq=16)}, _own_loss),
    _ctc("wav2vec2", "Wav2Vec2ForCTC", "Wav2Vec2Config"),
    _ctc("hubert", "HubertForCTC", "HubertConfig"),
    # state-space / recurrent
    _lm("mamba", "ssm-rnn", "MambaForCausalLM", "MambaConfig", vocab_size=VOCAB, hidden_size=128,
        num_hidden_layers=4, state_size=16, use_mambapy=True),
    _lm("rwkv", "ssm-rnn", "RwkvForCausalLM", "RwkvConfig", vocab_size=VOCAB, hidden_size=128,
        num_hidden_layers=4, attention_hidden_size=128, intermediate_size=512, context_length=128),
    _custom("lstm-lm", LSTMLanguageModel, lambda: _tokens(), VOCAB,
            "pytorch/examples word_language_model layout, its uniform(-0.1, 0.1) init"),
    _custom("optional-heads", OptionalHeadClassifier, lambda: torch.randn(IMAGE_BATCH, 3, 32, 32), 10,
            "aux_head and mask_token unused by this forward"),
]}

try:  # torchvision's whole classification list, where it imports (its own venv: benchmarks/README.md)
    import zoo_torchvision
except ImportError:
    zoo_torchvision = None
else:
    SPECS.update((s.name, s) for s in zoo_torchvision.specs(Spec))

FAMILIES = sorted({s.family for s in SPECS.values()})


def get(name: str) -> Spec:
    try:
        return SPECS[name]
    except KeyError:
        raise SystemExit(f"unknown zoo model {name!r}; known: {', '.join(SPECS)}") from None
