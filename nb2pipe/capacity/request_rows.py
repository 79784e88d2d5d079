"""The rows ``nb2pipe profile`` sends: read from ``--input`` (or a model's training data),
shaped as ``nb2pipe serve`` takes them, and encoded once into request bodies so that timing
excludes JSON encoding."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy

from nb2pipe.capacity.measure_error import MeasureError
from nb2pipe.store.tables import generic_names, load_table

#: rows kept from the input: enough distinct batches, without holding a large file
MAX_INPUT_ROWS = 4096
#: distinct request bodies per batch size, encoded once so timing excludes JSON encoding
MAX_BODIES = 32


def read_input(path: str | Path) -> Any:
    """The rows of ``--input``: a CSV or parquet file, or JSON (a list of rows, each a list of
    values or an object of column: value, or ``{"instances": [...]}``), as a DataFrame."""
    import pandas

    location = Path(path).expanduser()
    if not location.is_file():
        raise MeasureError(f"--input {path}: no such file; give a CSV, parquet or JSON file of rows")
    if location.suffix.lower() != ".json":
        return load_table(location)
    try:
        data = json.loads(location.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MeasureError(f"--input {path}: cannot read it as JSON ({exc})") from None
    if isinstance(data, dict):
        data = data.get("instances", data.get("inputs"))
    if not isinstance(data, list) or not data:
        raise MeasureError(f'--input {path}: expected a JSON list of rows (or {{"instances": [...]}})')
    if all(isinstance(row, dict) for row in data):
        return pandas.DataFrame.from_records(data)
    if all(isinstance(row, list) for row in data):
        widths = {len(row) for row in data}
        if len(widths) != 1:
            raise MeasureError(f"--input {path}: rows have different lengths ({sorted(widths)})")
        return pandas.DataFrame(data, columns=generic_names(widths.pop()))
    raise MeasureError(f"--input {path}: each row must be a list of values or an object of column: value")


def request_rows(table: Any, columns: list[str] | None, where: str) -> list[Any]:
    """Rows as ``nb2pipe serve`` takes them: objects by column name when the model's signature
    names its columns (robust to the input's column order), else lists of values."""
    from nb2pipe.store.tables import generic_names

    table = table.dropna().head(MAX_INPUT_ROWS)  # the server rejects NaN in numeric inputs
    if len(table) == 0:
        raise MeasureError(f"{where} holds no complete row (every row has a missing value); pass --input FILE")
    values = table.astype(object).to_numpy().tolist()  # object dtype: plain Python numbers for JSON
    if not columns:
        return values
    present = [str(c) for c in table.columns]
    if present == generic_names(len(present)) and len(present) == len(columns):
        present = list(columns)  # unnamed rows in the signature's order
    missing = [c for c in columns if c not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise MeasureError(f"{where} lacks columns the model takes: {shown}; pass --input FILE with them")
    index = [present.index(c) for c in columns]
    return [{name: row[i] for name, i in zip(columns, index, strict=True)} for row in values]


def request_bodies(rows: Sequence[Any], batch_size: int) -> list[bytes]:
    """Distinct ``{"instances": [...]}`` bodies of ``batch_size`` rows, cycling through the rows."""
    if not rows:
        raise MeasureError("no rows to send; pass --input FILE")
    count = max(1, min(MAX_BODIES, -(-len(rows) // batch_size)))
    return [
        json.dumps(
            {"instances": [rows[(k * batch_size + i) % len(rows)] for i in range(batch_size)]}, default=_json_value
        ).encode()
        for k in range(count)
    ]


def _json_value(value: Any) -> Any:
    return value.item() if isinstance(value, numpy.generic) else str(value)
