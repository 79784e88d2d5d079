"""Per-cell name events in execution order: what a cell reads, binds, changes and deletes.

The data-flow stage replays these events across a step's cells to find what the step needs
from earlier steps and what it leaves for later ones.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from nb2pipe.analysis.scopes import (
    FunctionFacts,
    call_mutations,
    class_facts,
    comprehension_free_names,
    dotted_name,
    function_facts,
    lambda_free_names,
    statement_mutations,
    target_names,
)

EventKind = Literal["read", "bind", "mutate", "delete", "call"]


@dataclass(frozen=True)
class Origin:
    """Where a bound value comes from, for choosing its artifact type and spotting values
    that cannot leave a process.

    kind: ``call`` (``path`` is the dotted callee when it is a chain of names, ``base`` the
    receiver chain's root name, ``attr`` the last attribute), ``alias`` / ``derived`` (from
    ``base``), ``literal`` (``attr`` is the type), ``lambda``, ``generator``, ``import``,
    ``def``, ``class``, ``unknown``.
    """

    kind: str
    path: str | None = None
    base: str | None = None
    attr: str | None = None
    #: the dotted callee when the receiver is itself a call (``Model`` in ``Model().fit(X)``)
    receiver_call: str | None = None


UNKNOWN = Origin("unknown")


@dataclass(frozen=True)
class Event:
    kind: EventKind
    name: str
    line: int
    definite: bool = True
    origin: Origin = UNKNOWN
    replay: str | None = None
    args: tuple[str | None, ...] = ()
    keywords: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CellFacts:
    events: tuple[Event, ...]
    functions: Mapping[str, FunctionFacts]
    imports: Mapping[str, str]
    star_import: bool


def analyze_cell(source: str) -> CellFacts:
    """Events of one cell's (magic-free, parseable) source."""
    tree = ast.parse(source)
    visitor = _CellVisitor(source)
    visitor.block(tree.body, definite=True)
    return CellFacts(
        events=tuple(visitor.events),
        functions=MappingProxyType(dict(visitor.functions)),
        imports=MappingProxyType(dict(visitor.imports)),
        star_import=visitor.star_import,
    )


def value_origin(node: ast.expr) -> Origin:
    if isinstance(node, ast.Call):
        func = node.func
        attr = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        receiver = func.value if isinstance(func, ast.Attribute) else func
        base = _root_name(receiver)
        receiver_call = dotted_name(receiver.func) if isinstance(receiver, ast.Call) else None
        return Origin("call", path=dotted_name(func), base=base, attr=attr, receiver_call=receiver_call)
    if isinstance(node, ast.Name):
        return Origin("alias", base=node.id)
    if isinstance(node, ast.Attribute | ast.Subscript):
        return Origin("derived", base=_root_name(node))
    if isinstance(node, ast.BinOp):
        left = value_origin(node.left)
        return left if left.base else value_origin(node.right)
    if isinstance(node, ast.UnaryOp):
        return value_origin(node.operand)
    if isinstance(node, ast.Constant):
        return Origin("literal", attr=type(node.value).__name__)
    literal_types = {
        ast.List: "list",
        ast.ListComp: "list",
        ast.Dict: "dict",
        ast.DictComp: "dict",
        ast.Set: "set",
        ast.SetComp: "set",
        ast.Tuple: "tuple",
        ast.JoinedStr: "str",
    }
    for node_type, type_name in literal_types.items():
        if isinstance(node, node_type):
            return Origin("literal", attr=type_name)
    if isinstance(node, ast.GeneratorExp):
        return Origin("generator")
    if isinstance(node, ast.Lambda):
        return Origin("lambda")
    return UNKNOWN


def _root_name(node: ast.expr) -> str | None:
    """The name at the root of a receiver chain, through calls too (``df`` in
    ``df.groupby("a").mean``)."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


@dataclass
class _CellVisitor:
    source: str
    events: list[Event] = field(default_factory=list)
    functions: dict[str, FunctionFacts] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)
    star_import: bool = False
    last_origin: dict[str, Origin] = field(default_factory=dict)

    # -- emitting -------------------------------------------------------------------------
    def read(self, name: str, line: int) -> None:
        self.events.append(Event("read", name, line))

    def bind(self, name: str, line: int, definite: bool, origin: Origin, replay: str | None = None) -> None:
        self.last_origin[name] = origin
        self.events.append(Event("bind", name, line, definite, origin, replay))

    # -- statements ------------------------------------------------------------------------
    def block(self, body: list[ast.stmt], definite: bool) -> set[str]:
        """Visit statements in order; return the names this block surely binds."""
        bound: set[str] = set()
        for stmt in body:
            bound |= self.statement(stmt, definite)
        return bound

    def statement(self, node: ast.stmt, definite: bool) -> set[str]:
        handler = getattr(self, f"_stmt_{type(node).__name__}", None)
        if handler is not None:
            return handler(node, definite)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expression(child, definite)
        return set()

    def _stmt_Import(self, node: ast.Import | ast.ImportFrom, definite: bool) -> set[str]:
        bound = set()
        for alias in node.names:
            if alias.name == "*":
                self.star_import = True
                continue
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                qualified = f"{module}.{alias.name}" if module else alias.name
                statement = ast.ImportFrom(module=node.module, names=[alias], level=node.level)
                name = alias.asname or alias.name
            else:
                qualified = alias.name if alias.asname else alias.name.split(".")[0]
                statement = ast.Import(names=[alias])
                name = alias.asname or alias.name.split(".")[0]
            self.imports[name] = qualified
            self.bind(name, node.lineno, definite, Origin("import", path=qualified), ast.unparse(statement))
            bound.add(name)
        return bound

    _stmt_ImportFrom = _stmt_Import

    def _stmt_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef, definite: bool) -> set[str]:
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                self.expression(expr, definite)
        self.functions[node.name] = function_facts(node)
        self.bind(node.name, node.lineno, definite, Origin("def"), self._segment(node))
        return {node.name}

    _stmt_AsyncFunctionDef = _stmt_FunctionDef

    def _stmt_ClassDef(self, node: ast.ClassDef, definite: bool) -> set[str]:
        for expr in [*node.decorator_list, *node.bases, *(kw.value for kw in node.keywords)]:
            self.expression(expr, definite)
        self.functions[node.name] = class_facts(node)
        self.bind(node.name, node.lineno, definite, Origin("class"), self._segment(node))
        return {node.name}

    def _stmt_Assign(self, node: ast.Assign | ast.AnnAssign, definite: bool) -> set[str]:
        if node.value is None:  # a bare annotation binds nothing
            return set()
        self.expression(node.value, definite)
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        self._mutations(node, definite)
        replay = None
        if isinstance(node.value, ast.Lambda) and len(targets) == 1 and isinstance(targets[0], ast.Name):
            replay = self._segment(node)
        bound: set[str] = set()
        for target in targets:
            self._target_reads(target, definite)
            bound |= self._bind_target(target, node.value, definite, replay)
        return bound

    _stmt_AnnAssign = _stmt_Assign

    def _stmt_AugAssign(self, node: ast.AugAssign, definite: bool) -> set[str]:
        self.expression(node.value, definite)
        if isinstance(node.target, ast.Name):
            name = node.target.id
            self.read(name, node.lineno)
            origin = self.last_origin.get(name, Origin("alias", base=name))
            self.bind(name, node.lineno, definite, origin)
            return {name}
        self._target_reads(node.target, definite)
        self._mutations(node, definite)
        return set()

    def _stmt_Delete(self, node: ast.Delete, definite: bool) -> set[str]:
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.events.append(Event("delete", target.id, node.lineno, definite))
            else:
                self._target_reads(target, definite)
        self._mutations(node, definite)
        return set()

    def _stmt_Expr(self, node: ast.Expr, definite: bool) -> set[str]:
        self.expression(node.value, definite)
        self._mutations(node, definite)
        return set()

    def _stmt_If(self, node: ast.If, definite: bool) -> set[str]:
        self.expression(node.test, definite)
        in_body = self.block(node.body, definite=False)
        in_else = self.block(node.orelse, definite=False)
        both = in_body & in_else if node.orelse else set()
        for name in sorted(both):
            if definite:
                self.bind(name, node.lineno, True, self.last_origin.get(name, UNKNOWN))
        return both

    def _stmt_For(self, node: ast.For | ast.AsyncFor, definite: bool) -> set[str]:
        self.expression(node.iter, definite)
        self._loop_prebind(node, node.lineno)
        # The loop variable is an element of what is iterated: changing it changes that.
        element = Origin("derived", base=_root_name(node.iter))
        for name in target_names(node.target):
            self.bind(name.id, node.lineno, False, element)
        self._target_reads(node.target, False)
        self.block(node.body, definite=False)
        self.block(node.orelse, definite=False)
        return set()

    _stmt_AsyncFor = _stmt_For

    def _stmt_While(self, node: ast.While, definite: bool) -> set[str]:
        self._loop_prebind(node, node.lineno)
        self.expression(node.test, definite)
        self.block(node.body, definite=False)
        self.block(node.orelse, definite=False)
        return set()

    def _stmt_With(self, node: ast.With | ast.AsyncWith, definite: bool) -> set[str]:
        bound: set[str] = set()
        for item in node.items:
            self.expression(item.context_expr, definite)
            if item.optional_vars is not None:
                bound |= self._bind_target(item.optional_vars, item.context_expr, definite, None)
        return bound | self.block(node.body, definite)

    _stmt_AsyncWith = _stmt_With

    def _stmt_Try(self, node: ast.Try, definite: bool) -> set[str]:
        bound = self.block(node.body, definite)
        for handler in node.handlers:
            if handler.type is not None:
                self.expression(handler.type, False)
            if handler.name:
                self.bind(handler.name, handler.lineno, False, UNKNOWN)
            self.block(handler.body, definite=False)
        self.block(node.orelse, definite=False)
        return bound | self.block(node.finalbody, definite)

    _stmt_TryStar = _stmt_Try

    def _stmt_Match(self, node: ast.Match, definite: bool) -> set[str]:
        self.expression(node.subject, definite)
        for case in node.cases:
            for sub in ast.walk(case.pattern):
                name = getattr(sub, "name", None)
                if isinstance(sub, ast.MatchAs | ast.MatchStar | ast.MatchMapping) and name:
                    self.bind(name, case.pattern.lineno, False, UNKNOWN)
                if isinstance(sub, ast.MatchMapping) and sub.rest:
                    self.bind(sub.rest, case.pattern.lineno, False, UNKNOWN)
            if case.guard is not None:
                self.expression(case.guard, False)
            self.block(case.body, definite=False)
        return set()

    def _stmt_Global(self, node: ast.stmt, definite: bool) -> set[str]:
        return set()

    _stmt_Nonlocal = _stmt_Global

    # -- helpers ---------------------------------------------------------------------------
    def _loop_prebind(self, node: ast.For | ast.AsyncFor | ast.While, line: int) -> None:
        """A loop body may read on one pass what it binds on the pass before."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                self.bind(sub.id, line, False, self.last_origin.get(sub.id, UNKNOWN))

    def _bind_target(self, target: ast.expr, value: ast.expr, definite: bool, replay: str | None) -> set[str]:
        if isinstance(target, ast.Name):
            self.bind(target.id, target.lineno, definite, value_origin(value), replay)
            return {target.id}
        bound = set()
        if isinstance(target, ast.Tuple | ast.List):
            values = value.elts if isinstance(value, ast.Tuple | ast.List) else None
            if (
                values is not None
                and len(values) == len(target.elts)
                and not any(isinstance(e, ast.Starred) for e in target.elts)
            ):
                for element, element_value in zip(target.elts, values, strict=True):
                    bound |= self._bind_target(element, element_value, definite, None)
            else:
                for name in target_names(target):
                    self.bind(name.id, name.lineno, definite, value_origin(value))
                    bound.add(name.id)
        elif isinstance(target, ast.Starred):
            bound |= self._bind_target(target.value, value, definite, None)
        return bound

    def _target_reads(self, target: ast.expr, definite: bool) -> None:
        """Subscripts and attribute bases in a target are read: ``df[col] = ...`` reads col."""
        if isinstance(target, ast.Attribute):
            self.expression(target.value, definite)
        elif isinstance(target, ast.Subscript):
            self.expression(target.value, definite)
            self.expression(target.slice, definite)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._target_reads(element, definite)
        elif isinstance(target, ast.Starred):
            self._target_reads(target.value, definite)

    def _mutations(self, node: ast.stmt, definite: bool) -> None:
        for name in statement_mutations(node):
            self.events.append(Event("mutate", name.id, node.lineno, definite))

    def _segment(self, node: ast.stmt) -> str:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        lines = self.source.splitlines()[start - 1 : node.end_lineno]
        return textwrap.dedent("\n".join(lines))

    # -- expressions -------------------------------------------------------------------------
    def expression(self, node: ast.expr, definite: bool) -> None:
        """Reads, calls and in-place changes inside an expression, in source order."""
        for sub in _walk_in_order(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                self.read(sub.id, sub.lineno)
            elif isinstance(sub, ast.Lambda):
                for name in sorted(lambda_free_names(sub)):
                    self.read(name, sub.lineno)
            elif isinstance(sub, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
                for name in sorted(comprehension_free_names(sub)):
                    self.read(name, sub.lineno)
                for walrus in ast.walk(sub):
                    if isinstance(walrus, ast.NamedExpr):
                        self.bind(walrus.target.id, walrus.lineno, False, value_origin(walrus.value))
            elif isinstance(sub, ast.NamedExpr):
                self.bind(sub.target.id, sub.lineno, definite, value_origin(sub.value))
            elif isinstance(sub, ast.Call):
                self._call(sub, definite)

    def _call(self, node: ast.Call, definite: bool) -> None:
        for name in call_mutations(node):
            self.events.append(Event("mutate", name.id, node.lineno, definite))
        callee = dotted_name(node.func)
        if callee is None:
            return
        args = tuple(arg.id if isinstance(arg, ast.Name) else None for arg in node.args)
        keywords = tuple((kw.arg, kw.value.id) for kw in node.keywords if kw.arg and isinstance(kw.value, ast.Name))
        self.events.append(Event("call", callee, node.lineno, definite, args=args, keywords=keywords))


def _walk_in_order(node: ast.expr):
    """Depth-first, left to right, not entering nested scopes (they are summarised)."""
    yield node
    if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
        return
    if isinstance(node, ast.NamedExpr):
        yield from _walk_in_order(node.value)
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            yield from _walk_in_order(child)
        elif isinstance(child, ast.keyword | ast.comprehension):
            for grandchild in ast.iter_child_nodes(child):
                if isinstance(grandchild, ast.expr):
                    yield from _walk_in_order(grandchild)


__all__ = ["CellFacts", "Event", "Origin", "analyze_cell", "value_origin"]
