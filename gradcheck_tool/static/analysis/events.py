"""Training iterations: each loop (or step function) with its ordered training events.

An event is one of backward / clip / unscale / step / zero_grad. Calls to helper
functions defined in the same file (``train_step(batch)``, ``self._update()``, an LBFGS
``closure`` passed to ``step``) are inlined where they are called, so a loop that
delegates its update still reads as one iteration.
"""
from __future__ import annotations

import enum
import re
from typing import NamedTuple, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.static.analysis.facts import FileFacts, Scope, Site
from gradcheck_tool.static.analysis.names import dotted, identifiers, last, number, subtree

CLIP_FUNCTIONS = frozenset({
    "clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "clip_grads_with_norm_",
    "clip_gradients",  # lightning.Fabric
})
# Frameworks wrap clipping under their own names (timm's `dispatch_clip_grad`,
# `accelerator.clip_grad_norm_`, `fabric.clip_gradients`): any such callee clips too.
_CLIP_NAME = re.compile(r"clip_grad|clip_gradients|clip_norm")
CLIP_TRIGGER = r"clip_grad|clip_gradients|clamp_\("  # source text without which no clipping rule can fire
# ...or take it as configuration of a call that backpropagates and steps by itself:
# timm's `loss_scaler(loss, opt, clip_grad=...)`, Lightning's `Trainer(gradient_clip_val=...)`.
_CLIP_KEYWORDS = frozenset({"clip_grad", "max_grad_norm", "gradient_clip_val"})
_NOT_AN_OPTIMIZER = re.compile(r"sched|env|game|sim|trainer", re.IGNORECASE)
_GRAD_NAME = re.compile(r"^(g|grads?|gradients?|\w+_grads?)$")
_UPDATE_METHODS = frozenset({"add_", "sub_", "addcdiv_", "addcmul_", "copy_"})
_BACKWARD_METHODS = frozenset({"backward", "manual_backward"})  # manual_backward: Lightning
_INLINE_DEPTH = 3
_INLINE_BUDGET = 2000


class Kind(str, enum.Enum):
    BACKWARD = "backward"
    CLIP = "clip"
    UNSCALE = "unscale"
    STEP = "step"
    ZERO_GRAD = "zero_grad"


class Event(NamedTuple):
    kind: Kind
    site: Site
    loops: tuple[syntax.CSTNode, ...]  # enclosing loops, relative to the scope being read
    amp: bool = False  # through a GradScaler: scaler.scale(loss).backward(), scaler.step(opt)
    manual: bool = False  # a hand-written update such as p.data.add_(p.grad, alpha=-lr)
    target: str = ""  # the optimizer (or scaler) involved, as written
    closure: bool = False  # `optimizer.step(closure)`: the closure runs backward (LBFGS)
    managed: bool = False  # clipping configured by keyword; the callee decides when it runs
    via: tuple[syntax.Call, ...] = ()  # helper calls this event was inlined through
    helpers: tuple[syntax.FunctionDef, ...] = ()  # the functions those calls ran
    outer_branches: tuple = ()  # the `if` arms of the calls it was inlined through

    @property
    def node(self) -> syntax.CSTNode:
        return self.site.node

    @property
    def branches(self) -> tuple:
        """Every ``if`` arm this event runs under, the callers' first: (If, in its body)."""
        return self.outer_branches + self.site.branches

    @property
    def on_grad(self) -> bool:
        return _on_grad(self.site.receiver)

    def unscale_call(self) -> str:
        """For a scaler's step (``scaler.step(opt)``): the ``scaler.unscale_(opt)`` it needs first."""
        return f"{self.site.receiver}.unscale_({self.target})"


class Iteration(NamedTuple):
    """One training iteration: a loop body (or a step function) and its events in order."""

    node: syntax.CSTNode  # For / While / FunctionDef / Module
    events: tuple[Event, ...]
    scope_events: tuple[Event, ...]  # everything in the enclosing function, for "anywhere" checks

    @property
    def is_loop(self) -> bool:
        return isinstance(self.node, (syntax.For, syntax.While))

    def of(self, *kinds: Kind) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.kind in kinds)

    def placed_clips(self) -> tuple[Event, ...]:
        """Clipping calls that act where they are written: not a `clip_grad=` option, which
        its callee applies at the right point of its own backward/step."""
        return tuple(e for e in self.of(Kind.CLIP) if not e.managed)

    def index(self, event: Event) -> int:
        return next(i for i, e in enumerate(self.events) if e is event)

    def scaler_step(self) -> Optional[Event]:
        """The ``scaler.step(optimizer)`` of an AMP iteration, when written on a named scaler."""
        return next((e for e in self.of(Kind.STEP) if e.amp and e.site.receiver), None)


def clips_raw_grads(clip: Event) -> bool:
    """torch's clipping functions and ``p.grad.clamp_``, as opposed to framework wrappers
    (``accelerator.clip_grad_norm_``) that unscale by themselves."""
    name = clip.site.name or ""
    return name.startswith(("torch.", "nn.")) or "." not in name or clip.on_grad


def _on_grad(receiver: Optional[str]) -> bool:
    """A method called on a gradient tensor: ``p.grad.clamp_()``, ``p.grad.data.zero_()``."""
    return (receiver or "").endswith((".grad", ".grad.data"))


def _mentions_grad(node: syntax.CSTNode) -> bool:
    return any(n == "grad" or _GRAD_NAME.match(n) for n in identifiers(node))


def _is_scaler(receiver: Optional[str], facts: FileFacts) -> bool:
    made = facts.constructed(receiver)
    return "scaler" in last(receiver).lower() or (made is not None and "GradScaler" in made)


def is_optimizer(receiver: Optional[str], facts: FileFacts) -> bool:
    """Whether ``receiver.step()`` updates parameters (not a scheduler or a gym env)."""
    if not receiver:
        return False
    made = facts.constructed(receiver) or ""
    if "lr_scheduler" in made or "Scheduler" in made:
        return False
    if made.startswith(("torch.optim.", "optim.")):
        return True
    leaf = last(receiver)
    if _NOT_AN_OPTIMIZER.search(leaf):
        return False
    return "opt" in leaf.lower() or receiver in facts.receivers_of("zero_grad")


def classify(site: Site, facts: FileFacts, module: syntax.Module) -> Optional[Event]:
    node = site.node
    if site.in_lambda:
        return None
    if isinstance(node, syntax.Assign):
        # `p.grad = None` zeroes; `p.grad = g` overwrites: either way nothing accumulates.
        if any(isinstance(t.target, syntax.Attribute) and t.target.attr.value == "grad"
               for t in node.targets):
            return Event(Kind.ZERO_GRAD, site, site.loops)
        if len(node.targets) == 1 and _owns_grad(node.targets[0].target, node.value, module):
            return _manual(site)  # w = w - lr * w.grad
        return None
    if isinstance(node, syntax.AnnAssign):
        if node.value is not None and _owns_grad(node.target, node.value, module):
            return _manual(site)
        return None
    if isinstance(node, syntax.AugAssign):
        # `w -= lr * w.grad`; a `+=` only with the target's own .grad, since
        # `norm += p.grad.norm() ** 2` is bookkeeping, not an update.
        if isinstance(node.operator, syntax.SubtractAssign) and not _mentions_grad(
                node.target) and _mentions_grad(node.value):
            return _manual(site)
        if isinstance(node.operator, syntax.AddAssign) and _owns_grad(node.target, node.value, module):
            return _manual(site)
        return None
    method = site.method
    func = node.func
    receiver_node = func.value if isinstance(func, syntax.Attribute) else None
    if method in _BACKWARD_METHODS and receiver_node is not None:
        scaled = isinstance(receiver_node, syntax.Call) and isinstance(
            receiver_node.func, syntax.Attribute) and receiver_node.func.attr.value == "scale"
        return Event(Kind.BACKWARD, site, site.loops, amp=scaled)
    on_grad = _on_grad(site.receiver)
    if method in CLIP_FUNCTIONS or _CLIP_NAME.search(method) or (method in ("clamp_", "clip_") and on_grad):
        return Event(Kind.CLIP, site, site.loops)
    if any(a.keyword and a.keyword.value in _CLIP_KEYWORDS and not _disabled(a.value)
           for a in node.args):
        return Event(Kind.CLIP, site, site.loops, managed=True)
    if method == "unscale_":
        return Event(Kind.UNSCALE, site, site.loops, amp=True, target=_first_arg(node, module))
    zeroing = method in ("zero_", "fill_") or (method == "mul_" and _first_arg(node, module) == "0")
    if method in ("zero_grad", "_foreach_zero_") or (on_grad and zeroing):
        return Event(Kind.ZERO_GRAD, site, site.loops, target=site.receiver or "")
    if method == "step":
        positional = [a for a in node.args if a.keyword is None and not a.star]
        if positional and _is_scaler(site.receiver, facts):
            return Event(Kind.STEP, site, site.loops, amp=True,
                         target=module.code_for_node(positional[0].value))
        if is_optimizer(site.receiver, facts):
            closure = bool(positional) or any(
                a.keyword is not None and a.keyword.value == "closure" for a in node.args)
            return Event(Kind.STEP, site, site.loops, target=site.receiver or "", closure=closure)
        return None
    # In-place updates: `p.data.add_(p.grad, alpha=-lr)`, `torch._foreach_add_(ps, gs, ...)`.
    if method in _UPDATE_METHODS and receiver_node is not None and dotted(receiver_node) != "torch":
        updated, read = [receiver_node], [a.value for a in node.args]
    elif method in ("_foreach_add_", "_foreach_sub_") and len(node.args) >= 2:
        updated, read = [node.args[0].value], [node.args[1].value]
    else:
        return None
    if not _mentions_grad(updated[0]) and any(_mentions_grad(v) for v in read):
        return _manual(site)
    return None


def _disabled(value: syntax.BaseExpression) -> bool:
    """``clip_grad=None`` / ``max_grad_norm=0``: the option written out, switched off."""
    return dotted(value) in ("None", "False") or number(value) == 0


def _manual(site: Site) -> Optional[Event]:
    # An optimizer's own step() is made of such updates; it is not a training loop.
    if site.in_optimizer_class:
        return None
    return Event(Kind.STEP, site, site.loops, manual=True)


def _owns_grad(target: syntax.CSTNode, value: syntax.CSTNode, module: syntax.Module) -> bool:
    """Whether ``value`` reads the gradient of ``target`` itself (``w.grad`` for ``w`` or
    ``w.data``): what tells an update apart from ``x = torch.autograd.grad(...)``."""
    if value.pos is not None and "grad" not in module.source.segment(value.pos):
        return False  # most assignments: no walk of the value's tree
    root = (dotted(target) or "").partition(".")[0]
    if not root or _mentions_grad(target):
        return False
    return any(isinstance(n, syntax.Attribute) and n.attr.value == "grad"
               and (dotted(n.value) or "").partition(".")[0] == root for n in subtree(value))


def _first_arg(node: syntax.Call, module: syntax.Module) -> str:
    return module.code_for_node(node.args[0].value) if node.args else ""


def _helpers(site: Site, facts: FileFacts) -> list[syntax.FunctionDef]:
    """Functions of this file that run when this call runs (itself, or closures passed in)."""
    node = site.node
    if not isinstance(node, syntax.Call):
        return []
    found = []
    for arg in node.args:
        if isinstance(arg.value, syntax.Name):
            found.extend(_resolve_function(arg.value.value, None, site, facts))
    func = node.func
    if isinstance(func, syntax.Name):
        found.extend(_resolve_function(func.value, None, site, facts))
    elif isinstance(func, syntax.Attribute) and dotted(func.value) in ("self", "cls"):
        found.extend(_resolve_function(func.attr.value, "self", site, facts))
    return found


def _resolve_function(name: str, on: Optional[str], site: Site, facts: FileFacts):
    """The one function a call means, or nothing when that is ambiguous: a method of the
    caller's class for ``self.name()``; for ``name()``, a function defined in the calling
    scope (an LBFGS closure) before one defined at module level."""
    candidates = facts.functions.get(name)
    if not candidates:
        return []
    if on == "self":
        klass = facts.owner.get(site.scope) if isinstance(site.scope, syntax.FunctionDef) else None
        same_class = [f for f in candidates if facts.owner.get(f) is klass and klass is not None]
        candidates = same_class or candidates
    else:
        plain = [f for f in candidates if facts.owner.get(f) is None]
        local = [f for f in plain if facts.defined_in.get(f) is site.scope]
        candidates = local or [f for f in plain if isinstance(facts.defined_in.get(f), syntax.Module)]
    return candidates[:1] if len(candidates) == 1 else []


class _Reader:
    """Reads scopes' events for one training_iterations() call, then is dropped."""

    def __init__(self, facts: FileFacts, module: syntax.Module) -> None:
        self.facts = facts
        self.module = module
        self.memo: dict = {}  # scope -> its complete events
        self.budget = _INLINE_BUDGET  # helper expansions left; bounds mutually recursive code

    def events(self, scope: Scope, active: tuple) -> tuple[tuple[Event, ...], bool]:
        """A scope's events with helpers inlined, and whether inlining went all the way
        (a result cut short by the depth limit or a recursive call is not memoised)."""
        if scope in self.memo:
            return self.memo[scope], True
        out: list[Event] = []
        complete = True
        for site in self.facts.by_scope.get(scope, ()):
            inlined = False
            for helper in _helpers(site, self.facts):
                if helper in active or len(active) > _INLINE_DEPTH or self.budget <= 0:
                    complete = False
                    continue
                self.budget -= 1
                inner_events, inner_complete = self.events(helper, (*active, helper))
                complete = complete and inner_complete
                inlined = inlined or helper.name.value == site.method  # the callee itself
                out.extend(inner._replace(loops=site.loops + inner.loops,
                                          via=(site.node, *inner.via), helpers=(helper, *inner.helpers),
                                          outer_branches=site.branches + inner.outer_branches)
                           for inner in inner_events)
            event = classify(site, self.facts, self.module)
            # A clipping-like name that is a helper of this file (`self.clip_gradients()`)
            # is judged by its body, just inlined above, not by its name.
            if event is not None and not (inlined and event.kind is Kind.CLIP):
                out.append(event)
        if complete:
            self.memo[scope] = tuple(out)
        return tuple(out), complete


def _training_loop(step: Event, backward_loops: set) -> syntax.CSTNode:
    """The loop a step belongs to: the innermost one that also runs backward(). A loop
    that only steps (`for opt in optimizers: opt.step()`) fans the update out; it is
    part of the iteration around it. With no backward() in sight, the innermost loop."""
    return next((loop for loop in reversed(step.loops) if loop in backward_loops),
                step.loops[-1])


def training_iterations(facts: FileFacts, module: syntax.Module) -> tuple[Iteration, ...]:
    reader = _Reader(facts, module)
    per_scope = {scope: reader.events(scope, (scope,))[0] for scope in facts.scopes}
    # A helper inlined into some loop is judged there, with its caller's context.
    inlined_in_loop = {h for events in per_scope.values() for e in events if e.loops
                       for h in e.helpers}
    found: dict[syntax.CSTNode, Iteration] = {}
    for scope, events in per_scope.items():
        steps = [e for e in events if e.kind is Kind.STEP]
        backward_loops = {loop for e in events if e.kind is Kind.BACKWARD for loop in e.loops}
        for loop in dict.fromkeys(_training_loop(e, backward_loops) for e in steps if e.loops):
            unit = Iteration(loop, tuple(e for e in events if loop in e.loops), events)
            # A hand-written update with no backward() in sight is an optimizer's own
            # arithmetic (torch.optim's functional kernels), not a training loop.
            if not unit.of(Kind.BACKWARD) and all(e.manual for e in unit.of(Kind.STEP)):
                continue
            # The same loop is reached from its own scope and from every caller; the
            # lexical scope is the one whose "enclosing function" checks make sense.
            if loop not in found or facts.loop_scope.get(loop) is scope:
                found[loop] = unit
        # A function is a training step only if it also runs backward(): a wrapper that
        # just forwards to optimizer.step() is judged where it is called, if anywhere.
        if (any(not e.loops for e in steps) and scope not in inlined_in_loop
                and any(e.kind is Kind.BACKWARD for e in events)):
            found[scope] = Iteration(scope, events, events)
    return tuple(found.values())
