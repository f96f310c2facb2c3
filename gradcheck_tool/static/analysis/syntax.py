"""The tree the static rules read: libcst's node shapes (names, fields, field order), built from
the stdlib ``ast`` in one cheap pass (:mod:`.convert`) instead of libcst's parser.

The rules were written against libcst; this keeps their vocabulary (``Call.args`` of ``Arg``
with ``keyword``/``star``, ``Attribute.attr`` a ``Name``, ``Integer.value`` the literal's
text, ``If.orelse`` an ``If``/``Else``, statements grouped in ``SimpleStatementLine``) while
costing little more than ``ast.parse``.  Only what the analysis reads exists: no whitespace,
no parentheses, no code generation.  Every node records its syntactic range (``pos``: 1-based
lines, 0-based character columns, end exclusive, as libcst's ``PositionProvider``), and
libcst itself is imported only by codemods that rewrite source.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional


class CodePosition(NamedTuple):
    line: int
    column: int


class CodeRange(NamedTuple):
    start: CodePosition
    end: CodePosition


class CSTNode:
    """A node: its child fields in libcst's order (``FIELDS``) and its range (``pos``)."""

    FIELDS: tuple[str, ...] = ()
    DEFAULTS: dict[str, Any] = {"pos": None}

    def __init__(self, **values: Any) -> None:
        # DEFAULTS holds every field (None) and attribute (operator, star, comma...) with its
        # default: one merged dict, the cheapest way to build the many nodes of a file.
        self.__dict__ = {**self.DEFAULTS, **values}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self.FIELDS)})"

    def visit(self, visitor: "CSTVisitor") -> None:
        """Walk this subtree as libcst does: ``visitor.on_visit(node)`` before a node's
        children (False skips them), ``visitor.on_leave(node)`` after."""
        from gradcheck_tool.static.analysis.names import children
        stack: list = [(self, False)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                visitor.on_leave(node)
                continue
            descend = visitor.on_visit(node) is not False
            stack.append((node, True))
            if descend:
                stack.extend((child, False) for child in reversed(children(node)))


class CSTVisitor:
    """Base of the visitors passed to :meth:`CSTNode.visit`: as in libcst, ``on_visit`` calls
    ``visit_<Type>`` (False skips the children) and ``on_leave`` calls ``leave_<Type>``."""

    def on_visit(self, node: CSTNode) -> Optional[bool]:
        method = getattr(self, "visit_" + type(node).__name__, None)
        return method(node) if method is not None else True

    def on_leave(self, original_node: CSTNode) -> None:
        method = getattr(self, "leave_" + type(original_node).__name__, None)
        if method is not None:
            method(original_node)


def _kind(name: str, fields: tuple[str, ...] = (), *bases: type, **defaults: Any) -> type:
    defaults = {"pos": None, **dict.fromkeys(fields), **defaults}
    kind = type(name, bases or (CSTNode,), {"FIELDS": fields, "DEFAULTS": defaults})
    globals()[name] = kind
    return kind


# Abstract bases, as libcst names them (rules test isinstance against a few).
BaseExpression = _kind("BaseExpression")
BaseStatement = _kind("BaseStatement")
BaseSmallStatement = _kind("BaseSmallStatement")
BaseCompoundStatement = _kind("BaseCompoundStatement", (), BaseStatement)
BaseSuite = _kind("BaseSuite")
BaseNumber = _kind("BaseNumber", (), BaseExpression)
BaseString = _kind("BaseString", (), BaseExpression)
BaseElement = _kind("BaseElement")
BaseDictElement = _kind("BaseDictElement")
BaseSlice = _kind("BaseSlice")
BaseComp = _kind("BaseComp", (), BaseExpression)
BaseSimpleComp = _kind("BaseSimpleComp", (), BaseComp)
BaseAssignTargetExpression = _kind("BaseAssignTargetExpression", (), BaseExpression)
BaseBinaryOp = _kind("BaseBinaryOp")
BaseBooleanOp = _kind("BaseBooleanOp")
BaseUnaryOp = _kind("BaseUnaryOp")
BaseCompOp = _kind("BaseCompOp")
BaseAugOp = _kind("BaseAugOp")

for _name in ("Add", "Subtract", "Multiply", "Divide", "FloorDivide", "Modulo", "Power",
              "MatrixMultiply", "LeftShift", "RightShift", "BitOr", "BitXor", "BitAnd"):
    _kind(_name, (), BaseBinaryOp)
    _kind(_name + "Assign", (), BaseAugOp)
for _name in ("And", "Or"):
    _kind(_name, (), BaseBooleanOp)
for _name in ("Minus", "Plus", "Not", "BitInvert"):
    _kind(_name, (), BaseUnaryOp)
for _name in ("Equal", "NotEqual", "LessThan", "LessThanEqual", "GreaterThan",
              "GreaterThanEqual", "Is", "IsNot", "In", "NotIn"):
    _kind(_name, (), BaseCompOp)

# Leaves and helpers without children.
for _name in ("Comma", "Dot", "ImportStar", "Pass", "Break", "Continue", "ParamStar", "ParamSlash"):
    _kind(_name, (), BaseSmallStatement if _name in ("Pass", "Break", "Continue") else CSTNode)
Ellipsis = _kind("Ellipsis", (), BaseExpression)  # noqa: A001 - libcst's name

# Expressions: fields in libcst's dataclass order (the order a walk visits them).
Name = _kind("Name", ("value",), BaseAssignTargetExpression)
Attribute = _kind("Attribute", ("value", "attr"), BaseAssignTargetExpression)
Call = _kind("Call", ("func", "args"), BaseExpression)
Arg = _kind("Arg", ("value", "keyword"), star="", comma=None)
Integer = _kind("Integer", ("value",), BaseNumber)
Float = _kind("Float", ("value",), BaseNumber)
Imaginary = _kind("Imaginary", ("value",), BaseNumber)
SimpleString = _kind("SimpleString", ("value",), BaseString)
ConcatenatedString = _kind("ConcatenatedString", ("left", "right"), BaseString)
FormattedString = _kind("FormattedString", ("parts",), BaseString)
FormattedStringText = _kind("FormattedStringText", ("value",))
FormattedStringExpression = _kind("FormattedStringExpression", ("expression", "format_spec"))
BinaryOperation = _kind("BinaryOperation", ("left", "right"), BaseExpression)
BooleanOperation = _kind("BooleanOperation", ("left", "right"), BaseExpression)
UnaryOperation = _kind("UnaryOperation", ("expression",), BaseExpression)
Comparison = _kind("Comparison", ("left", "comparisons"), BaseExpression)
ComparisonTarget = _kind("ComparisonTarget", ("comparator",))
Subscript = _kind("Subscript", ("value", "slice"), BaseAssignTargetExpression)
SubscriptElement = _kind("SubscriptElement", ("slice",))
Index = _kind("Index", ("value",), BaseSlice, star=None)
Slice = _kind("Slice", ("lower", "upper", "step"), BaseSlice)
Tuple = _kind("Tuple", ("elements",), BaseAssignTargetExpression)
List = _kind("List", ("elements",), BaseAssignTargetExpression)
Set = _kind("Set", ("elements",), BaseExpression)
Element = _kind("Element", ("value",), BaseElement)
StarredElement = _kind("StarredElement", ("value",), BaseElement, BaseExpression)
Dict = _kind("Dict", ("elements",), BaseExpression)
DictElement = _kind("DictElement", ("key", "value"), BaseDictElement)
StarredDictElement = _kind("StarredDictElement", ("value",), BaseDictElement)
ListComp = _kind("ListComp", ("elt", "for_in"), BaseSimpleComp)
SetComp = _kind("SetComp", ("elt", "for_in"), BaseSimpleComp)
GeneratorExp = _kind("GeneratorExp", ("elt", "for_in"), BaseSimpleComp)
DictComp = _kind("DictComp", ("key", "value", "for_in"), BaseComp)
CompFor = _kind("CompFor", ("target", "iter", "ifs", "inner_for_in"), asynchronous=None)
CompIf = _kind("CompIf", ("test",))
Lambda = _kind("Lambda", ("params", "body"), BaseExpression)
IfExp = _kind("IfExp", ("test", "body", "orelse"), BaseExpression)
NamedExpr = _kind("NamedExpr", ("target", "value"), BaseExpression)
Await = _kind("Await", ("expression",), BaseExpression)
Yield = _kind("Yield", ("value",), BaseExpression)
From = _kind("From", ("item",))

# Parameters.
Param = _kind("Param", ("name", "annotation", "default"), star="")
Parameters = _kind("Parameters", ("params", "star_arg", "kwonly_params", "star_kwarg",
                                  "posonly_params"))
Annotation = _kind("Annotation", ("annotation",))

# Small statements.
Expr = _kind("Expr", ("value",), BaseSmallStatement)
Assign = _kind("Assign", ("targets", "value"), BaseSmallStatement)
AssignTarget = _kind("AssignTarget", ("target",))
AugAssign = _kind("AugAssign", ("target", "value"), BaseSmallStatement)
AnnAssign = _kind("AnnAssign", ("target", "annotation", "value"), BaseSmallStatement)
Return = _kind("Return", ("value",), BaseSmallStatement)
Raise = _kind("Raise", ("exc", "cause"), BaseSmallStatement)
Assert = _kind("Assert", ("test", "msg"), BaseSmallStatement)
Del = _kind("Del", ("target",), BaseSmallStatement)
Global = _kind("Global", ("names",), BaseSmallStatement)
Nonlocal = _kind("Nonlocal", ("names",), BaseSmallStatement)
NameItem = _kind("NameItem", ("name",))
Import = _kind("Import", ("names",), BaseSmallStatement)
ImportFrom = _kind("ImportFrom", ("module", "names", "relative"), BaseSmallStatement)
ImportAlias = _kind("ImportAlias", ("name", "asname"))
AsName = _kind("AsName", ("name",))
TypeAlias = _kind("TypeAlias", ("name", "value"), BaseSmallStatement)

# Lines, blocks and compound statements.
SimpleStatementLine = _kind("SimpleStatementLine", ("body",), BaseStatement, leading_lines=())
SimpleStatementSuite = _kind("SimpleStatementSuite", ("body",), BaseSuite)
IndentedBlock = _kind("IndentedBlock", ("body",), BaseSuite)


class Module(CSTNode):
    """The file: its statements, its first line ending, and its text (``code_for_node``)."""

    FIELDS = ("body",)
    DEFAULTS = {"pos": None, "body": None, "default_newline": "\n", "source": None}

    def code_for_node(self, node: CSTNode) -> str:
        """The source text of ``node`` (its own range: no surrounding parentheses).  As in
        libcst, continuation lines lose the indentation of the block the node is in."""
        if node.pos is None:
            return ""
        text = self.source.segment(node.pos)
        if "\n" not in text and "\r" not in text:
            return text
        first = self.source.lines[node.pos[0] - 1]
        indent = first[:len(first) - len(first.lstrip(" \t\f"))]
        lines = text.splitlines(keepends=True)
        return lines[0] + "".join(line[len(indent):] if line.startswith(indent) else line
                                  for line in lines[1:])


If = _kind("If", ("test", "body", "orelse"), BaseCompoundStatement)
Else = _kind("Else", ("body",))
For = _kind("For", ("target", "iter", "body", "orelse"), BaseCompoundStatement, asynchronous=None)
While = _kind("While", ("test", "body", "orelse"), BaseCompoundStatement)
With = _kind("With", ("items", "body"), BaseCompoundStatement, asynchronous=None)
WithItem = _kind("WithItem", ("item", "asname"))
Try = _kind("Try", ("body", "handlers", "orelse", "finalbody"), BaseCompoundStatement)
TryStar = _kind("TryStar", ("body", "handlers", "orelse", "finalbody"), BaseCompoundStatement)
ExceptHandler = _kind("ExceptHandler", ("body", "type", "name"))
Finally = _kind("Finally", ("body",))
FunctionDef = _kind("FunctionDef", ("name", "params", "body", "decorators", "returns"),
                    BaseCompoundStatement, asynchronous=None)
ClassDef = _kind("ClassDef", ("name", "body", "bases", "keywords", "decorators"),
                 BaseCompoundStatement)
Decorator = _kind("Decorator", ("decorator",))
Match = _kind("Match", ("subject", "cases"), BaseCompoundStatement)
MatchCase = _kind("MatchCase", ("pattern", "body", "guard"))


class EmptyLine(NamedTuple):
    """A blank or comment-only line above a statement (libcst's ``leading_lines``)."""

    indent: bool
    whitespace: "Text"
    comment: Optional["Text"]


class Text(NamedTuple):
    value: str


KINDS: dict[str, type] = {name: kind for name, kind in globals().items()
                          if isinstance(kind, type) and issubclass(kind, CSTNode)}

