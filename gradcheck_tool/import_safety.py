"""Would importing this file train something?  Then the probe must not import it.

A script whose training loop sits at module level (not in a function, not under
``if __name__ == "__main__":``) runs that loop the moment it is imported, and so does one
that calls, at module level, a function of its own that trains (pytorch/examples'
word_language_model: ``try: for epoch in ...: train()``).  The probe refuses such files with
an explanation; the static rules still read them.
"""
from __future__ import annotations

import ast
from typing import Optional

_TRAINING_CALLS = {"backward", "fit"}  # loss.backward(), trainer.fit(model)


def _is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _module_level(statements: list[ast.stmt]):
    """Module-level statements, descending into control flow but not into defs, classes or the main guard."""
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or _is_main_guard(node):
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from _module_level([c for c in children if isinstance(c, ast.stmt)] +
                                         [s for h in children if isinstance(h, ast.ExceptHandler) for s in h.body])


def _trains(call: ast.AST, training_functions: set[str]) -> bool:
    if not isinstance(call, ast.Call):
        return False
    if isinstance(call.func, ast.Attribute):
        return call.func.attr in _TRAINING_CALLS
    return isinstance(call.func, ast.Name) and call.func.id in training_functions


def _training_functions(tree: ast.Module) -> set[str]:
    """Module-level functions that train when called, directly or through one another."""
    bodies = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found: set[str] = set()
    while True:
        more = {name for name, node in bodies.items() if name not in found
                and any(_trains(call, found) for call in ast.walk(node))}
        if not more:
            return found
        found |= more


def training_at_import(source: str) -> Optional[str]:
    """'line N: `loss.backward()`' for the first training call run at import, else None."""
    try:
        tree = ast.parse(source)
        training_functions = _training_functions(tree)
        for statement in _module_level(tree.body):
            for node in _own_expressions(statement):
                for call in ast.walk(node):
                    if _trains(call, training_functions):
                        return f"line {call.lineno}: `{ast.unparse(call)}`"
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return None


def _own_expressions(statement: ast.stmt):
    """The expressions a statement evaluates itself (its nested statements are visited separately)."""
    for name, value in ast.iter_fields(statement):
        if name in ("body", "orelse", "finalbody", "handlers"):
            continue
        values = value if isinstance(value, list) else [value]
        yield from (v for v in values if isinstance(v, ast.AST) and not isinstance(v, ast.stmt))
