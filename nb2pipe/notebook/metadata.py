"""One reader for the notebook's settings in ``metadata.nb2pipe`` (and Kale's
``metadata.kubeflow_notebook``): ``deploy``, ``drift`` and the pipeline's own settings.

A :class:`Field` says what one setting may hold; a :class:`MetadataReader` checks values
against fields and reports every problem as an ``invalid-metadata`` error of one shape,
``notebook metadata NAME ...``, NAME being the setting's dotted path:

- ``nb2pipe.deploy must be an object, not [1]``
- ``nb2pipe.drift has no setting 'pvalue'`` (hint: ``did you mean 'p_value'?``)
- ``nb2pipe.drift.min_rows must be a whole number, not "many"``
- ``nb2pipe.drift.method must be one of tabular, ks, chi2, mmd, not "wasserstein"``
- ``nb2pipe.drift.p_value must be above 0 and below 1, not 2``

Values are JSON: ``true`` is a boolean, never a number (Python's ``bool`` is an ``int``),
and numbers are not read from strings.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nb2pipe.errors import Diagnostic, Location, error

CODE = "invalid-metadata"
#: where to fix any of it
FIX = "fix it in JupyterLab's notebook metadata editor"
#: longest value shown in a message
_SHOWN = 60
_KINDS: dict[type, str] = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


@dataclass(frozen=True)
class Field:
    """What one setting may hold: a value of one of ``types`` (``bool`` only when listed;
    ``float`` takes whole numbers too), one of ``choices`` when given, and within
    ``low``..``high`` when given (``open_range``: the bounds themselves are outside)."""

    types: tuple[type, ...]
    choices: tuple[object, ...] = ()
    low: float | None = None
    high: float | None = None
    open_range: bool = False
    #: a list's items must be of these types (empty: any)
    items: tuple[type, ...] = ()
    #: how messages name what it holds (default: from ``types``)
    kind: str = ""
    #: the hint when a value is of the wrong type (default: where to fix it)
    example: str = ""

    def describe(self) -> str:
        if self.kind:
            return self.kind
        types = [t for t in self.types if not (t is int and float in self.types)]
        return " or ".join(_KINDS.get(t, t.__name__) for t in types)

    def holds_type(self, value: object) -> bool:
        accepted = (*self.types, int) if float in self.types else self.types
        if isinstance(value, bool) and bool not in self.types:
            return False
        if not isinstance(value, accepted):
            return False
        return not (self.items and isinstance(value, list) and not all(_holds(item, self.items) for item in value))

    def range_text(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            return f"above {low:g} and below {high:g}" if self.open_range else f"from {low:g} to {high:g}"
        if low is not None:
            return f"{'above' if self.open_range else 'at least'} {low:g}"
        return f"{'below' if self.open_range else 'at most'} {high:g}"

    def in_range(self, value: Any) -> bool:
        """Compared as written (no float(): JSON's whole numbers may exceed a float); NaN is outside."""
        if self.low is not None and not (value > self.low if self.open_range else value >= self.low):
            return False
        return self.high is None or bool(value < self.high if self.open_range else value <= self.high)


TEXT = Field((str,))
WHOLE = Field((int,))
NUMBER = Field((float,))
FLAG = Field((bool,))
LIST = Field((list,))


@dataclass(frozen=True)
class MetadataReader:
    """Checks notebook metadata at ``where``, appending what is wrong to ``diagnostics``."""

    where: Location
    diagnostics: list[Diagnostic]

    def section(self, metadata: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
        """The object at dotted ``name`` (``nb2pipe.deploy``); None when it is missing or null,
        or when it is not an object (reported). A parent that is not an object is left to
        whoever reads the parent."""
        value: Any = metadata
        for key in name.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.report(name, f"must be an object, not {_shown(value)}")
            return None
        return value

    def fields(self, section: Mapping[str, Any], name: str, schema: Mapping[str, Field]) -> dict[str, Any]:
        """The settings of ``section`` that hold what their :class:`Field` allows, in the
        section's order; a key the schema lacks is reported with the closest one."""
        values: dict[str, Any] = {}
        for key, value in section.items():
            field = schema.get(key)
            if field is None:
                self.unknown(name, str(key), schema)
            elif self.check(value, f"{name}.{key}", field):
                values[key] = value
        return values

    def check(self, value: object, name: str, field: Field) -> bool:
        """Whether ``value`` is what ``field`` allows; reports it when not."""
        if not field.holds_type(value):
            self.report(name, f"must be {field.describe()}, not {_shown(value)}", field.example or FIX)
            return False
        if field.choices and value not in field.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in field.choices], n=1)
            hint = f"did you mean {close[0]!r}?" if close else FIX
            allowed = ", ".join(str(c) for c in field.choices)
            self.report(name, f"must be one of {allowed}, not {_shown(value)}", hint)
            return False
        if (field.low is not None or field.high is not None) and not field.in_range(value):
            self.report(name, f"must be {field.range_text()}, not {_shown(value)}")
            return False
        return True

    def unknown(self, name: str, key: str, schema: Mapping[str, Field]) -> None:
        close = difflib.get_close_matches(key, list(schema), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"settings are: {', '.join(sorted(schema))}"
        self.report(name, f"has no setting {key!r}", hint)

    def report(self, name: str, problem: str, hint: str = FIX) -> None:
        """``notebook metadata NAME must be ...``: what is wrong with one setting."""
        self.diagnostics.append(error(CODE, f"notebook metadata {name} {problem}", self.where, hint))

    def report_settings(self, name: str, problem: str) -> None:
        """``notebook metadata NAME: ...``: what is wrong with settings taken together
        (minimum replicas above the maximum)."""
        self.diagnostics.append(error(CODE, f"notebook metadata {name}: {problem}", self.where, FIX))


def _holds(value: object, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def _shown(value: object) -> str:
    """The value as the metadata (JSON) spells it, cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (ValueError, TypeError):  # a circular structure, or keys JSON cannot have
        text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
