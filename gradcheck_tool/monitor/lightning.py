"""``GradhealthCallback``: gradhealth in a PyTorch Lightning ``Trainer`` run.

    trainer = lightning.Trainer(callbacks=[GradhealthCallback(log="grads.jsonl")], gradient_clip_val=1.0)

At ``on_train_start`` it scans the LightningModule on the first training batch (the loss is what
``training_step(batch, 0)`` returns; its ``self.log`` calls are silenced during the scan) and
logs the findings; then a GradMonitor measures every ``every``-th optimizer step.  Lightning calls
``on_before_optimizer_step`` before it clips, so the monitor reads the raw gradients there (spikes
stay visible) and labels the steps ``gradient_clip_val`` clips; the optimizer's step adds the
update ratios.  Afterwards ``callback.report`` holds the scan and ``callback.monitor`` the run.
"""
from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback

from gradcheck_tool.monitor.core import GradMonitor
from gradcheck_tool.monitor.fitstart import MonitoringCallback, first_batch, scan_at_start


class _TrainingStep(torch.nn.Module):
    """The LightningModule seen through ``training_step``: what the probe calls "the model"."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, batch):
        out = self.module.training_step(batch, 0)
        return out["loss"] if isinstance(out, dict) else out


def _loss(output, inputs):
    return output


class GradhealthCallback(MonitoringCallback, Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        if self.scan:
            batch = pl_module.transfer_batch_to_device(first_batch(_loader(trainer)), pl_module.device, 0)
            silenced = {name: pl_module.__dict__.get(name) for name in ("log", "log_dict")}
            pl_module.log = pl_module.log_dict = lambda *a, **k: None
            try:
                self.report = scan_at_start(_TrainingStep(pl_module), (batch,), _loss, self.fail_on,
                                            probes=self.probes)
            finally:
                for name, value in silenced.items():
                    if value is None:
                        del pl_module.__dict__[name]
                    else:
                        pl_module.__dict__[name] = value
        clip = trainer.gradient_clip_val if trainer.gradient_clip_algorithm in (None, "norm") else None
        self.monitor = GradMonitor(pl_module, self.every, optimizer=trainer.optimizers[0], log=self.log_to,
                                   clip_max_norm=clip or None, **self.monitor_options)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.monitor is not None:
            self.monitor.step(before_clip=True)

    def on_train_end(self, trainer, pl_module) -> None:
        self.close_monitor()


def _loader(trainer):
    loader = trainer.train_dataloader
    if loader is None or not hasattr(loader, "__iter__"):
        raise RuntimeError("gradhealth: the Trainer has no train dataloader at on_train_start")
    flat = getattr(loader, "flattened", None)  # a CombinedLoader: its first dataloader
    return flat[0] if flat else loader
