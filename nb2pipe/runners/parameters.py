"""``--param NAME=VALUE`` strings -> values of the pipeline parameters' declared types.

NAME is the notebook's name for the parameter (``größe``), or the pipeline input KFP knows
it by (``grosse``); the values come back keyed by the pipeline input. A value is checked as
the parameters cell's literals are: what KFP cannot carry is refused here, not in a step.
An optional parameter (a ``None`` default) that is not given is left out: KFP runs it unset
and the step sees None.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nb2pipe.analysis.parameters import MAX_NESTING, carry_problem
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import Parameter

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_EXAMPLES = {"str": "text", "bool": "true", "int": "3", "float": "0.5", "list": "[1, 2]", "dict": '{"a": 1}'}


def coerce_parameters(declared: Sequence[Parameter], assignments: Sequence[str]) -> dict[str, Any]:
    """``{pipeline input: value}`` for each ``NAME=VALUE``; raise :class:`Nb2PipeError` on a
    name the pipeline lacks or a value its type (or KFP) cannot take."""
    by_name = {p.name: p for p in declared} | {p.pipeline_input: p for p in declared}
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        name = name.strip()
        if not equals or not name:
            raise Nb2PipeError(f"--param {assignment!r}: write it as NAME=VALUE")
        if name not in by_name:
            known = ", ".join(sorted(p.name for p in declared)) or "none (the notebook has no parameters cell)"
            raise Nb2PipeError(f"--param {name}: no such parameter; parameters are: {known}")
        parameter = by_name[name]
        values[parameter.pipeline_input] = _coerce(parameter, text)
    return values


def _coerce(parameter: Parameter, text: str) -> Any:
    try:
        value = _typed(parameter, text)
    except RecursionError:  # json gives up thousands of levels deep
        raise Nb2PipeError(
            f"--param {parameter.name}={_short(text)}: nested too deeply to read; "
            f"KFP carries lists and dicts at most {MAX_NESTING} deep"
        ) from None
    except ValueError:
        kind = f"an optional {parameter.type}" if parameter.optional else f"a {parameter.type}"
        example = _EXAMPLES[parameter.type]
        raise Nb2PipeError(
            f"--param {parameter.name}={_short(text)}: {parameter.name} is {kind} parameter "
            f"(e.g. {parameter.name}={example})"
        ) from None
    problem = carry_problem(value)
    if problem:
        raise Nb2PipeError(f"--param {parameter.name}={_short(text)}: {problem}")
    return value


def _typed(parameter: Parameter, text: str) -> Any:
    """``text`` as a value of the parameter's type; ValueError (or, for JSON nested thousands
    deep, RecursionError) when it is not one."""
    kind = parameter.type
    if kind == "str":
        return text
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)  # "nan" and "inf" parse; carry_problem refuses them
    value = json.loads(text)
    if (kind == "list" and isinstance(value, list)) or (kind == "dict" and isinstance(value, dict)):
        return value
    raise ValueError(text)


def _short(text: str) -> str:
    """``text`` fit for a message: cut short, and escaped where it would not print."""
    shown = text if text.isprintable() else repr(text)[1:-1].encode("ascii", "backslashreplace").decode()
    return shown if len(shown) <= 60 else f"{shown[:57]}..."
