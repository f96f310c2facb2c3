"""The trainer callbacks in real (tiny, CPU) training runs, their numbers against plain autograd
read by a second callback at the same point of the step."""
import json
import math

import pytest
import torch
from torch import nn


def grad_norm(model: nn.Module) -> float:
    return math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in model.parameters() if p.grad is not None))


@pytest.mark.slow
def test_transformers_trainer_callback(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from gradcheck_tool.monitor.hf import GradhealthTrainerCallback

    seen = []

    class Oracle(transformers.TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            seen.append(grad_norm(model))  # after the Trainer's clipping, as the monitor sees it

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16)
    model = transformers.GPT2LMHeadModel(config)
    data = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 64, (32, 16)).unbind()]
    callback = GradhealthTrainerCallback(log=str(tmp_path / "grads.jsonl"), updates_every=1)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=4,
                                          max_grad_norm=2.0, report_to=[], use_cpu=True, save_strategy="no",
                                          disable_tqdm=True)
    transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback, Oracle()]).train()

    record = callback.report.probes[0].record  # the scan at train begin, on the first batch
    assert record.model == "GPT2LMHeadModel" and record.loss == "loss_fn" and len(record.layers) > 10
    history = callback.monitor.history
    assert [r.step for r in history] == [0, 1, 2, 3] and len(seen) == 4
    for r, oracle in zip(history, seen):
        assert r.grad_norm == pytest.approx(oracle, rel=1e-5)
        assert r.clipped is (oracle >= 2.0 * (1 - 1e-3)) and r.pre_clip_norm is None
        assert r.update_ratios["transformer.h.0.attn.c_attn"] > 0
    assert callback.monitor.findings == ()
    lines = (tmp_path / "grads.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2, 3]
    assert not callback.monitor.optimizer._optimizer_step_pre_hooks  # closed at train end


@pytest.mark.slow
def test_lightning_callback_reads_gradients_before_lightning_clips(tmp_path):
    L = pytest.importorskip("lightning")
    from gradcheck_tool.monitor.lightning import GradhealthCallback

    class Regression(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    seen = []

    class Oracle(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            seen.append(grad_norm(pl_module))  # Lightning clips after this hook

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 8), torch.randn(64, 1) * 10)
    callback = GradhealthCallback(log=tmp_path / "grads.jsonl", updates_every=1)
    trainer = L.Trainer(max_steps=5, callbacks=[callback, Oracle()], gradient_clip_val=0.5, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", default_root_dir=tmp_path)
    module = Regression()
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=16, shuffle=True))

    record = callback.report.probes[0].record
    assert [layer.name for layer in record.layers if layer.type == "Linear"] == ["module.net.0", "module.net.2"]
    assert "log" not in module.__dict__  # the scan's silencing of self.log is undone
    history = callback.monitor.history
    assert len(history) == len(seen) == 5
    for r, oracle in zip(history, seen):
        assert r.grad_norm == pytest.approx(oracle, rel=1e-5) and r.pre_clip_norm == r.grad_norm
        assert r.clipped is (oracle > 0.5)
        assert set(r.update_ratios) == {"net.0", "net.2"} and r.lr == 1e-3
    assert any(r.clipped for r in history)
    assert len((tmp_path / "grads.jsonl").read_text().splitlines()) == 5
