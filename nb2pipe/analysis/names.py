"""Per-cell name events in execution order: what a cell reads, binds, changes and deletes.

The data-flow stage replays these events across a step's cells to find what the step needs
from earlier steps and what it leaves for later ones.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from nb2pipe.analysis.magics import CleanSource, gc_paused, parse_cell, parse_code
from nb2pipe.analysis.mutations import call_mutations, statement_mutations
from nb2pipe.analysis.origins import UNKNOWN, Origin, root_name, value_origin
from nb2pipe.analysis.scopes import (
    FunctionFacts,
    class_facts,
    comprehension_free_names,
    function_facts,
    lambda_free_names,
)
from nb2pipe.analysis.syntax import child_nodes, dotted_name, imported_module_names, target_leaves, target_names

EventKind = Literal["read", "bind", "mutate", "delete", "call"]


class Event(NamedTuple):
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
    #: top-level modules imported anywhere in the cell, definitions included
    modules: frozenset[str] = frozenset()


def analyze_code(source: str) -> tuple[CleanSource, CellFacts]:
    """A notebook cell's code without IPython syntax, and its events; SyntaxError if it is
    not Python (or is nested too deeply for Python's parser)."""
    with gc_paused():
        # The AST is gone when the collector resumes: it has nothing to scan but the events.
        return _analyze_code(source)


def _analyze_code(source: str) -> tuple[CleanSource, CellFacts]:
    clean, tree = parse_cell(source)
    return clean, _within_depth(tree.body, clean.source)


def analyze_cell(source: str) -> CellFacts:
    """Events of one cell's (magic-free, parseable) source."""
    with gc_paused():
        return _within_depth(parse_code(source).body, source)


def _within_depth(body: list[ast.stmt], source: str) -> CellFacts:
    # Python parses some code deeper than the analysis can walk (e.g. 600 elif branches):
    # that is the cell's problem to fix, reported like a syntax error at the cell
    try:
        return analyze_statements(body, source)
    except RecursionError:
        raise SyntaxError(
            "this code is nested too deeply for nb2pipe's analysis; break it into several statements"
        ) from None


def analyze_statements(body: list[ast.stmt], source: str, lines: list[str] | None = None) -> CellFacts:
    """Events of some top-level statements of ``source`` (``lines``: its lines, when the
    caller has split it already)."""
    visitor = _CellVisitor(source, lines)
    visitor.block(body, definite=True)
    return CellFacts(
        events=tuple(visitor.events),
        functions=MappingProxyType(dict(visitor.functions)),
        imports=MappingProxyType(dict(visitor.imports)),
        star_import=visitor.star_import,
        modules=frozenset(visitor.modules),
    )


@dataclass
class _CellVisitor:
    source: str
    #: the source's lines, split on first use (for the text of definitions)
    lines: list[str] | None = None
    events: list[Event] = field(default_factory=list)
    functions: dict[str, FunctionFacts] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)
    star_import: bool = False
    modules: set[str] = field(default_factory=set)
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
            handler = _STATEMENT_HANDLERS.get(type(stmt))
            bound |= self._plain_statement(stmt, definite) if handler is None else handler(self, stmt, definite)
        return bound

    def _plain_statement(self, node: ast.stmt, definite: bool) -> set[str]:
        """A statement with no handler of its own: the expressions in it are run."""
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expression(child, definite)
        return set()

    def _stmt_Import(self, node: ast.Import | ast.ImportFrom, definite: bool) -> set[str]:
        self.modules |= imported_module_names([node])
        bound = set()
        for alias in node.names:
            if alias.name == "*":
                self.star_import = True
                continue
            statement: ast.Import | ast.ImportFrom
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
            # a ``from`` import mostly binds a function, class or constant, not a module (kinds.py)
            kind = "from" if isinstance(node, ast.ImportFrom) else None
            origin = Origin("import", path=qualified, attr=kind)
            self.bind(name, node.lineno, definite, origin, ast.unparse(statement))
            bound.add(name)
        return bound

    _stmt_ImportFrom = _stmt_Import

    def _stmt_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef, definite: bool) -> set[str]:
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                self.expression(expr, definite)
        self.functions[node.name] = function_facts(node)
        self.modules |= imported_module_names(node.body)
        self.bind(node.name, node.lineno, definite, Origin("def"), self._segment(node))
        return {node.name}

    _stmt_AsyncFunctionDef = _stmt_FunctionDef

    def _stmt_ClassDef(self, node: ast.ClassDef, definite: bool) -> set[str]:
        for expr in [*node.decorator_list, *node.bases, *(kw.value for kw in node.keywords)]:
            self.expression(expr, definite)
        self.functions[node.name] = class_facts(node)
        self.modules |= imported_module_names(node.body)
        # the bases' dotted names: a subclass of torch.nn.Module makes models (kinds.py)
        bases = ",".join(filter(None, (dotted_name(base) for base in node.bases))) or None
        self.bind(node.name, node.lineno, definite, Origin("class", path=bases), self._segment(node))
        return {node.name}

    def _stmt_Assign(self, node: ast.Assign | ast.AnnAssign, definite: bool) -> set[str]:
        if node.value is None:  # a bare annotation binds nothing
            return set()
        self.expression(node.value, definite)
        if type(node) is ast.Assign and len(node.targets) == 1 and type(node.targets[0]) is ast.Name:
            # The commonest statement, `name = value`, in short: the name is neither read nor changed.
            name = node.targets[0].id
            origin = self.last_origin[name] = value_origin(node.value)
            replay = self._segment(node) if isinstance(node.value, ast.Lambda) else None
            self.events.append(Event("bind", name, node.targets[0].lineno, definite, origin, replay))
            return {name}
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
        element = Origin("derived", base=root_name(node.iter))
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
        """Bind a target's names left to right, each to its own part of the value where the
        shapes match (``a, b = f(), g()``)."""
        bound = set()
        stack = [(target, value)]
        while stack:
            target, value = stack.pop()
            if isinstance(target, ast.Name):
                self.bind(target.id, target.lineno, definite, value_origin(value), replay)
                bound.add(target.id)
            elif isinstance(target, ast.Tuple | ast.List):
                values = value.elts if isinstance(value, ast.Tuple | ast.List) else None
                if (
                    values is not None
                    and len(values) == len(target.elts)
                    and not any(isinstance(e, ast.Starred) for e in target.elts)
                ):
                    stack.extend(reversed(list(zip(target.elts, values, strict=True))))
                else:
                    for name in target_names(target):
                        self.bind(name.id, name.lineno, definite, value_origin(value))
                        bound.add(name.id)
            elif isinstance(target, ast.Starred):
                stack.append((target.value, value))
            replay = None  # only a plain `name = lambda ...` is replayed
        return bound

    def _target_reads(self, target: ast.expr, definite: bool) -> None:
        """Subscripts and attribute bases in a target are read: ``df[col] = ...`` reads col."""
        for element in target_leaves(target):
            if isinstance(element, ast.Attribute):
                self.expression(element.value, definite)
            elif isinstance(element, ast.Subscript):
                self.expression(element.value, definite)
                self.expression(element.slice, definite)

    def _mutations(self, node: ast.stmt, definite: bool) -> None:
        for name in statement_mutations(node):
            self.events.append(Event("mutate", name.id, node.lineno, definite))

    def _segment(self, node: ast.stmt) -> str:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        if self.lines is None:
            self.lines = self.source.splitlines()
        return textwrap.dedent("\n".join(self.lines[start - 1 : node.end_lineno]))

    # -- expressions -------------------------------------------------------------------------
    def expression(self, node: ast.expr, definite: bool) -> None:
        """Reads, calls and in-place changes inside an expression, in source order: depth
        first, left to right, with an explicit stack (a 1,000-term sum is as easy as one
        term); nested scopes are summarised, not entered. The commonest nodes come first and
        push their children directly: this loop is most of the time a big cell takes."""
        events = self.events
        stack: list[ast.AST] = [node]
        while stack:
            # Any: the branches below dispatch on ``type(sub)`` by identity through ``kind`` (twice as
            # fast as isinstance in this loop), which mypy cannot follow to narrow ``sub``
            sub: Any = stack.pop()
            kind = type(sub)
            if kind is ast.Name:
                if type(sub.ctx) is ast.Load:
                    events.append(Event("read", sub.id, sub.lineno))
                continue
            if kind is ast.Constant:
                continue
            if kind is ast.Attribute:
                stack.append(sub.value)
                continue
            if kind is ast.BinOp:
                stack += (sub.right, sub.left)
                continue
            if kind is ast.Call:
                self._call(sub, definite)
                stack += reversed(sub.keywords)
                stack += reversed(sub.args)
                stack.append(sub.func)
                continue
            if kind is ast.Subscript:
                stack += (sub.slice, sub.value)
                continue
            if kind is ast.UnaryOp:
                stack.append(sub.operand)
                continue
            if isinstance(sub, ast.Lambda):
                for name in sorted(lambda_free_names(sub)):
                    self.read(name, sub.lineno)
                continue
            if isinstance(sub, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
                for name in sorted(comprehension_free_names(sub)):
                    self.read(name, sub.lineno)
                for walrus in ast.walk(sub):
                    if isinstance(walrus, ast.NamedExpr):
                        self.bind(walrus.target.id, walrus.lineno, False, value_origin(walrus.value))
                continue
            if isinstance(sub, ast.NamedExpr):
                self.bind(sub.target.id, sub.lineno, definite, value_origin(sub.value))
                stack.append(sub.value)
                continue
            if isinstance(sub, ast.keyword):
                stack.append(sub.value)
                continue
            stack += reversed(child_nodes(sub))

    def _call(self, node: ast.Call, definite: bool) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):  # only a method call changes its receiver
            for name in call_mutations(node):
                self.events.append(Event("mutate", name.id, node.lineno, definite))
        callee = func.id if isinstance(func, ast.Name) else dotted_name(func)
        if callee is None:
            return
        args = tuple([arg.id if isinstance(arg, ast.Name) else None for arg in node.args])
        keywords: tuple[tuple[str, str], ...] = ()
        if node.keywords:
            keywords = tuple(
                [(kw.arg, kw.value.id) for kw in node.keywords if kw.arg and isinstance(kw.value, ast.Name)]
            )
        self.events.append(Event("call", callee, node.lineno, definite, args=args, keywords=keywords))


#: ``_CellVisitor._stmt_Assign`` for ``ast.Assign`` ..., looked up once rather than per statement
_STATEMENT_HANDLERS: dict[type[ast.AST], Callable[[_CellVisitor, Any, bool], set[str]]] = {
    getattr(ast, name.removeprefix("_stmt_")): handler
    for name, handler in vars(_CellVisitor).items()
    if name.startswith("_stmt_") and hasattr(ast, name.removeprefix("_stmt_"))
}

__all__ = ["CellFacts", "Event", "analyze_cell", "analyze_code", "analyze_statements"]
