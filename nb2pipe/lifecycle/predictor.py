"""Request rows -> model input -> JSON-ready predictions, with every malformed payload
turned into :class:`BadPayload` (HTTP 400) rather than a server error.

Served models take a 2-D table: rows of numbers (or of values in the signature's column
order), or rows as ``{column: value}`` objects. A model with a row shape (a PyTorch CNN's
``(1, 8, 8)``) also takes each row nested in that shape, and v2 inputs ``[N, *row_shape]``; both
become flat rows. A model whose input dtype is an integer type (token ids) takes integers only.
The estimator is called directly — no per-request schema enforcement through pyfunc — which
keeps a prediction well under a millisecond of overhead.

A model that runs scikit-learn's joblib tasks (a forest: one per tree) is called with
``warnings`` holding two filters (a marker and "always") and a recorder, and the warnings raised
are issued again afterwards under the process's own filters (:mod:`deferred_warnings`).
scikit-learn re-applies every filter in each task: that halves a 500-tree forest's one-row
prediction. The first prediction tells whether the model runs such tasks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nb2pipe.lifecycle.deferred_warnings import DEFERRED_WARNINGS

#: The most rows one request may carry; bigger batches are split by the client.
MAX_ROWS = 10_000
_NUMERIC_TYPES = {"double", "float", "long", "integer", "boolean"}


class BadPayload(ValueError):
    """The request cannot be a model input; the message says why."""


@dataclass
class Predictor:
    model: Any
    #: column names the model was trained with (signature or ``feature_names_in_``)
    columns: list[str] | None
    #: True when every input column is numeric, so rows can become one float matrix
    numeric: bool
    features: int | None
    #: pyfunc models take a DataFrame; estimators take what they were fit on
    wants_frame: bool
    #: call the model with its warnings deferred (:class:`DeferredWarnings`)? None until the first
    #: prediction shows whether it runs scikit-learn's joblib tasks: only then does deferring pay
    defer_warnings: bool | None = None
    #: one row's shape when the model takes more than a flat row (the model's ``row_shape``)
    row_shape: tuple[int, ...] | None = None
    #: the integer type the model's input must fit (the model's ``input_dtype``); None: any number
    integer_dtype: np.dtype | None = None
    #: integer inputs are ids below this (the model's ``id_count``: its embedding's size), checked
    #: before a request joins a batch: one bad id would otherwise send its batch-mates one by one
    id_count: int | None = None

    @classmethod
    def build(cls, model: Any, columns: list[str] | None, column_types: list[str] | None) -> Predictor:
        fitted_names = getattr(model, "feature_names_in_", None)
        if columns is None and fitted_names is not None:
            columns = [str(name) for name in fitted_names]
        numeric = column_types is None or all(kind in _NUMERIC_TYPES for kind in column_types)
        features = len(columns) if columns else getattr(model, "n_features_in_", None)
        is_pyfunc = type(model).__name__ == "PyFuncModel"
        wants_frame = is_pyfunc or not numeric
        if not wants_frame and fitted_names is not None and columns:
            wants_frame = not answers_matrices_like_frames(model, columns)
        row_shape = getattr(model, "row_shape", None)
        dtype = getattr(model, "input_dtype", None)
        id_count = getattr(model, "id_count", None)
        return cls(
            model,
            columns,
            numeric,
            features,
            wants_frame,
            row_shape=tuple(row_shape) if isinstance(row_shape, tuple) and len(row_shape) > 1 else None,
            integer_dtype=dtype if isinstance(dtype, np.dtype) and dtype.kind in "iu" else None,
            id_count=id_count if isinstance(id_count, int) else None,
        )

    # -- requests ----------------------------------------------------------------------
    def rows_from_v1(self, body: Any) -> list[Any]:
        """``{"instances": [...]}`` or ``{"inputs": [...]}`` -> the rows."""
        if isinstance(body, bytes | bytearray | str):
            # KServe leaves the body undecoded when the content type is not JSON (curl -d)
            try:
                body = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise BadPayload('the body must be a JSON object such as {"instances": [[...], ...]}') from None
        if not isinstance(body, dict):
            raise BadPayload(f"the body must be a JSON object, not {type(body).__name__}")
        rows = body.get("instances", body.get("inputs"))
        if rows is None:
            raise BadPayload('the body needs "instances": a list of rows')
        if not isinstance(rows, list):
            raise BadPayload('"instances" must be a list of rows')
        return rows

    def table(self, rows: Sequence[Any]) -> Any:
        """Rows -> what the model's ``predict`` takes; checks count, width and types."""
        if not rows:
            raise BadPayload("no rows to predict")
        if len(rows) > MAX_ROWS:
            raise BadPayload(f"{len(rows)} rows in one request; send at most {MAX_ROWS}")
        first = rows[0]
        if isinstance(first, dict):
            return self._table_from_records(rows)
        if not isinstance(first, list):
            raise BadPayload("each row must be a list of values or an object of column: value")
        if self.row_shape is not None and first and isinstance(first[0], list):
            rows = self._flat_rows(rows, self.row_shape)
            first = rows[0]
        width = len(first)
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                raise BadPayload(f"row {index} is not a list of {width} values like row 0")
        if self.features is not None and width != self.features:
            raise BadPayload(f"each row needs {self.features} values, got {width}")
        if self.numeric:
            matrix = self._numeric_matrix(rows)
            if not self.wants_frame:
                return matrix
            import pandas as pd

            return pd.DataFrame(matrix, columns=self.columns)
        import pandas as pd

        return pd.DataFrame(rows, columns=self.columns)

    @staticmethod
    def _flat_rows(rows: Sequence[Any], shape: tuple[int, ...]) -> list[list[Any]]:
        """Rows nested as ``shape`` (an image's ``[1][8][8]`` lists), flattened in C order."""
        flat = []
        for index, row in enumerate(rows):
            values = _flattened(row, shape)
            if values is None:
                raise BadPayload(
                    f"row {index} is not a nested list of shape {list(shape)} like row 0 "
                    f"(the model takes [N, {', '.join(str(n) for n in shape)}])"
                )
            flat.append(values)
        return flat

    def _numeric_matrix(self, rows: Sequence[Any]) -> Any:
        if self.integer_dtype is not None:
            return self._integer_matrix(rows, self.integer_dtype, self.id_count)
        for index, row in enumerate(rows):
            for value in row:
                if type(value) not in (int, float, bool):
                    raise BadPayload(f"row {index} holds {_kind(value)}; this model takes numbers only")
        matrix = np.asarray(rows, dtype=np.float64)
        if not np.isfinite(matrix).all():
            raise BadPayload("NaN or infinite values are not accepted")
        return matrix

    @staticmethod
    def _integer_matrix(rows: Sequence[Any], dtype: np.dtype, id_count: int | None) -> Any:
        limits = np.iinfo(dtype)
        low, high = (0, id_count - 1) if id_count is not None else (int(limits.min), int(limits.max))
        for index, row in enumerate(rows):
            for value in row:
                if type(value) is not int:
                    raise BadPayload(f"row {index} holds {_kind(value)}; this model takes integers ({dtype})")
                if not low <= value <= high:
                    if id_count is None:
                        raise BadPayload(f"row {index} holds {value}, outside {dtype}'s range")
                    raise BadPayload(f"row {index} holds token id {value}; the model's embedding takes ids 0 to {high}")
        return np.asarray(rows, dtype=dtype)

    def _table_from_records(self, rows: Sequence[Any]) -> Any:
        import pandas as pd

        if self.columns is None:
            raise BadPayload("this model has no column names; send each row as a list of values")
        wanted = set(self.columns)
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise BadPayload(f"row {index} is not an object like row 0")
            missing = wanted - row.keys()
            if missing:
                raise BadPayload(f"row {index} lacks {', '.join(sorted(missing))}")
        if self.numeric:
            return self.table([[row[name] for name in self.columns] for row in rows])
        return pd.DataFrame([[row[name] for name in self.columns] for row in rows], columns=self.columns)

    def rows_from_tensors(self, tensors: Sequence[tuple[str, list[int], Any]]) -> Any:
        """Open Inference Protocol inputs (name, shape, numpy data) -> the model's table.

        One input of shape ``[N, F]`` is the whole table, as is one of ``[N, *row_shape]`` for a model
        with a row shape; several inputs of shape ``[N]`` or ``[N, 1]`` are the columns, matched to the
        signature by name.
        """
        if not tensors:
            raise BadPayload("the request has no inputs")
        if len(tensors) == 1 and len(tensors[0][1]) > 2:
            name, shape, data = tensors[0]
            if self.row_shape is None or tuple(shape[1:]) != self.row_shape:
                expected = f"[N, {self.features or 'F'}]"
                if self.row_shape is not None:
                    expected += f" or [N, {', '.join(str(n) for n in self.row_shape)}]"
                raise BadPayload(f"input {name!r} has shape {list(shape)}; this model takes {expected}")
            array = np.asarray(data)
            if array.shape != tuple(shape):
                raise BadPayload(f"input shape {list(shape)} does not match its data")
            return self.table(array.reshape(len(array), math.prod(self.row_shape)).tolist())
        if len(tensors) == 1 and len(tensors[0][1]) == 2:
            _, shape, data = tensors[0]
            array = np.asarray(data)
            if array.ndim != 2:
                raise BadPayload(f"input shape {shape} does not match its data")
            return self.table(array.tolist())
        columns: dict[str, Any] = {}
        length: int | None = None
        for name, shape, data in tensors:
            column = np.asarray(data).reshape(-1) if len(shape) in (1, 2) else None
            if column is None or (len(shape) == 2 and shape[1] != 1):
                raise BadPayload(f"input {name!r} must have shape [N] or [N, 1] when inputs are columns")
            if length is not None and len(column) != length:
                raise BadPayload("all column inputs must have the same length")
            length = len(column)
            columns[name] = column.tolist()
        order = self.columns or list(columns)
        missing = [name for name in order if name not in columns]
        if missing:
            raise BadPayload(f"inputs lack {', '.join(missing)}")
        return self.table([[columns[name][i] for name in order] for i in range(length or 0)])

    # -- predictions -------------------------------------------------------------------
    def predict(self, table: Any) -> list[Any]:
        try:
            if self.defer_warnings is False:
                result = self.model.predict(table)
            else:
                result, tasks = DEFERRED_WARNINGS.call(self.model.predict, table)
                if self.defer_warnings is None and tasks is not None:
                    self.defer_warnings = tasks > 0
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            # what the estimator rejects is the payload's fault (unknown category, bad dtype)
            raise BadPayload(f"the model rejected the input: {exc}") from None
        if hasattr(result, "to_numpy"):
            result = result.to_numpy()
        return np.asarray(result).tolist()


def answers_matrices_like_frames(model: Any, columns: Sequence[Hashable]) -> bool:
    """Whether an estimator fitted on a named frame answers a plain float matrix the same
    (it does unless it picks columns by name). A matrix skips building a frame and
    scikit-learn's column-name checks: a one-row prediction costs about a third."""
    import warnings

    import pandas as pd

    probe = np.linspace(-1.0, 1.0, 3 * len(columns)).reshape(3, len(columns))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            by_name = np.asarray(model.predict(pd.DataFrame(probe, columns=columns)))
            by_position = np.asarray(model.predict(probe))
        except Exception:  # any failure means: keep giving it frames
            return False
    if not np.array_equal(by_name, by_position):
        return False
    # the estimator would warn on every request that the matrix has no column names
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    return True


def _flattened(value: Any, shape: tuple[int, ...]) -> list[Any] | None:
    """``value``'s leaves when it is lists nested exactly as ``shape``; None otherwise."""
    if not isinstance(value, list) or len(value) != shape[0]:
        return None
    if len(shape) == 1:
        return None if any(isinstance(item, list) for item in value) else value
    leaves: list[Any] = []
    for item in value:
        part = _flattened(item, shape[1:])
        if part is None:
            return None
        leaves.extend(part)
    return leaves


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"text {value[:20]!r}"
    if value is None:
        return "null"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float):
        return f"{value:g}"
    return type(value).__name__
