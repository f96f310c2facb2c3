"""Whether a file trains in half precision, read from its source (for GH150/GH151).

One ``ast`` parse (stdlib, never imports torch): ``torch.autocast`` / ``torch.cuda.amp.autocast``
and their dtype, ``GradScaler`` and its literal ``init_scale`` and ``growth_interval``, ``.half()``, and the trainers'
switches (Lightning ``Trainer(precision="16-mixed")``, Hugging Face ``TrainingArguments(fp16=True)``,
accelerate ``Accelerator(mixed_precision="fp16")``), which bring their own loss scaling.
"""
from __future__ import annotations

import ast
import dataclasses
import operator
from typing import Any, Optional

from gradcheck_tool.probe.record import Precision
from gradcheck_tool.static.analysis.names import ast_dotted, parse_or_none

DEFAULT_SCALE = 2.0**16  # torch.amp.GradScaler's init_scale
DEFAULT_GROWTH = 2000  # and its growth_interval


def read_precision(source: str) -> Precision:
    """``trains``: the file calls ``.backward()`` or configures a trainer; an fp16 file without one is
    inference (a diffusers pipeline), where only the forward range matters."""
    return precision_in(parse_or_none(source))


def precision_in(tree: Optional[ast.Module]) -> Precision:
    """``read_precision`` of a file already parsed (None: it does not parse)."""
    if tree is None:
        return Precision(None, False, trains=False)
    dtypes: list[str] = []
    scaler, init_scale, growth_interval, trains = False, DEFAULT_SCALE, DEFAULT_GROWTH, False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast_dotted(node.func)
        leaf = name.rpartition(".")[2]
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        trains = trains or leaf == "backward"
        scaler = scaler or (leaf == "backward" and bool(node.args))  # accelerator.backward(loss) scales fp16 itself
        if leaf == "autocast":
            if _literal(kwargs.get("enabled")) is False:
                continue
            if "dtype" in kwargs:  # a dtype chosen at run time (nanoGPT's ptdtype) says nothing here
                dtypes.extend([d for d in [_dtype(kwargs["dtype"])] if d])
                continue
            device = _literal(kwargs.get("device_type", node.args[0] if node.args else None))
            if ".cpu." in f".{name}." or device == "cpu":
                dtypes.append("bf16")
            elif ".cuda." in f".{name}." or device == "cuda":  # a run-time device says nothing
                dtypes.append("fp16")
        elif leaf == "GradScaler" and _literal(kwargs.get("enabled")) is not False:
            scaler = True
            # torch.amp.GradScaler(device, init_scale, growth_factor, backoff_factor, growth_interval);
            # torch.cuda.amp.GradScaler has no device: a number first is its init_scale.
            first = 0 if node.args and isinstance(_literal(node.args[0]), (int, float)) else 1
            positional = dict(zip(("init_scale", "growth_interval"), [
                node.args[i] if len(node.args) > i else None for i in (first, first + 3)]))
            value = _literal(kwargs.get("init_scale", positional["init_scale"]))
            if isinstance(value, (int, float)) and value > 0:
                init_scale = float(value)
            value = _literal(kwargs.get("growth_interval", positional["growth_interval"]))
            if isinstance(value, int) and value > 0:
                growth_interval = value
        elif leaf == "half" and not node.args:
            dtypes.append("fp16")
        elif leaf in ("to", "type") and any(_dtype(a) == "fp16" for a in [*node.args, *kwargs.values()]):
            dtypes.append("fp16")
        elif leaf in ("Trainer", "Fabric"):  # Lightning
            value = str(_literal(kwargs.get("precision")) or "")
            trains = True
            if value.startswith("16") or value.startswith("bf16"):
                dtypes.append("bf16" if value.startswith("bf16") else "fp16")
                scaler = scaler or value.startswith("16")
        elif leaf in ("TrainingArguments", "Seq2SeqTrainingArguments"):
            trains = True
            for key, dtype in (("fp16", "fp16"), ("bf16", "bf16")):
                if _literal(kwargs.get(key)) is True:
                    dtypes.append(dtype)
                    scaler = scaler or dtype == "fp16"
        elif leaf == "Accelerator" and _literal(kwargs.get("mixed_precision")) in ("fp16", "bf16"):
            dtypes.append(_literal(kwargs["mixed_precision"]))
            scaler = scaler or dtypes[-1] == "fp16"
            trains = True
    dtype = "fp16" if "fp16" in dtypes else ("bf16" if dtypes else None)
    return Precision(dtype, scaler and dtype == "fp16", init_scale, trains, growth_interval)


def as_asked(precision: Precision, dtype: str) -> Precision:
    """``--amp dtype``: judge the file as training in ``dtype``, with its own scaler settings; fp16 with a
    GradScaler (by the book) unless the file itself trains in fp16 without one."""
    scaler = dtype == "fp16" and (precision.scaler or precision.dtype != "fp16")
    return dataclasses.replace(precision, dtype=dtype, scaler=scaler, trains=True, asked=True)


def _dtype(node: Optional[ast.AST]) -> Optional[str]:
    leaf = ast_dotted(node).rpartition(".")[2] if node is not None else ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        leaf = node.value
    return {"float16": "fp16", "half": "fp16", "bfloat16": "bf16"}.get(leaf)


_OPERATORS = {ast.Pow: operator.pow, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.Add: operator.add, ast.Sub: operator.sub}


def _literal(node: Optional[ast.AST]) -> Any:
    """A constant, or arithmetic on constants (``2.**16``); None otherwise."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _literal(node.left), _literal(node.right)
        if isinstance(left, (int, float)) and isinstance(right, (int, float)):
            try:
                return _OPERATORS[type(node.op)](left, right)
            except (ArithmeticError, ValueError):
                return None
    return None
