"""GH120 codemods: rewrite the initialisation the probe found mismatched with its activation.

A runtime GH120 finding points at the constructor call that built the first offending layer
(``nn.Linear(width, width)`` in ``linear = nn.Linear(width, width)``).  From there:

1. **Explicit init present**: the init call(s) that set ``<target>.weight`` in the same
   scope (``nn.init.X_(v.weight, ...)``, ``init.X_(...)``, ``v.weight.data.normal_(...)``,
   ``v.weight.normal_()``) are replaced by the init that fits the activation.
2. **PyTorch default** (no init call): inside a module's ``__init__``, a module-level
   ``_gradhealth_init`` is added and applied at the end of ``__init__``; in a function,
   the init call goes right after the constructor statement, or, for a layer built inline
   (``model = nn.Sequential(nn.Linear(...), ...)``), ``_gradhealth_init`` is applied to the
   assigned or returned model.
3. **Init in a loop** over the layers (``for layer in self.layers:``, ``for m in
   self.modules():``, ``self.apply(fn)``): those init calls are replaced (``init_loops``).
4. Anything else keeps its display-only advice: no edit is ever guessed.

Edits are text splices (1-based, end-exclusive, character columns) computed from libcst
positions, so everything outside the replaced call or the inserted lines is untouched.
Running the codemod on its own output yields no edits.  Not a hot path: it runs once per
GH120 finding, and only a file with one is parsed.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Optional, Sequence, Union

import libcst as cst

from gradcheck_tool.findings import Applicability, Edit, Finding, Fix, Position
from gradcheck_tool.fixes.init_loops import loop_matches
from gradcheck_tool.fixes.parsed import ParsedFile, dotted, module_imports, spelling
from gradcheck_tool.rules.signals import EXPECTED_GAIN2

HELPER = "_gradhealth_init"
_CODE = "GH120"
_DEFAULT_SCHEME = "pytorch-default"
# torch.nn.init functions that set a weight's values (calculate_gain and zeros_ on a bias do not).
_INIT_FUNCS = frozenset({
    "normal_", "uniform_", "trunc_normal_", "xavier_normal_", "xavier_uniform_", "kaiming_normal_",
    "kaiming_uniform_", "orthogonal_", "sparse_", "constant_", "ones_", "eye_", "dirac_",
    "normal", "uniform", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
    "orthogonal", "constant",
})
_TENSOR_FILLS = frozenset({"normal_", "uniform_"})
# Layers whose ``weight`` the init applies to (fan-in as torch.nn.init computes it).
_WEIGHT_LAYERS = frozenset({"Linear", "Conv1d", "Conv2d", "Conv3d",
                            "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"})
_HELPER_LAYERS = ("Linear", "Conv1d", "Conv2d", "Conv3d")
_DISPLAY = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "gelu": "GELU", "silu": "SiLU", "elu": "ELU",
            "tanh": "tanh", "selu": "SELU", "softplus": "Softplus"}


@dataclasses.dataclass(frozen=True)
class _Target:
    """The init that fits one activation family, spelled for a given ``init`` prefix."""

    family: str  # "relu", "tanh", "selu", "softplus"
    func: str
    paper: str

    def call(self, init: str, weight: str) -> str:
        if self.family == "relu":
            return f'{init}.kaiming_normal_({weight}, nonlinearity="relu")'
        if self.family == "tanh":
            return f'{init}.xavier_uniform_({weight}, gain={init}.calculate_gain("tanh"))'
        if self.family == "selu":
            return f'{init}.kaiming_normal_({weight}, nonlinearity="linear")'
        return f"{init}.xavier_uniform_({weight})"


def _target_for(activation: str) -> Optional[_Target]:
    if activation not in EXPECTED_GAIN2:
        return None
    if EXPECTED_GAIN2[activation] == 2.0:
        return _Target("relu", "kaiming_normal_", "He")
    if activation == "tanh":
        return _Target("tanh", "xavier_uniform_", "Glorot")
    if activation == "selu":
        return _Target("selu", "kaiming_normal_", "LeCun")
    return _Target(activation, "xavier_uniform_", "Glorot")


def attach_init_fixes(source: str, findings: Sequence[Finding]) -> list[Finding]:
    """Return findings where runtime GH120 findings carry a Fix(Applicability.UNSAFE, message, edits)
    whose edits (1-based row/column, end-exclusive, as findings.Edit) change the initialisation; other findings unchanged."""
    findings = list(findings)
    if not any(_eligible(f) for f in findings):
        return findings
    try:
        file = _File(source)
    except (cst.ParserSyntaxError, RecursionError, ValueError):
        return findings
    out: list[Finding] = []
    for finding in findings:
        if _eligible(finding):
            try:
                fix = _Planner(file, finding).plan()
            except RecursionError:
                fix = None
            if fix is not None and file.claim(fix.edits):
                finding = dataclasses.replace(finding, fix=fix)
        out.append(finding)
    return out


def _eligible(finding: Finding) -> bool:
    evidence = finding.evidence or {}
    return (finding.code == _CODE and finding.location is not None and finding.end_location is not None
            and isinstance(evidence.get("activation"), str) and evidence["activation"] in EXPECTED_GAIN2)


# --------------------------------------------------------------------------------------------
# The parsed file: positions, parents, imports, and the edits already claimed by a finding.


def _string(node: Optional[cst.CSTNode]) -> Optional[str]:
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _positional(call: cst.Call) -> list[cst.Arg]:
    return [a for a in call.args if a.keyword is None and not a.star]


def _keywords(call: cst.Call) -> dict[str, cst.Arg]:
    return {a.keyword.value: a for a in call.args if a.keyword is not None}


class _File(ParsedFile):
    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.newline = self.module.default_newline
        self.indent_unit = self.module.default_indent
        self.imports = module_imports(self.module)

    # --- positions ---------------------------------------------------------------------------

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node).strip()

    def line_indent(self, node: cst.CSTNode) -> Optional[str]:
        """The whitespace before ``node`` on its first line, or None when code precedes it."""
        where = self.positions.get(node)
        if where is None or where.start.line > len(self.lines):
            return None
        prefix = self.lines[where.start.line - 1][: where.start.column]
        return prefix if not prefix.strip() else None

    def insert_after(self, node: cst.CSTNode, text: str) -> Optional[Edit]:
        """Lines (``text``, newline-terminated) on their own after the last line of ``node``."""
        row = self.positions[node].end.line + 1
        return self.insert_at_row(row, text)

    def insert_at_row(self, row: int, text: str) -> Optional[Edit]:
        if row <= len(self.lines):
            return Edit(text, Position(row, 1), Position(row, 1))
        last = self.lines[-1] if self.lines else ""
        if last.endswith(("\n", "\r")):
            return Edit(text, Position(row, 1), Position(row, 1))
        # The file ends without a newline: start a new line at its very end.
        at = Position(len(self.lines), len(last) + 1)
        return Edit(self.newline + text.rstrip("\r\n"), at, at)

    # --- tree --------------------------------------------------------------------------------

    def parent(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        return self.parents.get(node)

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        node = self.parent(node)
        while node is not None:
            yield node
            node = self.parent(node)

    def resolve(self, node: Optional[cst.CSTNode]) -> Optional[str]:
        """``nn.init.normal_`` -> ``torch.nn.init.normal_`` through the file's imports."""
        name = dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if head not in self.imports:
            return None
        full = self.imports[head]
        return f"{full}.{rest}" if rest else full

    def nn_class(self, call: cst.Call) -> Optional[str]:
        """``Linear`` for a call of torch.nn.Linear (however imported), else None."""
        name = self.resolve(call.func)
        if name and name.startswith("torch.nn.") and name.count(".") == 2:
            return name.rsplit(".", 1)[1]
        return None

    def spelling(self, qualified: str) -> Optional[str]:
        """How this file spells ``torch.nn`` or ``torch.nn.init``: its shortest alias path."""
        return spelling(self.imports, qualified)

    def init_prefix(self) -> Optional[str]:
        """``init`` where the file imports torch.nn.init by name, else ``nn.init`` / ``torch.nn.init``."""
        direct = [alias for alias, full in self.imports.items() if full == "torch.nn.init"]
        if direct:
            return sorted(direct)[0]
        return self.spelling("torch.nn.init")

    def helper(self) -> Optional[cst.FunctionDef]:
        return next((s for s in self.module.body if isinstance(s, cst.FunctionDef) and s.name.value == HELPER),
                    None)


# --------------------------------------------------------------------------------------------
# One finding's plan.


_Scope = Union[cst.FunctionDef, cst.ClassDef, cst.Module]


@dataclasses.dataclass
class _Match:
    call: cst.Call
    weight: str  # the weight expression's code, kept as written
    prefix: Optional[str]  # the call's own torch.nn.init spelling (``nn.init``), if it has one


class _Planner:
    def __init__(self, file: _File, finding: Finding) -> None:
        self.file = file
        self.finding = finding
        evidence = finding.evidence
        self.activation: str = evidence["activation"]
        self.target = _target_for(self.activation)
        self.scheme = str(evidence.get("scheme", ""))
        gain2, expected = evidence.get("gain2"), evidence.get("expected_gain2")
        self.grows = (isinstance(gain2, (int, float)) and isinstance(expected, (int, float)) and gain2 > expected)

    # --- entry -------------------------------------------------------------------------------

    def plan(self) -> Optional[Fix]:
        if self.target is None:
            return None
        call = self._constructor()
        if call is None:
            return None
        layer = self.file.nn_class(call)
        if layer not in _WEIGHT_LAYERS:
            return None
        if any(self._is_helper_apply(a) for a in self.file.ancestors(call) if isinstance(a, cst.Call)):
            return None  # already built as `nn.Sequential(...).apply(_gradhealth_init)`
        statement = self._statement(call)
        if statement is None:
            return None
        small = next((s for s in statement.body if s is call or _contains(self.file, s, call)), None)
        target = self._direct_target(small, call)
        function = self._function(call)
        if target is not None:
            matches = self._init_calls(target, statement, function)
            if matches:
                return self._replace(matches)
        looped = loop_matches(self, small, function)
        if looped:
            return self._replace(looped)
        if self.scheme != _DEFAULT_SCHEME:
            return None  # something we cannot see sets the weight: advice only
        init_method = self._module_init(function)
        if init_method is not None:
            return self._apply_in_init(init_method, layer)
        if target is not None:
            return self._insert_init(statement, target)
        return self._apply_to_model(statement, small, call, function, layer)

    # --- locating ----------------------------------------------------------------------------

    def _constructor(self) -> Optional[cst.Call]:
        """The libcst Call at the finding's span.  The probe's columns come from the code
        object's positions (UTF-8 byte offsets); libcst counts characters."""
        loc, end = self.finding.location, self.finding.end_location
        starts = {(loc.row, loc.column), (loc.row, self._char_column(loc))}
        ends = {(end.row, end.column), (end.row, self._char_column(end))}
        calls = [n for n in self.file.positions if isinstance(n, cst.Call)]
        at_start = [c for c in calls if (self.file.start(c).row, self.file.start(c).column) in starts]
        exact = [c for c in at_start if (self.file.end(c).row, self.file.end(c).column) in ends]
        if len(exact) == 1:
            return exact[0]
        layers = [c for c in at_start if self.file.nn_class(c) in _WEIGHT_LAYERS]
        if not layers and loc == end and loc.column == 1:
            # A line-only site (no column information): the row's one weight-layer call, if one.
            layers = [c for c in calls if self.file.start(c).row == loc.row
                      and self.file.nn_class(c) in _WEIGHT_LAYERS]
        return layers[0] if len(layers) == 1 else None

    def _char_column(self, pos: Position) -> int:
        if not 1 <= pos.row <= len(self.file.lines):
            return pos.column
        raw = self.file.lines[pos.row - 1].encode("utf-8")
        return len(raw[: pos.column - 1].decode("utf-8", errors="ignore")) + 1

    def _statement(self, node: cst.CSTNode) -> Optional[cst.SimpleStatementLine]:
        """The statement line holding ``node``, when it sits on its own lines in a block."""
        for ancestor in self.file.ancestors(node):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                return None
            if isinstance(ancestor, cst.SimpleStatementLine):
                holder = self.file.parent(ancestor)
                if isinstance(holder, (cst.IndentedBlock, cst.Module)) and self.file.line_indent(ancestor) is not None:
                    return ancestor
                return None
            if isinstance(ancestor, cst.SimpleStatementSuite):
                return None
        return None

    def _direct_target(self, small: Optional[cst.CSTNode], call: cst.Call) -> Optional[str]:
        """``linear`` / ``self.fc1`` when the constructor call is the whole assigned value."""
        if isinstance(small, cst.Assign) and small.value is call and len(small.targets) == 1:
            return dotted(small.targets[0].target)
        if isinstance(small, cst.AnnAssign) and small.value is call:
            return dotted(small.target)
        return None

    def _function(self, node: cst.CSTNode) -> Optional[cst.FunctionDef]:
        return next((a for a in self.file.ancestors(node) if isinstance(a, cst.FunctionDef)), None)

    def _class_of(self, function: cst.FunctionDef) -> Optional[cst.ClassDef]:
        block = self.file.parent(function)
        owner = self.file.parent(block) if block is not None else None
        return owner if isinstance(owner, cst.ClassDef) else None

    def _module_init(self, function: Optional[cst.FunctionDef]) -> Optional[cst.FunctionDef]:
        """``function`` when it is the ``__init__`` of an nn.Module-like class (it has bases
        and calls its parent's ``__init__``), in a block of its own."""
        if function is None or function.name.value != "__init__" or not isinstance(function.body, cst.IndentedBlock):
            return None
        klass = self._class_of(function)
        params = function.params.params
        if klass is None or not klass.bases or not params:
            return None
        for statement in function.body.body:
            for node in _walk(statement):
                if (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                        and node.func.attr.value == "__init__"):
                    return function
        return None

    # --- case 1: an explicit init to replace ----------------------------------------------------

    def _init_calls(self, target: str, statement: cst.SimpleStatementLine,
                    function: Optional[cst.FunctionDef]) -> list[_Match]:
        """Init calls on ``target.weight`` in the constructor's scope: after the constructor
        and before ``target`` is assigned again in the same function; for ``self.x``, also in
        the class's other methods when the class assigns ``self.x`` only once."""
        home: _Scope = function if function is not None else self.file.module
        klass = self._class_of(function) if function is not None else None
        built_at = self.file.offset(self.file.end(statement))
        reassigned = min((self.file.offset(self.file.start(n)) for n in self._assignments(home, target)
                          if self.file.offset(self.file.start(n)) >= built_at), default=None)
        found: list[_Match] = []
        for match in self._matches(home, target):
            at = self.file.offset(self.file.start(match.call))
            if at >= built_at and (reassigned is None or at < reassigned):
                found.append(match)
        owner = function.params.params[0].name.value if function is not None and function.params.params else None
        if klass is not None and owner and target.startswith(owner + ".") and \
                len(self._assignments(klass, target)) == 1:
            for method in klass.body.body if isinstance(klass.body, cst.IndentedBlock) else ():
                if isinstance(method, cst.FunctionDef) and method is not function:
                    found.extend(self._matches(method, target))
        return found

    def _assignments(self, scope: _Scope, target: str) -> list[cst.CSTNode]:
        out = []
        for node in _walk(scope, into_scopes=isinstance(scope, cst.ClassDef)):
            if isinstance(node, cst.Assign) and any(dotted(t.target) == target for t in node.targets):
                out.append(node)
            elif isinstance(node, (cst.AnnAssign, cst.AugAssign)) and dotted(node.target) == target:
                out.append(node)
        return out

    def _matches(self, scope: _Scope, target: str) -> list[_Match]:
        weights = {f"{target}.weight", f"{target}.weight.data"}
        out = []
        for node in _walk(scope, into_scopes=False):
            if not isinstance(node, cst.Call):
                continue
            name = self.file.resolve(node.func) or ""
            if name.startswith("torch.nn.init.") and name.rsplit(".", 1)[1] in _INIT_FUNCS:
                positional = _positional(node)
                first = positional[0] if positional else _keywords(node).get("tensor")
                if first is not None and dotted(first.value) in weights:
                    prefix = None
                    if isinstance(node.func, cst.Attribute) and self.file.resolve(node.func.value) == "torch.nn.init":
                        prefix = self.file.code(node.func.value)
                    out.append(_Match(node, self.file.code(first.value), prefix))
            elif (isinstance(node.func, cst.Attribute) and node.func.attr.value in _TENSOR_FILLS
                  and dotted(node.func.value) in weights):
                out.append(_Match(node, self.file.code(node.func.value), None))
        return out

    def _is_target(self, call: cst.Call) -> bool:
        """Whether ``call`` already is the init that fits (so the codemod has nothing to do)."""
        name = self.file.resolve(call.func) or ""
        if name != f"torch.nn.init.{self.target.func}" or len(_positional(call)) != 1:
            return False
        keywords = _keywords(call)
        extra = set(keywords) - {"tensor", "nonlinearity", "gain", "mode"}
        if extra or ("mode" in keywords and _string(keywords["mode"].value) != "fan_in"):
            return False
        family = self.target.family
        if family in ("relu", "selu"):
            expected = {"relu": ("relu", "leaky_relu"), "selu": ("linear",)}[family]
            return "gain" not in keywords and "nonlinearity" in keywords and \
                _string(keywords["nonlinearity"].value) in expected
        if family == "tanh":
            gain = keywords.get("gain")
            if gain is None or "nonlinearity" in keywords or not isinstance(gain.value, cst.Call):
                return False
            args = _positional(gain.value)
            return (self.file.resolve(gain.value.func) == "torch.nn.init.calculate_gain"
                    and len(args) == 1 and _string(args[0].value) == "tanh")
        return not ({"gain", "nonlinearity", "mode"} & set(keywords))

    def _replace(self, matches: list[_Match]) -> Optional[Fix]:
        todo = [m for m in matches if not self._is_target(m.call)]
        if not todo:
            return None  # the fitting init is already in place
        edits, shown = [], []
        for match in todo:
            if _has_comment(match.call):
                return None  # a comment inside the call would be lost
            prefix = match.prefix or self.file.init_prefix()
            if prefix is None:
                return None
            new = self.target.call(prefix, match.weight)
            edits.append(Edit(new, self.file.start(match.call), self.file.end(match.call)))
            shown.append((self.file.code(match.call), new))
        old, new = shown[0]
        more = f" (and {len(shown) - 1} more)" if len(shown) > 1 else ""
        return Fix(Applicability.UNSAFE,
                   f"Replace `{old}` with `{new}`{more}: {self._why()}", tuple(edits))

    # --- case 2: PyTorch's default init -----------------------------------------------------------

    def _apply_in_init(self, init: cst.FunctionDef, layer: str) -> Optional[Fix]:
        owner = init.params.params[0].name.value
        body = init.body.body
        if any(isinstance(s, cst.SimpleStatementLine) and any(isinstance(x, cst.Return) for x in s.body)
               for s in body):
            return None
        if any(self._is_helper_apply(n, owner) for s in body for n in _walk(s) if isinstance(n, cst.Call)):
            return None  # idempotent: __init__ already applies _gradhealth_init
        helper = self._helper_edits(init, layer)
        if helper is None:
            return None
        last = body[-1]
        indent = self.file.line_indent(last)
        if indent is None:
            return None
        line = self.file.insert_after(last, f"{indent}{owner}.apply({HELPER}){self.file.newline}")
        if line is None:
            return None
        return Fix(Applicability.UNSAFE,
                   f"Initialise the {layer} layers explicitly: add `{owner}.apply({HELPER})` at the end of "
                   f"__init__, with {HELPER} using {self._call('module.weight')}: {self._why()}",
                   tuple(helper) + (line,))

    def _insert_init(self, statement: cst.SimpleStatementLine, target: str) -> Optional[Fix]:
        prefix = self.file.init_prefix()
        indent = self.file.line_indent(statement)
        if prefix is None or indent is None:
            return None
        call = self.target.call(prefix, f"{target}.weight")
        edit = self.file.insert_after(statement, f"{indent}{call}{self.file.newline}")
        if edit is None:
            return None
        return Fix(Applicability.UNSAFE, f"Initialise `{target}` explicitly with `{call}`: {self._why()}",
                   (edit,))

    def _apply_to_model(self, statement: cst.SimpleStatementLine, small: Optional[cst.CSTNode],
                        call: cst.Call, function: Optional[cst.FunctionDef], layer: str) -> Optional[Fix]:
        """The layer is built inline in an expression: apply the helper to the model that
        holds it, when the statement assigns or returns an nn container call."""
        if isinstance(small, (cst.Assign, cst.AnnAssign)) and isinstance(small.value, cst.Call) \
                and self.file.nn_class(small.value) is not None:
            targets = small.targets if isinstance(small, cst.Assign) else [cst.AssignTarget(small.target)]
            model = dotted(targets[0].target) if len(targets) == 1 else None
            if model is None:
                return None
            return self._apply_after(statement, model, function, layer)
        if isinstance(small, cst.Return) and isinstance(small.value, cst.Call) \
                and self.file.nn_class(small.value) is not None:
            return self._apply_on_return(small, layer)
        if function is None or not isinstance(small, cst.Expr):
            return None
        # layers.append(nn.Linear(...)) ... return nn.Sequential(*layers): the returned model.
        returns = [n for n in _walk(function.body, into_scopes=False) if isinstance(n, cst.Return)]
        if len(returns) != 1 or returns[0].value is None:
            return None
        value = returns[0].value
        if isinstance(value, cst.Call) and self._is_helper_apply(value):
            return None
        if isinstance(value, cst.Call) and self.file.nn_class(value) is not None:
            return self._apply_on_return(returns[0], layer)
        return None

    def _apply_after(self, statement: cst.SimpleStatementLine, model: str,
                     function: Optional[cst.FunctionDef], layer: str) -> Optional[Fix]:
        scope: _Scope = function if function is not None else self.file.module
        if any(isinstance(n, cst.Call) and self._is_helper_apply(n, model) for n in _walk(scope, into_scopes=False)):
            return None  # idempotent: the model already gets _gradhealth_init
        helper = self._helper_edits(statement, layer)
        indent = self.file.line_indent(statement)
        if helper is None or indent is None:
            return None
        line = self.file.insert_after(statement, f"{indent}{model}.apply({HELPER}){self.file.newline}")
        if line is None or any(e.location == line.location for e in helper):
            return None
        return Fix(Applicability.UNSAFE,
                   f"Initialise `{model}`'s {layer} layers explicitly: `{model}.apply({HELPER})` with "
                   f"{self._call('module.weight')}: {self._why()}", tuple(helper) + (line,))

    def _apply_on_return(self, statement: cst.Return, layer: str) -> Optional[Fix]:
        value = statement.value
        helper = self._helper_edits(statement, layer)
        if helper is None or value is None:
            return None
        at = self.file.end(value)
        edit = Edit(f".apply({HELPER})", at, at)
        return Fix(Applicability.UNSAFE,
                   f"Initialise the returned model's {layer} layers explicitly: `.apply({HELPER})` with "
                   f"{self._call('module.weight')}: {self._why()}", tuple(helper) + (edit,))

    def _is_helper_apply(self, call: cst.Call, owner: Optional[str] = None) -> bool:
        """``<owner>.apply(_gradhealth_init)`` (any receiver when owner is None)."""
        if not isinstance(call.func, cst.Attribute) or call.func.attr.value != "apply":
            return False
        args = _positional(call)
        if len(args) != 1 or dotted(args[0].value) != HELPER:
            return False
        return owner is None or dotted(call.func.value) == owner

    # --- the module-level helper ------------------------------------------------------------------

    def _helper_fits(self) -> bool:
        existing = self.file.helper()
        if existing is None:
            return False
        calls = [n for n in _walk(existing) if isinstance(n, cst.Call)]
        return any(self._is_target(c) for c in calls)

    def _helper_edits(self, use: cst.CSTNode, layer: str) -> Optional[list[Edit]]:
        """[] when a fitting ``_gradhealth_init`` exists, the edit adding it after the imports
        (before the statement that uses it), or None when neither is possible."""
        if self.file.helper() is not None:
            return [] if self._helper_fits() else None
        if any(isinstance(n, cst.Name) and n.value == HELPER for n in _walk(self.file.module)):
            return None  # the name is taken by something else
        nn_prefix, init_prefix = self.file.spelling("torch.nn"), self.file.init_prefix()
        if nn_prefix is None or init_prefix is None:
            return None
        top = next((s for s in self.file.module.body if s is use or _contains(self.file, s, use)), None)
        if top is None:
            return None
        anchor = None
        for statement in self.file.module.body:
            if statement is top or isinstance(statement, (cst.ClassDef, cst.FunctionDef)):
                break
            if isinstance(statement, cst.SimpleStatementLine) and statement.body and all(
                    isinstance(s, (cst.Import, cst.ImportFrom)) for s in statement.body):
                anchor = statement
        if anchor is None:
            return None
        nl, unit = self.file.newline, self.file.indent_unit
        layers = list(_HELPER_LAYERS) + ([layer] if layer not in _HELPER_LAYERS else [])
        kinds = ", ".join(f"{nn_prefix}.{name}" for name in layers)
        trend = "exploding" if self.grows else "collapsing"
        body = [
            f"def {HELPER}(module):",
            f"{unit}# Added by gradhealth fix: {self.target.paper} init for the "
            f"{_DISPLAY.get(self.activation, self.activation)} layers the probe found {trend}.",
            f"{unit}if isinstance(module, ({kinds})):",
            f"{unit * 2}{self.target.call(init_prefix, 'module.weight')}",
            f"{unit * 2}if module.bias is not None:",
            f"{unit * 3}{init_prefix}.zeros_(module.bias)",
        ]
        row = self.file.positions[anchor].end.line + 1
        blank = 0  # blank lines already between the imports and what follows them
        while row + blank <= len(self.file.lines) and not self.file.lines[row + blank - 1].strip():
            blank += 1
        after = nl * max(0, 2 - blank) if row + blank <= len(self.file.lines) else ""
        edit = self.file.insert_at_row(row, nl * 2 + nl.join(body) + nl + after)
        return None if edit is None else [edit]

    # --- words ------------------------------------------------------------------------------------

    def _call(self, weight: str) -> str:
        return self.target.call(self.file.init_prefix() or "nn.init", weight)

    def _why(self) -> str:
        expected = EXPECTED_GAIN2[self.activation]
        scheme = self.scheme or "the current init"
        return (f"{self.target.paper} init gives var(W)*fan_in = {expected:g}, which {self.activation} needs "
                f"({scheme} gives {self.finding.evidence.get('gain2', float('nan')):.3g})")


def _walk(node: cst.CSTNode, *, into_scopes: bool = True) -> Iterator[cst.CSTNode]:
    """``node`` and its descendants; with ``into_scopes=False``, nested defs, classes and
    lambdas below ``node`` are not entered."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if not into_scopes and current is not node and isinstance(
                current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        stack.extend(reversed(current.children))


def _contains(file: _File, outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
    return any(a is outer for a in file.ancestors(inner))


def _has_comment(node: cst.CSTNode) -> bool:
    return any(isinstance(n, cst.Comment) for n in _walk(node))
