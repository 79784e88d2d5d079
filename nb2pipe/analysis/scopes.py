"""Name facts of nested scopes (functions, classes, lambdas, comprehensions) and the
mutation rules shared by module-level and function-level analysis.

A value is taken to change in place when code
- assigns to or deletes one of its attributes or items (``df["x"] = ...``, ``del d[k]``),
- calls a method with ``inplace=True``,
- calls a method known to change its receiver (``append``, ``fit``, ``update`` ...), or
- calls any method as a whole statement, result discarded, unless the method is known to
  only look at or export the value (``head``, ``plot``, ``to_csv`` ...).
Erring towards "changed" only costs an extra artifact; erring the other way would hand a
later step a stale value.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

#: Methods that change their receiver even when their result is used.
MUTATING_METHODS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "remove",
        "pop",
        "popitem",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "sort",
        "reverse",
        "fit",
        "fit_transform",
        "fit_predict",
        "partial_fit",
        "fit_resample",
        "compile",
        "train",
        "set_params",
        "load_weights",
        "set_weights",
        "shuffle",
        "seed",
        "resize",
        "fill",
        "put",
        "itemset",
        "add_module",
        "register_buffer",
        "appendleft",
        "extendleft",
        "rotate",
        "popleft",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        "set_index_inplace",
        "__setitem__",
        "__delitem__",
    }
)

#: Methods that, called as a statement with the result discarded, leave their receiver as
#: it was: displays, exports and pandas/numpy methods that return a new object.
LOOK_ONLY_METHODS = frozenset(
    {
        "head",
        "tail",
        "describe",
        "info",
        "plot",
        "hist",
        "boxplot",
        "show",
        "display",
        "print",
        "to_csv",
        "to_parquet",
        "to_json",
        "to_excel",
        "to_pickle",
        "to_html",
        "to_markdown",
        "to_string",
        "to_sql",
        "to_feather",
        "to_hdf",
        "to_numpy",
        "to_list",
        "tolist",
        "to_dict",
        "savefig",
        "save",
        "save_model",
        "summary",
        "count",
        "value_counts",
        "mean",
        "sum",
        "min",
        "max",
        "std",
        "var",
        "median",
        "nunique",
        "unique",
        "corr",
        "cov",
        "isna",
        "isnull",
        "notna",
        "notnull",
        "sample",
        "copy",
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
        "score",
        "transform",
        "inverse_transform",
        "evaluate",
        "get_params",
        "memory_usage",
        "keys",
        "values",
        "items",
        "get",
        "nlargest",
        "nsmallest",
        "groupby",
        "agg",
        "aggregate",
        "filter",
        "select_dtypes",
        "round",
        "abs",
        "any",
        "all",
        "argmax",
        "argmin",
        "quantile",
        "cumsum",
        "cumprod",
        "diff",
        "pct_change",
        "shift",
        "rolling",
        "resample",
        "pivot_table",
        "merge",
        "join",
        "drop",
        "dropna",
        "fillna",
        "rename",
        "reset_index",
        "set_index",
        "sort_values",
        "sort_index",
        "replace",
        "astype",
        "apply",
        "applymap",
        "map",
        "where",
        "mask",
        "clip",
        "duplicated",
        "drop_duplicates",
        "explode",
        "melt",
        "pivot",
        "stack",
        "unstack",
        "transpose",
        "dot",
        "reshape",
        "flatten",
        "ravel",
        "squeeze",
        "format",
        "split",
        "strip",
        "lower",
        "upper",
        "startswith",
        "endswith",
        "encode",
        "decode",
        "read",
        "write",
        "close",
        "flush",
        "seek",
        "tell",
        "readline",
        "readlines",
        "interpolate",
        "query",
        "assign",
        "loc",
        "iloc",
        "idxmax",
        "idxmin",
        "equals",
        "isin",
        "between",
        "corrwith",
        "describe_option",
        "info_option",
        "iterrows",
        "itertuples",
        "show_config",
    }
)


def chain_base(node: ast.expr) -> ast.Name | None:
    """``df`` for ``df``, ``df.a``, ``df["a"].b``; None when the chain passes a call."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node if isinstance(node, ast.Name) else None


def dotted_name(node: ast.expr) -> str | None:
    """``np.random.shuffle`` for that attribute chain of plain names, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def statement_mutations(stmt: ast.stmt) -> Iterator[ast.Name]:
    """Names a statement may change in place (not counting plain rebinding)."""
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AugAssign | ast.AnnAssign):
        targets = [stmt.target]
    elif isinstance(stmt, ast.Delete):
        targets = list(stmt.targets)
    for target in targets:
        yield from _store_bases(target)
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        if isinstance(call.func, ast.Attribute) and call.func.attr not in LOOK_ONLY_METHODS:
            base = chain_base(call.func.value)
            if base is not None:
                yield base


def _store_bases(target: ast.expr) -> Iterator[ast.Name]:
    for element in target_leaves(target):
        if isinstance(element, ast.Attribute | ast.Subscript):
            base = chain_base(element)
            if base is not None:
                yield base


def call_mutations(call: ast.Call) -> Iterator[ast.Name]:
    """Receivers a call changes wherever it appears: ``inplace=True`` or a mutating method."""
    if not isinstance(call.func, ast.Attribute):
        return
    inplace = any(
        kw.arg == "inplace" and isinstance(kw.value, ast.Constant) and kw.value.value is True for kw in call.keywords
    )
    if inplace or call.func.attr in MUTATING_METHODS:
        base = chain_base(call.func.value)
        if base is not None:
            yield base


def target_names(target: ast.expr) -> Iterator[ast.Name]:
    """Plain names a target binds (``a`` and ``b`` in ``a, *b = ...``)."""
    for element in target_leaves(target):
        if isinstance(element, ast.Name):
            yield element


def target_leaves(target: ast.expr) -> Iterator[ast.expr]:
    """A target's parts left to right, through tuples, lists and stars, with an explicit
    stack: nothing about user code may depend on Python's recursion limit."""
    stack = [target]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Tuple | ast.List):
            stack.extend(reversed(node.elts))
        elif isinstance(node, ast.Starred):
            stack.append(node.value)
        else:
            yield node


def imported_module_names(body: list[ast.stmt]) -> set[str]:
    """Top-level modules that statements import, at any depth of blocks and definitions."""
    found: set[str] = set()
    for stmt in _statements(body):
        if isinstance(stmt, ast.Import):
            found.update(alias.name.split(".")[0] for alias in stmt.names)
        elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
            found.add(stmt.module.split(".")[0])
    return found


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement in blocks at any depth (imports are statements: expressions, a big
    cell's bulk, need no visit)."""
    pending = list(body)
    while pending:
        stmt = pending.pop()
        yield stmt
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(stmt, name, ()):
                # an except clause or a match case holds statements without being one
                pending.extend([child] if isinstance(child, ast.stmt) else child.body)


#: Fields that hold no names: expression contexts and operators.
_MARKER_FIELDS = frozenset({"ctx", "op", "ops"})


@cache
def _node_fields(node_type: type[ast.AST]) -> tuple[str, ...]:
    return tuple(name for name in node_type._fields if name not in _MARKER_FIELDS)


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """``ast.iter_child_nodes`` as a list, less the context and operator markers, which carry
    no names (and make up a third of a big cell's nodes)."""
    children: list[ast.AST] = []
    for name in _node_fields(type(node)):
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            children.append(value)
        elif isinstance(value, list):
            children.extend(item for item in value if isinstance(item, ast.AST))
    return children


@dataclass(frozen=True)
class FunctionFacts:
    """What calling a function defined in the notebook reads and changes."""

    name: str
    params: tuple[str, ...]
    deferred_reads: frozenset[str]
    mutated_globals: frozenset[str]
    assigned_globals: frozenset[str]
    mutated_params: frozenset[str]
    is_generator: bool


ScopeKind = Literal["function", "class", "comprehension"]
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class _Scope:
    """Loads, stores and mutations in one function/class/lambda/comprehension body; the free
    names of the scopes nested in it count as its loads."""

    kind: ScopeKind
    parent: _Scope | None = None
    #: a function's parameters; a comprehension's loop targets
    params: frozenset[str] = frozenset()
    loads: set[str] = field(default_factory=set)
    stores: set[str] = field(default_factory=set)
    declared_global: set[str] = field(default_factory=set)
    declared_nonlocal: set[str] = field(default_factory=set)
    mutated: set[str] = field(default_factory=set)
    #: walrus targets anywhere inside, nested scopes included: a comprehension's bind the
    #: scope that holds it
    walrus: set[str] = field(default_factory=set)
    is_generator: bool = False

    def local_names(self) -> set[str]:
        return (self.stores - self.declared_global - self.declared_nonlocal) | self.params

    def free_names(self) -> set[str]:
        """Names this scope reads from the scopes around it."""
        if self.kind == "class":
            return self.loads - (self.stores - self.declared_global)
        if self.kind == "comprehension":
            return self.loads - self.params
        return self.loads - self.local_names() | (self.declared_global & self.loads)


def _summarise(root: _Scope, code: Iterable[ast.AST]) -> _Scope:
    """Scan ``code`` as the body of ``root``, folding every nested scope's free names into the
    scope around it. The walk keeps its own stack, so 300 nested lambdas or a 1,000-long
    chain of calls are no deeper for it than one."""
    scopes: list[_Scope] = []
    stack: list[tuple[ast.AST, _Scope]] = [(node, root) for node in code]
    while stack:
        node, scope = stack.pop()
        nested = _nested_scope(node, scope, stack)
        if nested is not None:
            scopes.append(nested)
            continue
        _note(node, scope)
        if not isinstance(node, ast.Global | ast.Nonlocal | ast.Import | ast.ImportFrom):
            stack.extend((child, scope) for child in child_nodes(node))
    # Scopes were found outside-in, so in reverse each is complete before its parent reads it.
    for nested in reversed(scopes):
        parent = nested.parent
        assert parent is not None
        parent.loads |= nested.free_names()
        parent.walrus |= nested.walrus
        if nested.kind == "comprehension":
            parent.stores |= nested.walrus
    return root


def _nested_scope(node: ast.AST, scope: _Scope, stack: list[tuple[ast.AST, _Scope]]) -> _Scope | None:
    """For a node that opens a scope: queue what runs in ``scope`` (decorators, defaults,
    bases) and the body in the new scope, which is returned; None for other nodes."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        outer: list[ast.expr | None] = [*node.args.defaults, *node.args.kw_defaults]
        body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
        nested = _Scope("function", scope, frozenset(_arg_names(node.args)))
        if not isinstance(node, ast.Lambda):
            scope.stores.add(node.name)
            outer += node.decorator_list
    elif isinstance(node, ast.ClassDef):
        scope.stores.add(node.name)
        outer = [*node.decorator_list, *node.bases, *(kw.value for kw in node.keywords)]
        body = list(node.body)
        nested = _Scope("class", scope)
    elif isinstance(node, _COMPREHENSIONS):
        targets = {name.id for generator in node.generators for name in target_names(generator.target)}
        outer = []
        body = _comprehension_code(node)
        nested = _Scope("comprehension", scope, frozenset(targets))
    else:
        return None
    stack.extend((expr, scope) for expr in outer if expr is not None)
    stack.extend((child, nested) for child in body)
    return nested


def _comprehension_code(node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> list[ast.AST]:
    code: list[ast.AST] = []
    for generator in node.generators:
        code.append(generator.iter)
        code += generator.ifs
    code += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    return code


def _note(node: ast.AST, scope: _Scope) -> None:
    """What ``node`` itself does to names in ``scope`` (its children are scanned apart)."""
    if isinstance(node, ast.Name):
        (scope.loads if isinstance(node.ctx, ast.Load) else scope.stores).add(node.id)
    elif isinstance(node, ast.Call):
        scope.mutated.update(name.id for name in call_mutations(node))
    elif isinstance(node, ast.stmt):
        scope.mutated.update(name.id for name in statement_mutations(node))
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            scope.loads.add(node.target.id)  # `x += 1` reads x before rebinding it
        elif isinstance(node, ast.Global):
            scope.declared_global.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            scope.declared_nonlocal.update(node.names)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            scope.stores.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    elif isinstance(node, ast.Yield | ast.YieldFrom):
        scope.is_generator = True
    elif isinstance(node, ast.NamedExpr):
        scope.walrus.add(node.target.id)
    elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
        scope.stores.add(node.name)
    elif isinstance(node, ast.MatchMapping) and node.rest:
        scope.stores.add(node.rest)


def _arg_names(args: ast.arguments) -> list[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        every.append(args.vararg)
    if args.kwarg:
        every.append(args.kwarg)
    return [arg.arg for arg in every]


def _function_scope(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> _Scope:
    body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    return _summarise(_Scope("function", params=frozenset(_arg_names(node.args))), body)


def function_free_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Names a function body reads from enclosing scopes when it is called."""
    return _function_scope(node).free_names()


def lambda_free_names(node: ast.Lambda) -> set[str]:
    return function_free_names(node)


def class_free_names(node: ast.ClassDef) -> set[str]:
    """Names a class body and its methods read from outside the class."""
    return _summarise(_Scope("class"), node.body).free_names()


def comprehension_free_names(node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> set[str]:
    targets = frozenset(name.id for generator in node.generators for name in target_names(generator.target))
    return _summarise(_Scope("comprehension", params=targets), _comprehension_code(node)).free_names()


def function_facts(node: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionFacts:
    scope = _function_scope(node)
    local = scope.local_names()
    return FunctionFacts(
        name=node.name,
        params=tuple(_arg_names(node.args)),
        deferred_reads=frozenset(scope.free_names()),
        mutated_globals=frozenset(scope.mutated - local),
        assigned_globals=frozenset(scope.declared_global & scope.stores),
        mutated_params=frozenset(scope.mutated & scope.params),
        is_generator=scope.is_generator,
    )


def class_facts(node: ast.ClassDef) -> FunctionFacts:
    return FunctionFacts(
        name=node.name,
        params=(),
        deferred_reads=frozenset(class_free_names(node)),
        mutated_globals=frozenset(),
        assigned_globals=frozenset(),
        mutated_params=frozenset(),
        is_generator=False,
    )
