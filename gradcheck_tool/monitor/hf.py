"""``GradhealthTrainerCallback``: gradhealth in a transformers ``Trainer`` run.

    trainer = Trainer(model=model, args=args, train_dataset=data,
                      callbacks=[GradhealthTrainerCallback(log="grads.jsonl")])

At ``on_train_begin`` it scans the model on the first training batch (``model(**batch).loss`` is
the loss) and logs the findings; then a GradMonitor measures every ``every``-th optimizer step.
The Trainer clips (``max_grad_norm``) before any callback runs, so the monitor sees clipped
gradients: a step at the threshold is labelled clipped and its raw norm (the Trainer logs it as
``grad_norm``) is not judged for spikes.  Afterwards ``callback.report`` holds the scan and
``callback.monitor`` the history and findings.
"""
from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from gradcheck_tool.monitor.core import GradMonitor
from gradcheck_tool.monitor.fitstart import MonitoringCallback, first_batch, scan_at_start


def model_loss(output: Any, inputs: Any):
    return output["loss"] if isinstance(output, dict) else output.loss


def innermost(optimizer):
    """accelerate wraps the optimizer; the hooks belong on the torch one inside."""
    while hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer
    return optimizer


class GradhealthTrainerCallback(MonitoringCallback, TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs):
        if self.scan and train_dataloader is not None:
            self.report = scan_at_start(model, first_batch(train_dataloader), model_loss, self.fail_on,
                                        probes=self.probes)
        self.monitor = GradMonitor(model, self.every, optimizer=innermost(optimizer), log=self.log_to,
                                   clip_max_norm=args.max_grad_norm or None, **self.monitor_options)

    def on_train_end(self, args, state, control, **kwargs):
        self.close_monitor()
