"""When code changes a value in place, and the method names that decide it.

A value is taken to change in place when code
- assigns to or deletes one of its attributes or items (``df["x"] = ...``, ``del d[k]``),
- calls a method with ``inplace=True``,
- calls a method known to change its receiver (``append``, ``fit``, ``update`` ...), or
- calls any method as a whole statement, result discarded, unless the method is known to
  only look at or export the value (``head``, ``plot``, ``to_csv`` ...).
Erring towards "changed" only costs an extra artifact; erring the other way would hand a
later step a stale value. Module-level (names.py) and function-level (scopes.py) analysis
share these rules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from nb2pipe.analysis.syntax import target_leaves

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
