"""Run the probe: hooks on, a few forward/backward passes, hooks off, state restored.

Batch ``i`` is, in this order: ``torch.manual_seed(seed + i)``; ``inputs = make_inputs()``;
``output = model(inputs)``; ``loss = loss_fn(output, inputs)`` (or the default loss,
seeded with ``seed + i``); ``loss.backward()``.  That is exactly what a plain training
step would do, so with one batch the reported gradient norms equal plain autograd's:
the probe measures, it does not perturb.  The model runs in train mode, as in training.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional

import torch
from torch import nn

from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.probe import kinds
from gradcheck_tool.probe.collector import SATURATED_SAMPLE_SHARE, Collector, LayerAccumulator, l2
from gradcheck_tool.probe.functional import ParamUse
from gradcheck_tool.probe.graph import residual_norm_ends
from gradcheck_tool.probe.init_scheme import classify
from gradcheck_tool.probe.losses import LossWatch
from gradcheck_tool.probe.outputs import DEFAULT_LOSS, compute_loss, describe_default_loss, floating_outputs
from gradcheck_tool.probe.record import LayerStats, ParamStats, ProbeRecord
from gradcheck_tool.probe.recurrent import through_time
from gradcheck_tool.probe.sharded import Local
from gradcheck_tool.probe.state import preserved
from gradcheck_tool.probe.symmetry import symmetric_layers
from gradcheck_tool.probe.unregistered import UnregisteredWatch

Progress = Callable[..., None]  # (done, total[, unit])


def call_model(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def watched_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules, plus containers that own parameters directly (MultiheadAttention)."""
    return [
        (name or type(module).__name__, module)
        for name, module in model.named_modules()
        if not any(True for _ in module.children()) or any(True for _ in module.parameters(recurse=False))
    ]


def _finite(x: float) -> Optional[float]:
    return x if math.isfinite(x) else None


def _recommended_max_norm(totals: list[float]) -> Optional[float]:
    """Twice the median global gradient norm, to two significant digits.

    Clipping there leaves ordinary steps alone and cuts spikes of more than twice the
    typical norm.  Measured at initialisation with the file's loss_fn or the task-shaped default
    loss (never the unit cotangent: see probe/outputs.py), so it is a starting point, to be
    revisited after warm-up.
    """
    if not totals:
        return None
    value = 2.0 * statistics.median(totals)
    if value <= 0:
        return None
    return float(f"{value:.2g}")


def run_probe(
    model: nn.Module,
    make_inputs: Callable[[], Any],
    loss_fn: Optional[Callable[[Any, Any], torch.Tensor]] = None,
    *,
    probes: int = 3,
    seed: int = 0,
    model_name: Optional[str] = None,
    inputs_description: str = "",
    progress: Optional[Progress] = None,
    sharding: Local = Local(),
) -> ProbeRecord:
    """``sharding``: ``probe.sharded.Sharded`` when the model is sharded with FSDP2 (``--distributed``)."""
    if probes < 1:
        raise GradhealthError(f"--probes must be at least 1, got {probes}")
    named_params = list(model.named_parameters())
    trainable = [(n, p) for n, p in named_params if p.requires_grad]
    if not trainable:
        raise GradhealthError(
            f"{model_name or type(model).__name__} has no trainable parameters: nothing to probe; set "
            "requires_grad on the parameters that train, or scan with --static-only"
        )
    watched = watched_modules(model)
    collector = Collector(watched)
    rnn_inputs: dict[str, torch.Tensor] = {}
    per_param: dict[str, list[float]] = {n: [] for n, _ in trainable}
    totals: list[float] = []
    output_norms: list[float] = []
    input_rms: Optional[float] = None
    norm_ends: dict[int, int] = {}
    loss_name = "loss_fn"
    start = time.perf_counter()
    recurrent = []
    loss_calls: tuple = ()
    unregistered = UnregisteredWatch(model)
    symmetry = []
    with preserved(model):
        handles = collector.attach()
        for name, module in watched:
            if isinstance(module, nn.RNNBase):
                handles.append(module.register_forward_pre_hook(_capture_first_input(name, rnn_inputs)))
        try:
            model.train()
            torch.set_grad_enabled(True)
            for batch in range(probes):
                batch_seed = seed + batch
                torch.manual_seed(batch_seed)
                inputs = make_inputs()
                if batch == 0:
                    input_rms = _input_rms(inputs)
                collector.start_pass()
                with collector.functional_mode():
                    output = call_model(model, inputs)
                outputs = floating_outputs(output)
                collector.watch_output(outputs)
                if batch == 0:
                    norm_ends = residual_norm_ends(outputs)
                    unregistered.find(outputs, inputs)
                    if loss_fn is None:
                        loss_name = describe_default_loss(output, model)
                if batch == 0 and loss_fn is not None:
                    # What loss_fn does with the output (GH107, GH108): watched on this one call only.
                    owners = collector.node_owners()
                    with LossWatch(lambda node: owners.get(id(node))) as watch:
                        loss = compute_loss(loss_fn, output, inputs, batch_seed, model)
                    loss_calls = tuple(watch.calls)
                else:
                    loss = compute_loss(loss_fn, output, inputs, batch_seed, model)
                loss.backward()
                unregistered.after_backward(first=batch == 0)
                if batch == 0:
                    symmetry = symmetric_layers(watched, collector.output_layer(), sharding.full)
                collector.queue_param_grads(trainable)
                norms = sharding.global_grad_norms(collector.end_pass(), [n for n, _ in trainable])
                del output, outputs, loss, inputs
                for name, _ in trainable:
                    if name in norms:
                        per_param[name].append(norms[name])
                total = math.sqrt(sum(v * v for v in norms.values()))
                if math.isfinite(total):
                    totals.append(total)
                if math.isfinite(collector.output_sq):
                    output_norms.append(math.sqrt(collector.output_sq))
                for _, p in named_params:
                    p.grad = None
                if progress is not None:
                    progress(batch + 1, probes)
        finally:
            for handle in handles:
                handle.remove()
            unregistered.after_backward(first=False)  # the tensors' own .grad back, even after a raise
        for name, module in watched:
            if name in rnn_inputs:
                stats = through_time(name, module, rnn_inputs.pop(name), seed)
                if stats is not None:
                    recurrent.append(stats)
    duration = time.perf_counter() - start

    # The forward ran on the parameters FSDP2 gathered: name them as the model's own.
    alias, uses = sharding.aliases(), collector.uses
    norm_ends = {alias.get(k, k): v for k, v in norm_ends.items()}
    if uses is not None and alias:
        uses = ParamUse({alias.get(i, i) for i in uses.consumed}, {alias.get(i, i) for i in uses.cut},
                        uses.cut_modules)
    layers = _layer_stats(collector.layers, probes, norm_ends, sharding.full)
    weight_norms = sharding.norms([p for _, p in named_params])
    params = tuple(_param_stats(name, p, norm, per_param.get(name), _use(name, p, uses))
                   for (name, p), norm in zip(named_params, weight_norms))
    return ProbeRecord(
        model=model_name or type(model).__name__,
        device=sharding.describe(str(next(p.device for _, p in named_params))),
        seed=seed,
        batches=probes,
        loss=loss_name,
        inputs=inputs_description,
        layers=layers,
        parameters=params,
        recurrent=tuple(recurrent),
        symmetry=tuple(symmetry),
        attention=collector.attention.stats(),
        total_grad_norms=tuple(totals),
        output_grad_norm=statistics.fmean(output_norms) if output_norms else None,
        input_rms=input_rms,
        duration_s=duration,
        recommended_max_norm=_recommended_max_norm(totals) if loss_name != DEFAULT_LOSS else None,
        loss_calls=loss_calls,
        unregistered=unregistered.result(),
    )


def _capture_first_input(name: str, store: dict[str, torch.Tensor]):
    def hook(module, args):
        if name not in store and args and isinstance(args[0], torch.Tensor):
            store[name] = args[0].detach().clone()

    return hook


def _input_rms(inputs: Any) -> Optional[float]:
    tensors = [t for t in floating_outputs(inputs) if t.is_floating_point()]
    if isinstance(inputs, torch.Tensor) and not inputs.is_floating_point():
        return None
    if not tensors:
        return None
    sq = sum(float(l2(t.detach())) ** 2 for t in tensors)
    n = sum(t.numel() for t in tensors)
    return _finite(math.sqrt(sq / max(n, 1)))


def _use(name: str, p: nn.Parameter, uses: Optional[ParamUse]) -> Optional[str]:
    if uses is None:
        return None
    if id(p) in uses.cut or name.rpartition(".")[0] in uses.cut_modules:
        return "cut"
    return "used" if id(p) in uses.consumed else "unused"


def _param_stats(name: str, p: nn.Parameter, norm: float, norms: Optional[list[float]], use: Optional[str]) -> ParamStats:
    finite = [n for n in (norms or []) if math.isfinite(n)]
    return ParamStats(
        name=name,
        module=name.rpartition(".")[0],
        shape=tuple(p.shape),
        norm=norm,
        grad_norm=statistics.fmean(finite) if finite else None,
        grad_norms=tuple(finite),
        grad_nonfinite=len(finite) != len(norms or []),
        requires_grad=p.requires_grad,
        use=use,
    )


def _layer_stats(accumulators: list[LayerAccumulator], passes: int, norm_ends: dict[int, int],
                 full: Callable[[torch.Tensor], torch.Tensor]) -> tuple[LayerStats, ...]:
    called = sorted((a for a in accumulators if a.calls and a.order is not None), key=lambda a: a.order)
    out = []
    for index, acc in enumerate(called):
        module = acc.module
        rms = math.sqrt(acc.out_sq / acc.out_numel) if acc.has_float_out and acc.out_numel else None
        grad = math.sqrt(acc.grad_sq / passes) if acc.grad_seen else None  # per-pass norm
        weight = kinds.primary_weight(module)
        dead = saturated = None
        samples = float(acc.unit_samples) if acc.units else None
        if acc.unit_alive is not None:
            dead = float(1.0 - acc.unit_alive.mean())
        if acc.unit_tail is not None and acc.units:
            saturated = float((acc.unit_tail >= SATURATED_SAMPLE_SHARE * acc.unit_positions).mean())
        out.append(
            LayerStats(
                name=acc.name,
                type=type(module).__name__,
                order=index,
                calls=acc.calls,
                out_shape=acc.out_shape,
                out_rms=_finite(rms) if rms is not None else None,
                out_nonfinite=rms is not None and not math.isfinite(rms),
                grad_norm=_finite(grad) if grad is not None else None,
                grad_nonfinite=grad is not None and not math.isfinite(grad),
                backward_order=acc.backward_order,
                activation=kinds.activation_family(module),
                dead_fraction=dead,
                saturated_fraction=saturated,
                units=acc.units,
                samples_per_unit=samples,
                weight_init=classify(full(weight)) if weight is not None else None,
                next_activation=acc.next_activation if weight is not None else None,
                params=tuple(f"{acc.name}.{n}" for n, _ in module.named_parameters(recurse=False)),
                normalisation=kinds.normalisation(module),
                normalised=weight is not None and acc.normalised,
                residual_sum=norm_ends.get(id(getattr(module, "weight", None))),
                out_max=acc.out_max if acc.has_float_out else None,
                grad_max=acc.grad_max if acc.grad_seen else None,
                grad_exponents=acc.exponent_counts(),
            )
        )
    return tuple(out)
