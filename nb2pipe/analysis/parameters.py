"""The ``parameters`` cell (literal assignments -> typed pipeline inputs) and the ``metrics``
cell (the names of metric values).

A parameter's value must survive KFP's trip: the compiler stores defaults as protobuf
``Value``s (numbers are 64-bit floats, objects have string keys, no ``None`` inside a list or
dict), in YAML, in UTF-8. :func:`carry_problem` says why a value cannot make it; ``--param``
values are checked with it too.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

from nb2pipe.analysis.magics import parse_code
from nb2pipe.errors import Diagnostic, Location, error
from nb2pipe.ir import Parameter, ParameterType

_TYPES: dict[type, ParameterType] = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
#: annotation names -> parameter types (``typing`` spellings included)
_ANNOTATIONS: dict[str, ParameterType] = {
    "int": "int",
    "float": "float",
    "str": "str",
    "bool": "bool",
    "list": "list",
    "dict": "dict",
    "List": "list",
    "Dict": "dict",
    "Text": "str",
}
#: annotations that say nothing about the type: the value decides (str for None)
_UNTYPED = frozenset({"Any", "object", "NoneType", "None"})
_PARAM_HINT = "a parameters cell holds assignments of literals, e.g. n_estimators = 100 or features = ['a', 'b']"
#: KFP keeps numbers as 64-bit floats: integers beyond this lose digits on the way
MAX_EXACT_INT = 2**53
#: protobuf refuses to decode a ``Value`` nested ~100 messages deep (a dict level costs 3, a list 2)
MAX_NESTING = 32


@dataclass(frozen=True)
class MetricName:
    name: str
    line: int


@dataclass(frozen=True)
class ParsedParameters:
    parameters: tuple[Parameter, ...]
    problems: tuple[Diagnostic, ...]
    #: names that refused lines assign: still defined for the rest of the analysis, so the
    #: refusal is the only error about them
    refused: frozenset[str]


def parse_parameters(source: str, where: Location) -> ParsedParameters:
    """Typed parameters from a cell of ``name = literal`` lines (annotations allowed).

    ``name = None`` (papermill's idiom) is an optional parameter, typed by its annotation
    (``Optional[int]``, ``int | None``, ``int``; str without one); unset, the step sees None.
    """
    tree = parse_code(source)  # SyntaxError for code too deep for Python's parser too
    parameters: dict[str, Parameter] = {}
    problems: list[Diagnostic] = []
    refused: set[str] = set()
    for stmt in tree.body:
        at = Location(where.notebook, where.cell, where.execution_count, stmt.lineno)
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or stray string documents the cell
        found = _parameter(stmt, at)
        if isinstance(found, Parameter):
            parameters[found.name] = found
        else:
            problems.append(found)
            refused |= _assigned_names(stmt)
    return ParsedParameters(tuple(parameters.values()), tuple(problems), frozenset(refused - set(parameters)))


def _parameter(stmt: ast.stmt, at: Location) -> Parameter | Diagnostic:
    target, value, annotation = _assignment(stmt)
    if target is None or value is None:
        return error("invalid-parameter", "parameters cells may only assign literals to names", at, _PARAM_HINT)
    try:
        literal = ast.literal_eval(value)
    except ValueError:
        hint = "compute derived values in a step; parameters must be literals"
        return error("invalid-parameter", f"{target} is not assigned a literal value", at, hint)
    except (TypeError, RecursionError, MemoryError) as exc:  # {[1]: 2}; nesting too deep to evaluate
        reason = str(exc) or type(exc).__name__
        return error("invalid-parameter", f"{target}: its literal cannot be built ({reason})", at, _PARAM_HINT)
    type_name, literal, problem = _parameter_type(literal, annotation)
    if problem:
        return error("invalid-parameter", f"{target}: {problem}", at, _PARAM_HINT)
    return Parameter(target, type_name, literal, at, optional=literal is None)


def _assignment(stmt: ast.stmt) -> tuple[str | None, ast.expr | None, ast.expr | None]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value, None
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id, stmt.value, stmt.annotation
    return None, None, None


def _assigned_names(stmt: ast.stmt) -> set[str]:
    """The names a statement binds, whatever its form (``a, b = ...``, ``import x``)."""
    names = {node.id for node in ast.walk(stmt) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        names |= {(alias.asname or alias.name).split(".")[0] for alias in stmt.names if alias.name != "*"}
    elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        names.add(stmt.name)
    return names


def _parameter_type(value: Any, annotation: ast.expr | None) -> tuple[ParameterType, Any, str]:
    declared, problem = _declared_type(annotation) if annotation is not None else (None, "")
    if problem:
        return "str", value, problem
    if value is None:  # an optional parameter: the annotation types it, else str
        return declared or "str", None, ""
    found = _TYPES.get(type(value))
    if found is None:
        return (
            "str",
            value,
            (f"{type(value).__name__} values cannot be pipeline parameters (use int, float, str, bool, list or dict)"),
        )
    if declared == "float" and found == "int":
        value, found = float(value), "float"
    if declared is not None and declared != found:
        return found, value, f"declared {declared} but assigned a {found}"
    return found, value, carry_problem(value)


def _declared_type(annotation: ast.expr) -> tuple[ParameterType | None, str]:
    """The parameter type an annotation names (None: it does not say), or why it is refused.

    ``Optional[T]``, ``Union[T, None]``, ``T | None``, ``typing.T`` and quoted annotations
    all come down to T.
    """
    shown = ast.unparse(annotation)
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value.strip(), mode="eval").body
        except SyntaxError:
            return None, f"annotation {shown} is not a type"
    members = [m for m in _union_members(annotation) if not _is_none(m)]
    if len(members) > 1:
        return None, f"annotation {shown!r} allows several types; a pipeline parameter has one"
    if not members:
        return None, ""
    member = members[0]
    base = member.value if isinstance(member, ast.Subscript) else member
    name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else ""
    if name in _UNTYPED:
        return None, ""
    if name in _ANNOTATIONS and (not isinstance(member, ast.Subscript) or _ANNOTATIONS[name] in ("list", "dict")):
        return _ANNOTATIONS[name], ""
    return None, f"annotation {shown!r} is not one of int, float, str, bool, list, dict (or Optional of one)"


def _union_members(annotation: ast.expr) -> list[ast.expr]:
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _union_members(annotation.left) + _union_members(annotation.right)
    if isinstance(annotation, ast.Subscript):
        base = annotation.value
        name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else ""
        inner = annotation.slice
        elements = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if name == "Optional" and len(elements) == 1:
            return [*_union_members(elements[0]), ast.Constant(None)]
        if name == "Union":
            return [member for element in elements for member in _union_members(element)]
    return [annotation]


def _is_none(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id == "NoneType"
    )


def carry_problem(value: Any) -> str:
    """Why KFP cannot carry ``value`` as a parameter value ("" when it can).

    Walks the value without recursion, so a value nested thousands deep is answered, not a
    RecursionError.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]  # (item, how many lists and dicts enclose it)
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict) and depth >= MAX_NESTING:
            return f"lists and dicts nested more than {MAX_NESTING} deep cannot be carried by KFP (protobuf's limit)"
        if isinstance(item, list):
            stack.extend((element, depth + 1) for element in reversed(item))
        elif isinstance(item, dict):
            for key, element in reversed(item.items()):
                if not isinstance(key, str):
                    return f"dict keys must be strings (KFP parameter values are JSON objects); got {_short(key)}"
                stack.extend([(element, depth + 1), (key, depth + 1)])
        else:
            problem = _scalar_problem(item, inside=depth > 0)
            if problem:
                return problem
    return ""


def _scalar_problem(item: Any, inside: bool) -> str:
    if isinstance(item, bool):
        return ""
    if isinstance(item, int):
        if abs(item) <= MAX_EXACT_INT:
            return ""
        return (
            f"{_short(item)} is beyond ±2**53: KFP keeps numbers as 64-bit floats, so it would lose digits "
            "(pass it as a str)"
        )
    if isinstance(item, float):
        return "" if math.isfinite(item) else f"{item} cannot be carried: KFP parameter values are finite JSON numbers"
    if isinstance(item, str):
        return _string_problem(item)
    kind = "None" if item is None else type(item).__name__
    if inside:
        return f"a list or dict holding {kind} cannot be a KFP parameter value (str, int, float, bool, list, dict can)"
    return f"{kind} values cannot be pipeline parameters (use int, float, str, bool, list or dict)"


def _string_problem(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"the string {_short(text)} holds a lone surrogate, which UTF-8 (and so KFP) cannot carry"
    return ""


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else f"{shown[:37]}..."


def parse_metrics(source: str, where: Location) -> tuple[list[MetricName], list[Diagnostic]]:
    """Metric names from lines of ``name`` or ``print(name)`` (Kale's form)."""
    tree = parse_code(source)
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
