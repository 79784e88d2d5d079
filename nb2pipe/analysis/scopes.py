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
from collections.abc import Iterator
from dataclasses import dataclass

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
    if isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _store_bases(element)
    elif isinstance(target, ast.Starred):
        yield from _store_bases(target.value)
    elif isinstance(target, ast.Attribute | ast.Subscript):
        base = chain_base(target)
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
    if isinstance(target, ast.Name):
        yield target
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from target_names(element)
    elif isinstance(target, ast.Starred):
        yield from target_names(target.value)


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


class _ScopeScan(ast.NodeVisitor):
    """Loads, stores and mutations in one function/class/lambda/comprehension body."""

    def __init__(self) -> None:
        self.loads: set[str] = set()
        self.stores: set[str] = set()
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()
        self.mutated: set[str] = set()
        self.is_generator = False

    # Nested scopes: their free names are loads of this scope.
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.stores.add(node.name)
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                self.visit(expr)
        self.loads |= function_free_names(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.stores.add(node.name)
        for expr in [*node.decorator_list, *node.bases, *(kw.value for kw in node.keywords)]:
            self.visit(expr)
        self.loads |= class_free_names(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in [*node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                self.visit(expr)
        self.loads |= lambda_free_names(node)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> None:
        self.loads |= comprehension_free_names(node)
        for sub in ast.walk(node):
            if isinstance(sub, ast.NamedExpr):
                self.stores.add(sub.target.id)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):  # `x += 1` reads x before rebinding it
            self.loads.add(node.target.id)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.declared_nonlocal.update(node.names)

    def visit_Yield(self, node: ast.Yield | ast.YieldFrom) -> None:
        self.is_generator = True
        self.generic_visit(node)

    visit_YieldFrom = visit_Yield

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.add(node.id)
        else:
            self.stores.add(node.id)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            self.stores.add((alias.asname or alias.name).split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.stores.add(node.name)

    def visit_Call(self, node: ast.Call) -> None:
        self.mutated.update(name.id for name in call_mutations(node))
        self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt):
            self.mutated.update(name.id for name in statement_mutations(node))
        super().generic_visit(node)


def _arg_names(args: ast.arguments) -> list[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        every.append(args.vararg)
    if args.kwarg:
        every.append(args.kwarg)
    return [arg.arg for arg in every]


def _scan_body(body: list[ast.stmt]) -> _ScopeScan:
    scan = _ScopeScan()
    for stmt in body:
        scan.visit(stmt)
    return scan


def _locals(scan: _ScopeScan, params: list[str]) -> set[str]:
    return (scan.stores - scan.declared_global - scan.declared_nonlocal) | set(params)


def function_free_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Names a function body reads from enclosing scopes when it is called."""
    body = node.body if isinstance(node.body, list) else [ast.Expr(node.body)]
    scan = _scan_body(body)
    return scan.loads - _locals(scan, _arg_names(node.args)) | (scan.declared_global & scan.loads)


def lambda_free_names(node: ast.Lambda) -> set[str]:
    return function_free_names(node)


def class_free_names(node: ast.ClassDef) -> set[str]:
    """Names a class body and its methods read from outside the class."""
    scan = _scan_body(node.body)
    return scan.loads - (scan.stores - scan.declared_global)


def comprehension_free_names(node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> set[str]:
    scan = _ScopeScan()
    targets: set[str] = set()
    for generator in node.generators:
        targets.update(name.id for name in target_names(generator.target))
        scan.visit(generator.iter)
        for condition in generator.ifs:
            scan.visit(condition)
    elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    for element in elements:
        scan.visit(element)
    return scan.loads - targets


def function_facts(node: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionFacts:
    params = _arg_names(node.args)
    scan = _scan_body(node.body)
    local = _locals(scan, params)
    free = function_free_names(node)
    return FunctionFacts(
        name=node.name,
        params=tuple(params),
        deferred_reads=frozenset(free),
        mutated_globals=frozenset(scan.mutated - local),
        assigned_globals=frozenset(scan.declared_global & scan.stores),
        mutated_params=frozenset(scan.mutated & set(params)),
        is_generator=scan.is_generator,
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
