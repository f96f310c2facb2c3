"""Snapshot and restore everything the probe touches, in one context manager.

The probe promises to hand the model back exactly as it found it: train/eval
flag of every module, ``requires_grad`` and ``.grad`` of every parameter, every
buffer (BatchNorm running statistics move in train mode), and the global RNG
streams (torch CPU and CUDA, ``random``, numpy), even when the user's forward raises.
"""
from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[None]:
    training = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    requires_grad = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    py_rng = random.getstate()
    np_rng = np.random.get_state()
    grad_enabled = torch.is_grad_enabled()
    for p in params:
        p.grad = None
    try:
        yield
    finally:
        torch.set_grad_enabled(grad_enabled)
        for m, flag in training:
            m.training = flag
        with torch.no_grad():
            for p, flag, g in zip(params, requires_grad, grads):
                p.requires_grad_(flag)
                p.grad = g
            for b, saved in buffers:
                b.copy_(saved)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        random.setstate(py_rng)
        np.random.set_state(np_rng)
