"""The clipping call GH201 proposes, spelled for the framework that runs backward().

``loss.backward()`` gets torch's ``clip_grad_norm_``. ``accelerator.backward(loss)`` gets
``accelerator.clip_grad_norm_``, and ``fabric.backward(loss)`` gets
``fabric.clip_gradients``: under fp16 those frameworks hold scaled gradients, and only
their own clipping unscales them first (torch's would clip the scaled values).

Every name the call uses must mean, where the clip goes, what it means where it was
found. When one cannot be vouched for, the proposal is advice, never an edit, and names
only what exists at the step: the tensors a hand-written update updates (``[w1, w2]``,
``fc.parameters()``), ``model`` / ``self.model`` where bound there, else ``<model>``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Edit, Position
from gradcheck_tool.static.analysis.context import SourceContext, standalone
from gradcheck_tool.static.analysis.events import Event, Iteration, Kind
from gradcheck_tool.static.analysis.facts import Scope
from gradcheck_tool.static.analysis.names import dotted, last

_PARAMETERS = ".parameters()"


class Proposal(NamedTuple):
    call: str  # the clipping call, as it would be written
    editable: bool  # every name in it is known to be in scope at the step


def propose(ctx: SourceContext, it: Iteration, step: Event) -> Proposal:
    params = _updated_tensors(ctx, it) if step.manual else _optimizer_parameters(ctx, step)
    fallback = (_updated_tensors(ctx, it) if step.manual else None) or (
        _model(ctx, step.site.scope) + _PARAMETERS)
    framework = _framework(ctx, it, step)
    if framework is not None:
        kind, receiver, visible = framework
        editable = visible and params is not None
        if kind == "fabric":
            source = params or fallback
            module = source[: -len(_PARAMETERS)] if source.endswith(_PARAMETERS) else "<model>"
            optimizer = step.target or "<optimizer>"
            return Proposal(f"{receiver}.clip_gradients({module}, {optimizer}, max_norm=1.0)",
                            editable)
        return Proposal(f"{receiver}.clip_grad_norm_({params or fallback}, max_norm=1.0)",
                        editable)
    imports = ctx.facts.imports
    torch, nn = imports.local_name("torch"), imports.local_name("torch.nn")
    prefix = f"{torch}.nn.utils" if torch else f"{nn}.utils" if nn else None
    return Proposal(f"{prefix or 'torch.nn.utils'}.clip_grad_norm_({params or fallback}, "
                    "max_norm=1.0)", prefix is not None and params is not None)


def insertion(ctx: SourceContext, it: Iteration, step: Event, text: str) -> Optional[Edit]:
    """Where the clip goes: right before ``optimizer.step()``; for a hand-written update, right
    before the statement after ``backward()`` that holds it (``with torch.no_grad():`` or
    ``for p in model.parameters():``), so the clip runs once per step, not once per tensor."""
    if not step.manual:
        return ctx.insert_lines(step.site, text)
    backwards = [e for e in it.events[:it.index(step)] if e.kind is Kind.BACKWARD and not e.via]
    if step.via or not backwards or not standalone(backwards[-1].site):
        return None
    blocks = _Blocks()
    it.node.visit(blocks)
    backward = backwards[-1].site.statement
    holder = blocks.where.get(backward)
    statement: Optional[syntax.CSTNode] = step.site.statement
    while statement is not None and blocks.where.get(statement, (None,))[0] is not (holder or (None,))[0]:
        statement = blocks.owner.get(blocks.where.get(statement, (None,))[0])
    if statement is None or holder is None or blocks.where[statement][1] <= holder[1]:
        return None
    indent, where = ctx.indent(statement), ctx.positions.get(statement)
    if indent is None or where is None:
        return None
    row = where.start.line - _comment_lines(statement)
    body = "".join(f"{indent}{line}\n" for line in text.splitlines())
    return Edit(content=body, location=Position(row, 1), end_location=Position(row, 1))


class _Blocks(syntax.CSTVisitor):
    """Each statement's block and index in it, and each block's compound statement."""

    def __init__(self) -> None:
        super().__init__()
        self.where: dict = {}
        self.owner: dict = {}
        self._stack: list = []

    def on_visit(self, node: syntax.CSTNode) -> bool:
        if isinstance(node, (syntax.Module, syntax.IndentedBlock)):
            for index, statement in enumerate(node.body):
                self.where[statement] = (node, index)
        if isinstance(node, syntax.BaseCompoundStatement):
            self._stack.append(node)
        elif isinstance(node, syntax.IndentedBlock) and self._stack:
            self.owner[node] = self._stack[-1]
        return True

    def on_leave(self, original_node: syntax.CSTNode) -> None:
        if isinstance(original_node, syntax.BaseCompoundStatement):
            self._stack.pop()


def _comment_lines(statement: syntax.CSTNode) -> int:
    """Comment lines right above a statement (no blank line between): the clip goes above them."""
    count = 0
    for line in reversed(getattr(statement, "leading_lines", ())):
        if line.comment is None:
            break
        count += 1
    return count


def _optimizer_parameters(ctx: SourceContext, step: Event) -> Optional[str]:
    """``model.parameters()`` as the optimizer was built from it, when that expression
    means the same thing at the step: ``self.`` always does; a local name only in the
    scope that built the optimizer (or a module-level one nothing shadows)."""
    built = next((s for s in ctx.facts.calls if s.node is ctx.facts.values.get(step.target)), None)
    if built is None or not built.node.args or built.node.args[0].keyword:
        return None
    params = ctx.code(built.node.args[0].value)
    if not params.endswith(_PARAMETERS):
        return None
    scope = step.site.scope
    if isinstance(scope, syntax.FunctionDef) and isinstance(built.scope, syntax.Module) and (
            (step.target or "").partition(".")[0] in _parameters(scope)):
        # The optimizer arrives as an argument: the model is the one its callers pass too
        # (`train_iter(epoch, gat_net, optimizer)` -> `model.parameters()`), never the global.
        passed = _passed_as(ctx, scope, params[: -len(_PARAMETERS)])
        return f"{passed}{_PARAMETERS}" if passed else None
    return params if _visible(params, built.scope, scope) else None


def _passed_as(ctx: SourceContext, function: syntax.FunctionDef, expression: str) -> Optional[str]:
    """The parameter of ``function`` that every call of it in the file passes ``expression`` to."""
    params = function.params
    positional = [p.name.value for p in (*params.posonly_params, *params.params)]
    chosen: set = set()
    for site in ctx.facts.sites:
        call = site.node
        if not isinstance(call, syntax.Call) or dotted(call.func) != function.name.value:
            continue
        names = set()
        for index, arg in enumerate(call.args):
            if arg.star:
                break
            if ctx.code(arg.value) == expression:
                names.add(arg.keyword.value if arg.keyword else
                          positional[index] if index < len(positional) else None)
        if len(names) != 1 or None in names:
            return None
        chosen |= names
    return chosen.pop() if len(chosen) == 1 else None


def _updated_tensors(ctx: SourceContext, it: Iteration) -> Optional[str]:
    """What hand-written updates update: ``[w1, w2]`` for tensors the file creates by name
    (``w1 -= lr * w1.grad``), ``fc.parameters()`` for ``for p in fc.parameters(): p...``;
    None for a mix, or a tensor of unknown origin."""
    names: list = []
    loops: set = set()
    for step in it.of(Kind.STEP):
        if not step.manual:
            continue
        node = step.node
        if isinstance(node, syntax.AugAssign):
            tensor = node.target
        elif isinstance(node, syntax.Assign):
            tensor = node.targets[0].target
        elif isinstance(node, syntax.Call) and isinstance(node.func, syntax.Attribute):
            tensor = node.func.value
        else:
            return None
        if isinstance(tensor, syntax.Attribute) and tensor.attr.value == "data":
            tensor = tensor.value
        name = dotted(tensor)
        if name in ctx.facts.values:
            names.append(name)
            continue
        over = _parameter_loop(ctx, step.site.scope, name)
        if over is None:
            return None
        loops.add(over)
    if names and not loops:
        return f"[{', '.join(dict.fromkeys(names))}]"
    return loops.pop() if len(loops) == 1 and not names else None


def _parameter_loop(ctx: SourceContext, scope: Scope, name: Optional[str]) -> Optional[str]:
    """``fc.parameters()`` where ``name`` is the variable of ``for name in fc.parameters()``
    in this scope (a loop the facts fold into the iteration around it)."""
    found = {ctx.code(i) for i in ctx.facts.parameter_loops.get((scope, name), ())}
    return found.pop() if len(found) == 1 and next(iter(found)).endswith(_PARAMETERS) else None


def _framework(ctx: SourceContext, it: Iteration,
               step: Event) -> Optional[tuple[str, str, bool]]:
    """("accelerate" | "fabric", the receiver as written, whether it is in scope at the
    step) when the iteration's backward() goes through Accelerate or Fabric."""
    for backward in it.of(Kind.BACKWARD):
        func = backward.node.func
        receiver = backward.site.receiver or ""
        made, leaf = ctx.facts.constructed(receiver) or "", last(receiver).lower()
        if "accelerator" in leaf or last(made) == "Accelerator":
            kind = "accelerate"
        elif "fabric" in leaf or last(made) == "Fabric":
            kind = "fabric"
        else:
            continue
        written = ctx.code(func.value) if isinstance(func, syntax.Attribute) else receiver
        return kind, written, _visible(written, backward.site.scope, step.site.scope)
    return None


def _visible(expression: str, written_in: Scope, used_in: Scope) -> bool:
    root = expression.partition(".")[0]
    return root == "self" or written_in is used_in or (
        isinstance(written_in, syntax.Module) and root not in _parameters(used_in))


def _model(ctx: SourceContext, scope: Scope) -> str:
    """What advice may call the model: ``model`` where that name is bound at the step,
    ``self.model`` in a method of a class that sets it, else a ``<model>`` placeholder."""
    if "model" in _parameters(scope) or _assigns(ctx, {scope, ctx.module}, "model"):
        return "model"
    klass = ctx.facts.owner.get(scope) if isinstance(scope, syntax.FunctionDef) else None
    methods = {f for f, owner in ctx.facts.owner.items() if owner is klass and klass is not None}
    if _assigns(ctx, methods, "self.model"):
        return "self.model"
    return "<model>"


def _assigns(ctx: SourceContext, scopes, name: str) -> bool:
    return any(isinstance(site.node, syntax.Assign) and any(
        name in _targets(t.target) for t in site.node.targets)
        for where in scopes for site in ctx.facts.by_scope.get(where, ()))


def _targets(target: syntax.CSTNode) -> set[str]:
    if isinstance(target, (syntax.Tuple, syntax.List)):
        return {n for e in target.elements for n in _targets(e.value)}
    return {dotted(target) or ""}


def _parameters(scope: syntax.CSTNode) -> set[str]:
    if not isinstance(scope, syntax.FunctionDef):
        return set()
    params = scope.params
    return {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
