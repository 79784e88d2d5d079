"""``--param NAME=VALUE`` strings -> values of the pipeline parameters' declared types."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import Parameter

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce_parameters(declared: Sequence[Parameter], assignments: Sequence[str]) -> dict[str, Any]:
    by_name = {p.name: p for p in declared}
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        name = name.strip()
        if not equals or not name:
            raise Nb2PipeError(f"--param {assignment!r}: write it as NAME=VALUE")
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none (the notebook has no parameters cell)"
            raise Nb2PipeError(f"--param {name}: no such parameter; parameters are: {known}")
        values[name] = _coerce(by_name[name], text)
    return values


def _coerce(parameter: Parameter, text: str) -> Any:
    kind = parameter.type
    try:
        if kind == "str":
            return text
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise ValueError
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        value = json.loads(text)
        if (kind == "list" and isinstance(value, list)) or (kind == "dict" and isinstance(value, dict)):
            return value
        raise ValueError
    except ValueError:
        example = {"bool": "true", "int": "3", "float": "0.5", "list": "[1, 2]", "dict": '{"a": 1}'}[kind]
        raise Nb2PipeError(
            f"--param {parameter.name}={text}: {parameter.name} is a {kind} parameter (e.g. {parameter.name}={example})"
        ) from None
