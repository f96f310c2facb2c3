"""One walk over the parsed module, collecting the facts every static rule reads.

The walk is a plain field walk rather than a ``CSTVisitor``: libcst's visitor rebuilds
each node as it goes, which costs more than the parse itself on a long file.
"""
from __future__ import annotations

import re
from typing import Mapping, NamedTuple, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.static.analysis.names import (
    ImportMap,
    children,
    dotted,
    identifiers,
    import_aliases,
    last,
    number,
)

Scope = syntax.CSTNode  # a FunctionDef or the Module


class Site(NamedTuple):
    """A call or an assignment, and where it runs."""

    node: syntax.CSTNode  # Call, Assign or AugAssign
    scope: Scope
    loops: tuple[syntax.CSTNode, ...]  # enclosing For/While of this scope, outermost first
    statement: Optional[syntax.SimpleStatementLine]
    parent: Optional[syntax.CSTNode]
    grandparent: Optional[syntax.CSTNode]
    outer_call: Optional[syntax.Call]  # innermost call whose arguments hold this node
    name: Optional[str] = None  # resolved callee of a call: "torch.optim.Adam"
    receiver: Optional[str] = None  # dotted receiver of a method call: "self.optimizer"
    in_lambda: bool = False
    embedding_branch: bool = False  # under `if isinstance(m, nn.Embedding):`
    in_optimizer_class: bool = False  # inside a class that implements an optimizer
    # The `if` arms it runs under, scope-relative, outermost first: (If node, True for the
    # body, False for the else/elif arm); tells `if amp: ... else: ...` branches apart.
    branches: tuple[tuple[syntax.If, bool], ...] = ()

    def exclusive(self, other: "Site") -> bool:
        """Whether this site and ``other`` sit in different arms of one ``if``: never both run."""
        arms = dict(self.branches)
        return any(node in arms and arms[node] != arm for node, arm in other.branches)

    @property
    def method(self) -> str:
        return last(self.name) if self.name else attr_name(self.node)


def attr_name(node: syntax.CSTNode) -> str:
    """The method a call names, ``"step"`` for ``opt.step()``; "" when not an attribute call."""
    func = node.func if isinstance(node, syntax.Call) else None
    return func.attr.value if isinstance(func, syntax.Attribute) else ""


class FileFacts(NamedTuple):
    imports: ImportMap
    sites: tuple[Site, ...]  # calls (post-order) and assignments, in evaluation order
    values: Mapping[str, syntax.BaseExpression]  # last value bound to each dotted target
    assigned_to: Mapping[syntax.CSTNode, str]  # value expression -> its dotted target
    constants: Mapping[str, float]  # names bound once, to a numeric literal
    constant_nodes: Mapping[str, syntax.CSTNode]
    functions: Mapping[str, tuple[syntax.FunctionDef, ...]]
    owner: Mapping[syntax.FunctionDef, Optional[syntax.ClassDef]]
    defined_in: Mapping[syntax.FunctionDef, Scope]  # the scope whose body holds the def
    scopes: tuple[Scope, ...]  # the module first, then functions in source order
    loop_scope: Mapping[syntax.CSTNode, Scope]
    classes: tuple[syntax.ClassDef, ...]
    by_scope: Mapping[Scope, tuple[Site, ...]]
    by_kind: Mapping[type, tuple[Site, ...]]
    bound_once: frozenset  # dotted targets bound exactly once in the file
    # `for p in fc.parameters():` folded into the iteration around it: (scope, "p") -> iters
    parameter_loops: Mapping[tuple, tuple[syntax.BaseExpression, ...]]

    def constructed(self, target: Optional[str]) -> Optional[str]:
        """The resolved callee that built ``target`` (``self.opt = optim.Adam(...)``)."""
        value = self.values.get(target or "")
        return self.imports.resolve(value.func) if isinstance(value, syntax.Call) else None

    @property
    def calls(self) -> tuple[Site, ...]:
        return self.by_kind.get(syntax.Call, ())

    def receivers_of(self, method: str) -> frozenset[str]:
        """Every receiver a method is called on: ``receivers_of("zero_grad")``."""
        return frozenset(s.receiver for s in self.calls if s.receiver and s.method == method)


class _Walk:
    """Mutable state of one walk; it never leaves :func:`collect_facts`.

    The walk keeps its own work stack instead of recursing, so a long ``a + b + ...``
    chain cannot exhaust Python's recursion limit. A work item is either
    ``(node, parent, grandparent)`` to enter, or a callable to run once the nodes pushed
    before it are done (restoring the state a handler changed).
    """

    def __init__(self, module: syntax.Module) -> None:
        self.module = module
        self.raw: list = []
        self.aliases: dict = {}
        self.values: dict = {}
        self.assigned_to: dict = {}
        self.bindings: dict = {}  # name -> how many times it is bound
        self.functions: dict = {}
        self.owner: dict = {}
        self.defined_in: dict = {}
        self.scopes: list = []
        self.loop_scope: dict = {}
        self.classes: list = []
        self.parameter_loops: dict = {}
        self.todo: list = []
        self.scope: Optional[syntax.CSTNode] = module
        self.loops: tuple = ()
        self.statement: Optional[syntax.SimpleStatementLine] = None
        self.outer_call: Optional[syntax.Call] = None
        self.klass: Optional[syntax.ClassDef] = None
        self.lambdas = 0
        self.embedding = 0
        self.optimizer_class = 0
        self.branches: tuple = ()

    def run(self) -> None:
        self.todo.append((self.module, None, None))
        while self.todo:
            item = self.todo.pop()
            if type(item) is not tuple:  # a callable scheduled by a handler
                item()
                continue
            node, parent, grandparent = item
            special = _HANDLERS.get(type(node))
            if special is not None:
                special(self, node, parent, grandparent)
            else:
                self.push_children(node, parent)

    def then(self, *work) -> None:
        """Schedule ``work`` (nodes and callables) to run in the order given."""
        self.todo.extend(reversed(work))

    def items(self, node: syntax.CSTNode, parent, names: tuple = (), skip: tuple = ()) -> list:
        out = []
        for name in names or node.FIELDS:
            if name in skip:
                continue
            value = getattr(node, name)
            if type(value) in (list, tuple):
                out.extend((v, node, parent) for v in value if isinstance(v, syntax.CSTNode) and type(v) not in _LEAVES)
            elif isinstance(value, syntax.CSTNode) and type(value) not in _LEAVES:
                out.append((value, node, parent))
        return out

    def push_children(self, node: syntax.CSTNode, parent, **kw) -> None:
        if kw:
            self.then(*self.items(node, parent, **kw))
        else:
            self.todo.extend([(child, node, parent) for child in reversed(children(node))
                              if type(child) not in _LEAVES])

    def setter(self, **state):
        saved = {key: getattr(self, key) for key in state}

        def enter() -> None:
            for key, value in state.items():
                setattr(self, key, value)

        def leave() -> None:
            for key, value in saved.items():
                setattr(self, key, value)

        return enter, leave

    def record(self, node: syntax.CSTNode, parent, grandparent) -> None:
        self.raw.append((
            node, self.scope, self.loops, self.statement, parent, grandparent,
            self.outer_call, self.lambdas > 0, self.embedding > 0, self.optimizer_class > 0,
            self.branches,
        ))

    def bind(self, target: syntax.CSTNode, value: Optional[syntax.CSTNode]) -> None:
        if isinstance(target, (syntax.Tuple, syntax.List)):
            for element in target.elements:
                self.bind(element.value, None)
            return
        name = dotted(target)
        if name is None:
            return
        self.bindings[name] = self.bindings.get(name, 0) + 1
        if value is not None:
            self.values[name] = value
            self.assigned_to[value] = name

    def _Import(self, node, parent, grandparent) -> None:
        self.aliases.update(import_aliases(node))

    _ImportFrom = _Import

    def _FunctionDef(self, node: syntax.FunctionDef, parent, grandparent) -> None:
        self.functions.setdefault(node.name.value, []).append(node)
        self.owner[node] = self.klass
        self.defined_in[node] = self.scope
        self.scopes.append(node)
        params = node.params
        for param in (*params.posonly_params, *params.params, *params.kwonly_params,
                      params.star_arg, params.star_kwarg):
            if isinstance(param, syntax.Param):  # a parameter is never a constant
                self.bindings[param.name.value] = self.bindings.get(param.name.value, 0) + 2
        enter, leave = self.setter(scope=node, loops=(), klass=None, outer_call=None, branches=())
        self.then(enter, *self.items(node, parent), leave)

    def _ClassDef(self, node: syntax.ClassDef, parent, grandparent) -> None:
        self.classes.append(node)
        implements_optimizer = any(
            "Optimizer" in name for base in node.bases for name in identifiers(base))
        enter, leave = self.setter(
            klass=node, optimizer_class=self.optimizer_class + implements_optimizer)
        self.then(enter, *self.items(node, parent), leave)

    def _Lambda(self, node: syntax.Lambda, parent, grandparent) -> None:
        enter, leave = self.setter(lambdas=self.lambdas + 1)
        self.then(enter, *self.items(node, parent), leave)

    def _loop(self, node: syntax.CSTNode, parent, header: tuple[str, ...]) -> None:
        self.loop_scope[node] = self.scope
        loops = self.loops
        if not (isinstance(node, syntax.For) and _iterates_parameters(node.iter)):
            loops = (*loops, node)
        elif isinstance(node.target, syntax.Name):
            key = (self.scope, node.target.value)
            self.parameter_loops[key] = (*self.parameter_loops.get(key, ()), node.iter)
        enter, leave = self.setter(loops=loops)
        self.then(*self.items(node, parent, names=header), enter,
                  *self.items(node, parent, skip=header), leave)

    def _For(self, node: syntax.For, parent, grandparent) -> None:
        self.bind(node.target, None)
        self._loop(node, parent, ("target", "iter"))

    def _While(self, node: syntax.While, parent, grandparent) -> None:
        self._loop(node, parent, ())

    def _If(self, node: syntax.If, parent, grandparent) -> None:
        guarded = any("Embedding" in name for name in identifiers(node.test))
        enter, leave = self.setter(embedding=self.embedding + guarded,
                                   branches=(*self.branches, (node, True)))
        enter_else, leave_else = self.setter(branches=(*self.branches, (node, False)))
        self.then(*self.items(node, parent, names=("test",)), enter,
                  *self.items(node, parent, names=("body",)), leave, enter_else,
                  *self.items(node, parent, names=("orelse",)), leave_else)

    def _SimpleStatementLine(self, node, parent, grandparent) -> None:
        enter, leave = self.setter(statement=node)
        self.then(enter, *self.items(node, parent), leave)

    def _Call(self, node: syntax.Call, parent, grandparent) -> None:
        enter, leave = self.setter(outer_call=node)
        self.then(*self.items(node, parent, names=("func",)), enter,
                  *self.items(node, parent, names=("args",)), leave,
                  lambda: self.record(node, parent, grandparent))

    def _assignment(self, node, parent, grandparent, targets, value) -> None:
        def bind() -> None:
            for target in targets:
                self.bind(target, value)
            self.record(node, parent, grandparent)

        self.then(*self.items(node, parent), bind)

    def _Assign(self, node: syntax.Assign, parent, grandparent) -> None:
        self._assignment(node, parent, grandparent, [t.target for t in node.targets], node.value)

    def _AnnAssign(self, node: syntax.AnnAssign, parent, grandparent) -> None:
        self._assignment(node, parent, grandparent, [node.target], node.value)

    def _AugAssign(self, node: syntax.AugAssign, parent, grandparent) -> None:
        self._assignment(node, parent, grandparent, [node.target], None)


# Node types whose handler changes the walk's state; every other node just walks its children.
_HANDLERS = {
    getattr(syntax, name[1:]): method for name, method in vars(_Walk).items()
    if name[1:2].isupper() and hasattr(syntax, name[1:])
}


# Nodes that never hold another node and have no handler: the walk does not visit them.
_LEAVES = frozenset({syntax.Name, syntax.Integer, syntax.Float, syntax.Imaginary, syntax.SimpleString,
                     *(kind for kind in vars(syntax).values() if isinstance(kind, type)
                       and issubclass(kind, syntax.CSTNode) and not kind.FIELDS)}) - set(_HANDLERS)


# Iterables that fan one update out over tensors. Only these exact spellings count: a
# loop over `range(opt.steps)` or `enumerate(loader)` is a training loop even though a
# name in it mentions "opt" (an argparse namespace) or "param" (`hparams`).
_PARAMETER_METHODS = frozenset({"parameters", "named_parameters"})
_PARAMETER_NAME = re.compile(r"^(params|grads|parameters|param_groups|\w+_params)$")
_WRAPPERS = frozenset({"enumerate", "zip", "reversed", "list", "tuple", "sorted", "filter"})


def _iterates_parameters(iterable: syntax.BaseExpression) -> bool:
    """``for p in model.parameters()`` and friends only fan one update out over tensors:
    they are part of the surrounding iteration, not a training loop of their own."""
    if isinstance(iterable, (syntax.List, syntax.Tuple)):
        return True  # `for w in [w1, w2]:`
    if isinstance(iterable, syntax.Call):
        func = iterable.func
        if isinstance(func, syntax.Attribute) and func.attr.value in _PARAMETER_METHODS:
            return True
        # `enumerate(model.parameters())`, `zip(params, grads)`: look through the wrapper.
        if isinstance(func, syntax.Name) and func.value in _WRAPPERS:
            return any(_iterates_parameters(a.value) for a in iterable.args
                       if a.keyword is None and not a.star)
        return False
    if isinstance(iterable, syntax.Subscript):  # group["params"]
        key = iterable.slice[0].slice if len(iterable.slice) == 1 else None
        value = key.value if isinstance(key, syntax.Index) else None
        text = value.evaluated_value if isinstance(value, syntax.SimpleString) else None
        return isinstance(text, str) and bool(_PARAMETER_NAME.match(text))
    return bool(_PARAMETER_NAME.match(last(dotted(iterable))))


def collect_facts(module: syntax.Module) -> FileFacts:
    state = _Walk(module)
    state.scopes.append(module)
    state.run()
    imports = ImportMap(dict(state.aliases))
    sites = []
    for node, scope, loops, statement, parent, grandparent, outer, in_lambda, emb, opt, arms in state.raw:
        name = receiver = None
        if isinstance(node, syntax.Call):
            name = imports.resolve(node.func)
            if isinstance(node.func, syntax.Attribute):
                receiver = imports.resolve(node.func.value)
        sites.append(Site(node, scope, loops, statement, parent, grandparent, outer, name,
                          receiver, in_lambda, emb, opt, arms))
    constants, constant_nodes = {}, {}
    for name, value in state.values.items():
        literal = number(value) if state.bindings.get(name) == 1 and "." not in name else None
        if literal is not None:
            constants[name], constant_nodes[name] = literal, value
    by_scope: dict = {}
    by_kind: dict = {}
    for site in sites:
        by_scope.setdefault(site.scope, []).append(site)
        by_kind.setdefault(type(site.node), []).append(site)
    return FileFacts(
        imports=imports,
        sites=tuple(sites),
        values=state.values,
        assigned_to=state.assigned_to,
        constants=constants,
        constant_nodes=constant_nodes,
        functions={k: tuple(v) for k, v in state.functions.items()},
        owner=state.owner,
        defined_in=state.defined_in,
        scopes=tuple(state.scopes),
        loop_scope=state.loop_scope,
        classes=tuple(state.classes),
        by_scope={k: tuple(v) for k, v in by_scope.items()},
        by_kind={k: tuple(v) for k, v in by_kind.items()},
        bound_once=frozenset(k for k, n in state.bindings.items() if n == 1),
        parameter_loops=state.parameter_loops,
    )
