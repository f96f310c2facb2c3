"""Moving a misplaced clip statement to its place: the edit behind GH202/GH203's fixes."""


from typing import Iterator, Optional

from gradcheck_tool.static.analysis import syntax

from gradcheck_tool.findings import Applicability, Edit, Fix, Position
from gradcheck_tool.static.analysis.context import SourceContext, standalone
from gradcheck_tool.static.rules.base import display
from gradcheck_tool.static.analysis.events import Event, Iteration, Kind, clips_raw_grads
from gradcheck_tool.static.analysis.names import dotted, subtree


class _Blocks(syntax.CSTVisitor):
    """Where each statement of one iteration lies: its block and index, and for blocks of
    an ``if`` / ``else`` / ``with``, the statement that holds them."""

    def __init__(self) -> None:
        super().__init__()
        self.where: dict = {}  # statement -> (block, index)
        self.holder: dict = {}  # If/Else/With block -> the statement in the block around it
        self._top: dict = {}  # an `elif` -> the `if` that starts its chain

    def _record(self, block: syntax.CSTNode) -> None:
        for index, statement in enumerate(block.body):
            self.where[statement] = (block, index)

    def visit_Module(self, node: syntax.Module) -> None:
        self._record(node)

    def visit_IndentedBlock(self, node: syntax.IndentedBlock) -> None:
        self._record(node)

    def visit_If(self, node: syntax.If) -> None:
        top = self._top.get(node, node)
        self.holder[node.body] = top
        if isinstance(node.orelse, syntax.If):
            self._top[node.orelse] = top
        elif isinstance(node.orelse, syntax.Else):
            self.holder[node.orelse.body] = top

    def visit_With(self, node: syntax.With) -> None:
        self.holder[node.body] = node

    def reach(self, statement: syntax.CSTNode, block: syntax.CSTNode) -> Optional[int]:
        """The index in ``block`` of ``statement`` or of the if/with holding it."""
        while statement is not None and statement in self.where:
            found, index = self.where[statement]
            if found is block:
                return index
            statement = self.holder.get(found)
        return None


def move_or_display(ctx: SourceContext, it: Iteration, clip: Event, step: Event, message: str,
                     backward: Optional[Event] = None) -> Fix:
    edits = _move(ctx, it, clip, step, backward)
    return Fix(Applicability.UNSAFE, message, edits) if edits else display(message)


def _move(ctx: SourceContext, it: Iteration, clip: Event, step: Event,
          backward: Optional[Event]) -> Optional[tuple[Edit, ...]]:
    """GH202 (``backward`` None): right before the step. GH203: right after the backward
    (or the ``unscale_`` that follows it), else right before the step.

    The move deletes the clip's lines (with the comment lines just above it and its trailing
    comment) and inserts them, re-indented, next to that anchor statement.  Offered only where
    the anchor is a plain statement of the clip's own block, or nested in it through `if`/`with`
    alone: across a loop, a function or a `try`, moving changes how often or whether it runs."""
    if clip.via or not standalone(clip.site):
        return None
    blocks = _Blocks()
    it.node.visit(blocks)
    if clip.site.statement not in blocks.where:
        return None
    block, clip_at = blocks.where[clip.site.statement]
    first = it.index(backward) if backward is not None else -1
    unscales = [e for e in it.events[first + 1:it.index(step)] if e.kind is Kind.UNSCALE]
    anchors = [(step, False)]
    if backward is not None:
        anchors.insert(0, (unscales[-1] if unscales else backward, True))
    unscale = None
    if not unscales and clips_raw_grads(clip) and any(
            e.amp and e.kind is not Kind.UNSCALE for e in it.events):
        # As GH204 would ask at the new place; a second unscale_() before update() raises.
        scaler_step = it.scaler_step()
        if scaler_step is None or it.of(Kind.UNSCALE):
            return None
        unscale = scaler_step.unscale_call()
    for anchor, after in anchors:
        if anchor.via or not standalone(anchor.site):
            continue
        at = blocks.reach(anchor.site.statement, block)
        if at is None or (at > clip_at) != (backward is not None):
            continue
        if blocks.where[anchor.site.statement][0] is not block and any(
                e.kind is anchor.kind and e is not anchor
                and blocks.reach(e.site.statement, block) == at for e in it.events):
            continue  # `if ...: step() else: step()`: one branch would stay unclipped
        passed = block.body[at:clip_at] if backward is None else block.body[clip_at + 1:at + 1]
        if _rebinds(passed, clip.site.statement):
            return None
        edits = _edits(ctx, clip.site.statement, anchor.site.statement, after, unscale)
        if edits is not None:
            return edits
    return None


def _edits(ctx: SourceContext, statement: syntax.SimpleStatementLine, anchor: syntax.SimpleStatementLine,
           after: bool, unscale: Optional[str]) -> Optional[tuple[Edit, ...]]:
    where, there = ctx.positions.get(statement), ctx.positions.get(anchor)
    old, new = ctx.indent(statement), ctx.indent(anchor)
    if where is None or there is None or old is None or new is None:
        return None
    newline = ctx.module.default_newline
    lines = ctx.lines[where.start.line - 1:where.end.line]
    code = ctx.code(statement)
    if old != new and len(lines) > 1 and ('"""' in code or "'''" in code):
        return None  # re-indenting would change a multi-line string
    moved = [f"{new}{unscale}{newline}"] if unscale else []
    comments = _comments(statement)
    moved += [f"{new}{comment}{newline}" for comment in comments]
    for line in lines:
        text = line.rstrip("\r\n")
        if text.startswith(old):
            text = new + text[len(old):]
        moved.append(text + (line[len(line.rstrip("\r\n")):] or newline))
    if after:
        row = there.end.line + 1
        if row > len(ctx.lines) and not ctx.lines[-1].endswith(("\n", "\r")):
            return None
    else:
        row = there.start.line - len(_comments(anchor))
    # One edit from the insertion row to the end of the clip's lines (or from its lines to
    # the insertion row), the lines in between kept verbatim: a fix is a single edit.
    start, end = where.start.line - len(comments), where.end.line + 1
    later = row >= end  # GH203 moves the clip down, GH202 up
    between = "".join(ctx.lines[end - 1:row - 1] if later else ctx.lines[row - 1:start - 1])
    text = between + "".join(moved) if later else "".join(moved) + between
    if not later and not lines[-1].endswith(("\n", "\r")):
        text = text[:-len(newline)]  # the clip ended the file with no line break: so does the move
    first, last = (start, row) if later else (row, end)
    return (Edit(text, Position(first, 1), Position(last, 1)),)


def _comments(statement: syntax.SimpleStatementLine) -> list[str]:
    """The comment lines right above a statement, at its indentation (no blank line between)."""
    found = []
    for line in reversed(statement.leading_lines):
        if line.comment is None or not line.indent:
            break
        found.append(line.whitespace.value + line.comment.value)
    return found[::-1]


def _rebinds(statements, clip: syntax.CSTNode) -> bool:
    """Whether the statements the clip moves across bind a name the clip reads."""
    attrs = {id(n.attr) for n in subtree(clip) if isinstance(n, syntax.Attribute)}
    used = {dotted(n) for n in subtree(clip)
            if isinstance(n, (syntax.Name, syntax.Attribute)) and id(n) not in attrs} - {None}
    bound: set = set()
    for statement in statements:
        for node in subtree(statement):
            if isinstance(node, (syntax.AssignTarget, syntax.AnnAssign, syntax.AugAssign, syntax.For,
                                 syntax.CompFor, syntax.NamedExpr)):
                bound.update(_targets(node.target))
            elif isinstance(node, syntax.AsName):
                bound.update(_targets(node.name))
            elif isinstance(node, (syntax.FunctionDef, syntax.ClassDef)):
                bound.add(node.name.value)
            elif isinstance(node, syntax.ImportAlias):
                bound.update(_targets(node.asname.name if node.asname else node.name))
    return any(u == b or u.startswith(b + ".") for u in used for b in bound)


def _targets(target: syntax.CSTNode) -> Iterator[str]:
    if isinstance(target, (syntax.Tuple, syntax.List)):
        for element in target.elements:
            yield from _targets(element.value)
    elif isinstance(target, (syntax.StarredElement, syntax.Subscript)):
        yield from _targets(target.value)
    elif dotted(target):
        yield dotted(target)
