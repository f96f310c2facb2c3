"""GH120 where the init runs in a loop over the layers, not on one named layer:

    self.layers = nn.ModuleList([nn.Linear(w, w) for _ in range(depth)])
    for layer in self.layers:                      # over the container the layer went into
        nn.init.xavier_normal_(layer.weight)
    for m in self.modules():                       # over every submodule
        if isinstance(m, nn.Linear): nn.init.normal_(m.weight, std=1.0)
    self.apply(self._init_weights)                 # a function applied to every submodule

The init calls found there are the ones the planner replaces (case 1 of init_codemods); the
re-probe then verifies the whole model, since such a loop sets every layer it reaches.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from gradcheck_tool.fixes.parsed import dotted

_EVERY_MODULE = ("modules", "children")


def loop_matches(planner, small: Optional[cst.CSTNode], function: Optional[cst.FunctionDef]) -> list:
    """The init calls on a loop variable's ``.weight`` in loops that reach the constructor's layer."""
    from gradcheck_tool.fixes.init_codemods import _walk

    file = planner.file
    container = dotted(small.targets[0].target) if isinstance(small, cst.Assign) and len(small.targets) == 1 \
        else None
    klass = planner._class_of(function) if function is not None else None
    scopes = [function if function is not None else file.module]
    if klass is not None and isinstance(klass.body, cst.IndentedBlock):
        scopes += [m for m in klass.body.body if isinstance(m, cst.FunctionDef) and m is not function]
    found: list = []
    for scope in scopes:
        for node in _walk(scope, into_scopes=False):
            if isinstance(node, cst.For) and isinstance(node.target, cst.Name) and _reaches(node.iter, container):
                found.extend(planner._matches(node.body, node.target.value))
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value == "apply" and len(node.args) == 1:
                applied = _function(file, klass, node.args[0].value)
                params = applied.params.params if applied is not None else ()
                module = params[1] if params and params[0].name.value == "self" and len(params) > 1 else \
                    (params[0] if params else None)
                if module is not None:
                    found.extend(planner._matches(applied, module.name.value))
    unique = {id(m.call): m for m in found}
    return list(unique.values())


def _reaches(iterable: cst.CSTNode, container: Optional[str]) -> bool:
    """``for v in <container>`` (the ModuleList/Sequential the layer went into), or
    ``for v in X.modules()`` / ``X.children()``."""
    if container is not None and dotted(iterable) == container:
        return True
    return isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Attribute) \
        and iterable.func.attr.value in _EVERY_MODULE and not iterable.args


def _function(file, klass: Optional[cst.ClassDef], ref: cst.CSTNode) -> Optional[cst.FunctionDef]:
    """The def ``.apply(ref)`` runs: a module-level function, or ``self.method`` of the class."""
    name = dotted(ref) or ""
    if name.startswith("self.") and klass is not None and isinstance(klass.body, cst.IndentedBlock):
        return next((m for m in klass.body.body if isinstance(m, cst.FunctionDef)
                     and m.name.value == name[5:]), None)
    return next((s for s in file.module.body if isinstance(s, cst.FunctionDef) and s.name.value == name), None)
