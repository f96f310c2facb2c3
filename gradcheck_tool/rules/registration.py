"""GH113: tensors that learn in the forward but that the optimizer never sees (probe/unregistered.py)."""
from __future__ import annotations

from typing import Iterator

from gradcheck_tool.findings import Finding, Severity
from gradcheck_tool.probe.record import ProbeRecord, Unregistered
from gradcheck_tool.rules import examples
from gradcheck_tool.rules.base import RuntimeRule

# The registering container for each plain one, and how to write it.
_REGISTERING = {"list": ("nn.ModuleList", "self.{attr} = nn.ModuleList([...])"),
                "tuple": ("nn.ModuleList", "self.{attr} = nn.ModuleList([...])"),
                "dict": ("nn.ModuleDict", "self.{attr} = nn.ModuleDict({{...}}) (string keys)"),
                "tensor": ("nn.Parameter", "self.{attr} = nn.Parameter(torch.randn(...)) (no requires_grad=True)"),
                "list of tensors": ("nn.ParameterList", "self.{attr} = nn.ParameterList([...])"),
                "tuple of tensors": ("nn.ParameterList", "self.{attr} = nn.ParameterList([...])"),
                "dict of tensors": ("nn.ParameterDict", "self.{attr} = nn.ParameterDict({{...}}) (string keys)")}


def _layers(held: Unregistered) -> str:
    kinds = sorted(set(held.modules))
    return f"{len(held.modules)} {'/'.join(kinds)} layer{'s' if len(held.modules) != 1 else ''}"


def _held(container: str = "list", *, eval_mode: bool = False, optimizer: object = True) -> ProbeRecord:
    tensors = ("layers[0].weight", "layers[0].bias") if container != "tensor" else ("scale",)
    held = Unregistered("layers" if container != "tensor" else "scale", "Net", container, tensors, 4160, 0.3,
                        modules=("Linear",) if container != "tensor" else (), eval_mode=eval_mode,
                        site="layers[0]" if container != "tensor" else "scale")
    return examples.record(unregistered=(held,), optimizer_from_parameters=optimizer)


class UnregisteredParameters(RuntimeRule):
    """Layers or tensors that receive gradients but are not registered: the optimizer never sees them.

    What it does: walks the first probe batch's autograd graph from the model's output to its
    leaves (the tensors whose ``.grad`` the backward fills) and reports those that are neither a
    registered parameter of the model nor one of the probe's inputs, naming the attribute that
    holds them: a plain ``list``, ``tuple`` or ``dict`` of layers, or a plain tensor created
    with ``requires_grad=True``.  Error when the file's optimizer is built from
    ``model.parameters()`` (read from its source), which certainly misses them; warning when the
    optimizer is built otherwise or not known.  Layers that are all in eval mode are most likely
    kept out of the model on purpose (a frozen feature extractor hidden from ``state_dict``):
    information.

    Why it matters: ``nn.Module.__setattr__`` registers a module or ``nn.Parameter`` assigned to an
    attribute, but not the contents of a Python container, nor a plain tensor.  Their weights get
    gradients on every step, so nothing fails, but ``model.parameters()`` does not list them: the
    optimizer never updates them and they stay at their random init, while ``.to(device)``,
    ``model.eval()`` and ``state_dict()`` skip them too (the checkpoint silently lacks them).

    Example: ``self.layers = [nn.Linear(64, 64) for _ in range(4)]``;
    ``self.heads = {"a": nn.Linear(64, 2)}``; ``self.scale = torch.ones(64, requires_grad=True)``.

    Fix: ``nn.ModuleList([...])`` for a list or tuple of layers, ``nn.ModuleDict({...})`` for a
    dict (string keys), ``nn.Parameter(...)`` for a tensor, ``nn.ParameterList`` /
    ``nn.ParameterDict`` for a list / dict of them.
    """

    CODE = "GH113"
    NAME = "unregistered-parameters"
    SEVERITY = Severity.WARNING
    GOOD = (examples.mlp(),)
    BAD = (_held(), _held("dict", optimizer=None), _held("tensor"), _held(eval_mode=True))

    def check(self, record: ProbeRecord) -> Iterator[Finding]:
        for held in record.unregistered:
            container = held.container if held.modules or held.container == "tensor" else f"{held.container} of tensors"
            registering, example = _REGISTERING.get(container, _REGISTERING["list"])
            attr = held.holder.rpartition(".")[2]
            what = (f"a plain {held.container} holding {_layers(held)}" if held.modules
                    else "a plain tensor with requires_grad=True" if held.container == "tensor"
                    else f"a plain {container}")
            if held.eval_mode:
                severity, consequence = Severity.INFO, (
                    "; every layer in it is in eval mode, so it may be kept out of the model on purpose (then "
                    "freeze it with requires_grad_(False) to skip computing its gradients)")
            elif record.optimizer_from_parameters:
                severity, consequence = Severity.ERROR, (
                    "; the file's optimizer is built from model.parameters(), so it never updates them")
            else:
                severity, consequence = Severity.WARNING, (
                    "; an optimizer built from model.parameters() never updates them")
            count = len(held.tensors)
            yield self.finding(
                f"{held.owner_type}.{attr} is {what}: {count} tensor{'s' if count != 1 else ''} "
                f"({held.numel:,} values) get gradients in the forward but model.parameters() does not list "
                f"them{consequence}; .to(device) and state_dict() skip them too",
                module=held.site, severity=severity,
                evidence={"holder": held.holder, "container": held.container, "tensors": list(held.tensors),
                          "numel": held.numel, "grad_norm": held.grad_norm, "modules": list(held.modules),
                          "optimizer_from_parameters": record.optimizer_from_parameters,
                          "eval_mode": held.eval_mode, "registrable": held.registrable},
                fix=f"Register them with {registering}: {example.format(attr=attr)}.")
