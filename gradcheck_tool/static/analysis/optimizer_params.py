"""Whether a file's optimizer is built from a model's ``.parameters()`` (for GH113).

One ``ast`` parse (stdlib, never imports torch).  A ``torch.optim`` constructor (``optim.Adam``,
``torch.optim.SGD``, or a class imported from ``torch.optim``) whose parameters argument is
``X.parameters()``, ``filter(f, X.parameters())``, ``list(X.parameters())`` or a comprehension over
it sees exactly the registered parameters: tensors ``model.parameters()`` misses are never updated.
Any other argument (a concatenation, a list of groups, a variable) may add them, so it says False.
"""
from __future__ import annotations

import ast
from typing import Optional

from gradcheck_tool.static.analysis.names import ast_dotted, parse_or_none


def _from_parameters(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        name = ast_dotted(node.func)
        if name.endswith(".parameters") and not node.args:
            return True
        if name in ("list", "tuple", "filter") and node.args:
            return _from_parameters(node.args[-1])
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)) and len(node.generators) == 1:
        return _from_parameters(node.generators[0].iter)
    return False


def _optim_module(module: str) -> bool:
    """torch.optim and its optimizer modules, not its schedulers or averaging helpers."""
    return (module == "torch.optim" or module.startswith("torch.optim.")) and not any(
        part in module for part in ("lr_scheduler", "swa_utils"))


def read_optimizer_params(source: str) -> Optional[bool]:
    """True: every torch.optim constructor in ``source`` takes a model's ``.parameters()``; False: one
    takes something else; None: the file builds none (or does not parse)."""
    return optimizer_params_in(parse_or_none(source))


def optimizer_params_in(tree: Optional[ast.Module]) -> Optional[bool]:
    """``read_optimizer_params`` of a file already parsed (None: it does not parse)."""
    if tree is None:
        return None
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and _optim_module(node.module or "")
                for alias in node.names if alias.name[:1].isupper() and alias.name != "Optimizer"}
    verdicts = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast_dotted(node.func)
        module, _, leaf = name.rpartition(".")
        optimizer = (leaf[:1].isupper() and (module == "optim" or module.endswith("torch.optim"))) or name in imported
        if not optimizer or "lr_scheduler" in name:
            continue
        params = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "params"), None)
        if params is not None:
            verdicts.append(_from_parameters(params))
    return all(verdicts) if verdicts else None
