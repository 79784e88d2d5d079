"""The ``parameters`` cell (literal assignments -> typed pipeline inputs) and the ``metrics``
cell (the names of metric values)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from nb2pipe.errors import Diagnostic, Location, error
from nb2pipe.ir import Parameter, ParameterType

_TYPES: dict[type, ParameterType] = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
_PARAM_HINT = "a parameters cell holds assignments of literals, e.g. n_estimators = 100 or features = ['a', 'b']"


@dataclass(frozen=True)
class MetricName:
    name: str
    line: int


def parse_parameters(source: str, where: Location) -> tuple[list[Parameter], list[Diagnostic]]:
    """Typed parameters from a cell of ``name = literal`` lines (annotations allowed)."""
    tree = ast.parse(source)
    parameters: dict[str, Parameter] = {}
    problems: list[Diagnostic] = []
    for stmt in tree.body:
        at = Location(where.notebook, where.cell, where.execution_count, stmt.lineno)
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or stray string documents the cell
        target, value, annotation = _assignment(stmt)
        if target is None or value is None:
            problems.append(
                error("invalid-parameter", "parameters cells may only assign literals to names", at, _PARAM_HINT)
            )
            continue
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            problems.append(
                error(
                    "invalid-parameter",
                    f"{target} is not assigned a literal value",
                    at,
                    "compute derived values in a step; parameters must be literals",
                )
            )
            continue
        type_name, literal, problem = _parameter_type(literal, annotation)
        if problem:
            problems.append(error("invalid-parameter", f"{target}: {problem}", at, _PARAM_HINT))
            continue
        parameters[target] = Parameter(target, type_name, literal, at)
    return list(parameters.values()), problems


def _assignment(stmt: ast.stmt) -> tuple[str | None, ast.expr | None, ast.expr | None]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value, None
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id, stmt.value, stmt.annotation
    return None, None, None


def _parameter_type(value: Any, annotation: ast.expr | None) -> tuple[ParameterType, Any, str]:
    found = _TYPES.get(type(value))
    if found is None:
        shown = "None" if value is None else type(value).__name__
        return "str", value, f"{shown} values cannot be pipeline parameters (use int, float, str, bool, list or dict)"
    if annotation is None:
        return found, value, ""
    declared = annotation.id if isinstance(annotation, ast.Name) else ast.unparse(annotation)
    if declared not in _TYPES.values():
        return found, value, f"annotation {declared!r} is not one of int, float, str, bool, list, dict"
    if declared == "float" and found == "int":
        return "float", float(value), ""
    if declared != found:
        return found, value, f"declared {declared} but assigned a {found}"
    return found, value, ""


def parse_metrics(source: str, where: Location) -> tuple[list[MetricName], list[Diagnostic]]:
    """Metric names from lines of ``name`` or ``print(name)`` (Kale's form)."""
    tree = ast.parse(source)
    names: list[MetricName] = []
    problems: list[Diagnostic] = []
    for stmt in tree.body:
        expr = stmt.value if isinstance(stmt, ast.Expr) else None
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Name)
            and expr.func.id == "print"
            and len(expr.args) == 1
            and not expr.keywords
        ):
            expr = expr.args[0]
        if isinstance(expr, ast.Name):
            names.append(MetricName(expr.id, stmt.lineno))
        else:
            problems.append(
                error(
                    "invalid-metrics",
                    "a metrics cell lists variable names, one per line",
                    Location(where.notebook, where.cell, where.execution_count, stmt.lineno),
                    "write `accuracy` or `print(accuracy)`; compute the value in a step",
                )
            )
    return names, problems
