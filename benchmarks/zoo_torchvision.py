"""The zoo's torchvision arm: every classification model ``torchvision.models.list_models`` names.

Imported by ``zoo_models`` only when torchvision imports (it needs its own venv here: see
benchmarks/README.md); never a test or CI dependency.  Each model is built as a user would,
``torchvision.models.get_model(name, weights=None)``: the library's default init, nothing
downloaded.  Sizes are realistic and small: batch 32 (the probe's default batch with BatchNorm)
of 64 px images, the smallest size every CNN family here accepts with a few pixels to spare at
its last stage, except where an architecture fixes the size:

* Inception v3's auxiliary head (on in training mode, its default) pools its 17x17 map with a
  5x5 window at stride 3 and then applies a 5x5 convolution, so it needs the full 299 px: batch 8
  there (8 x 299 x 299 positions per BatchNorm channel in the stem).
* ViT is built with ``image_size=64`` (its constructor takes one): 4x4 patches of 16 px, 2x2 of 32 px.
* MaxViT partitions each stage into 7x7 windows, so its input must be 224 px (the constructor's
  ``partition_size`` is fixed by ``maxvit_t``): batch 8 there, its BatchNorm still sees
  8 x 56 x 56 positions per channel in its first stage.
* Swin pads each stage to its window, so 64 px works.

The task loss is the training loss of torchvision's reference scripts: cross-entropy over the
1000 ImageNet classes against labels of the real shape ``[batch]`` (from the global RNG, which
the probe seeds per batch), plus the auxiliary heads where the model returns them in training
mode: GoogLeNet 0.3 per head (Szegedy et al. 2015), Inception v3 0.4 (its common recipe).

``SKIPPED`` are the models not scanned, with why; ``EXTRA`` adds ResNet-50 with
``zero_init_residual=True``, which must scan clean (issue 9).
"""
from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
import torchvision

CLASSES = 1000
BATCH = 32
SIZE = 64
# name -> (image size, batch, constructor kwargs); everything else: SIZE, BATCH, no kwargs.
SHAPES: dict[str, tuple[int, int, dict]] = {
    "inception_v3": (299, 8, {}),
    "maxvit_t": (224, 8, {}),
    **{f"vit_{v}": (64, BATCH, {"image_size": 64}) for v in ("b_16", "b_32", "l_16", "l_32")},
}
AUX_WEIGHT = {"googlenet": 0.3, "inception_v3": 0.4}
SKIPPED = {
    "regnet_y_128gf": "644M parameters: weights and gradients alone are 5.2 GB in fp32, over the zoo's "
                      "~6 GiB per process once the probe's activations are added",
    "vit_h_14": "632M parameters: weights and gradients alone are 5.1 GB in fp32, over the zoo's ~6 GiB "
                "per process once the probe's activations are added",
}
EXTRA = {"resnet50_zero_init_residual": ("resnet50", {"zero_init_residual": True})}


def names() -> list[str]:
    """Every classification model torchvision lists, then the extras; skipped ones left out."""
    listed = torchvision.models.list_models(module=torchvision.models)
    return [n for n in listed if n not in SKIPPED] + list(EXTRA)


def _base(name: str) -> tuple[str, dict]:
    base, kwargs = EXTRA.get(name, (name, {}))
    return base, dict(SHAPES.get(base, (SIZE, BATCH, {}))[2], **kwargs)


def build(name: str) -> torch.nn.Module:
    base, kwargs = _base(name)
    return torchvision.models.get_model(base, weights=None, **kwargs)


def images(name: str) -> torch.Tensor:
    size, batch, _ = SHAPES.get(_base(name)[0], (SIZE, BATCH, {}))
    return torch.randn(batch, 3, size, size)


def task_loss(name: str, output: Any, inputs: Any) -> torch.Tensor:
    """Cross-entropy over 1000 classes against random labels of shape [batch], plus the
    auxiliary heads' losses where training mode returns them (a namedtuple: logits first)."""
    logits, *aux = output if isinstance(output, tuple) else (output,)
    labels = torch.randint(0, CLASSES, logits.shape[:1])
    loss = F.cross_entropy(logits, labels)
    weight = AUX_WEIGHT.get(_base(name)[0], 0.0)
    return loss + sum(weight * F.cross_entropy(a, labels) for a in aux if a is not None)


def specs(spec_type: type) -> list:
    """``zoo_models.Spec`` rows, family ``torchvision``."""
    rows = []
    for name in names():
        make = functools.partial(images, name)
        note = f"torchvision {_base(name)[0]}, weights=None" + (
            f", {_base(name)[1]}" if _base(name)[1] else "")
        rows.append(spec_type(f"tv-{name}", "torchvision", functools.partial(build, name), make, make,
                              functools.partial(task_loss, name), note))
    return rows
