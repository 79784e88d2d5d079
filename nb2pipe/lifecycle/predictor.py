"""Request rows -> model input -> JSON-ready predictions, with every malformed payload
turned into :class:`BadPayload` (HTTP 400) rather than a server error.

Served models take a 2-D table: rows of numbers (or of values in the signature's column
order), or rows as ``{column: value}`` objects. The estimator is called directly — no
per-request schema enforcement through pyfunc — which keeps a prediction well under a
millisecond of overhead.

While the model runs, ``warnings`` holds a single filter and a recorder; the warnings raised
are issued again afterwards under the process's own filters (:class:`DeferredWarnings`). That
halves a 500-tree forest's one-row prediction: scikit-learn re-applies every filter in each
task it gives joblib, one task per tree.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import warnings
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple, TextIO, cast

import numpy as np

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
        return cls(model, columns, numeric, features, wants_frame)

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

    def _numeric_matrix(self, rows: Sequence[Any]) -> Any:
        for index, row in enumerate(rows):
            for value in row:
                if type(value) not in (int, float, bool):
                    raise BadPayload(f"row {index} holds {_kind(value)}; this model takes numbers only")
        matrix = np.asarray(rows, dtype=np.float64)
        if not np.isfinite(matrix).all():
            raise BadPayload("NaN or infinite values are not accepted")
        return matrix

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

        One input of shape ``[N, F]`` is the whole table; several inputs of shape ``[N]`` or
        ``[N, 1]`` are the columns, matched to the signature by name.
        """
        if not tensors:
            raise BadPayload("the request has no inputs")
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
            result = DEFERRED_WARNINGS.call(self.model.predict, table)
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


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"text {value[:20]!r}"
    if value is None:
        return "null"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return type(value).__name__


# -- warnings while a model runs ------------------------------------------------------------


class _WhileAModelRuns(Warning):
    """Never raised: the category of the filter that marks the temporary filter list."""


#: first in the filter list while a model runs (copies keep it: scikit-learn re-adds filters as
#: tuples equal to these); it matches nothing
_MARKER = ("ignore", None, _WhileAModelRuns, None, 0)
#: the filter list while a model runs: every warning reaches the recorder
_TEMPORARY_FILTERS = [_MARKER, ("always", None, Warning, None, 0)]


class CaughtWarning(NamedTuple):
    message: Warning | str
    category: type[Warning]
    filename: str
    lineno: int


class DeferredWarnings:
    """Calls a model with its warnings recorded, then issues them again under the filters in force.

    Why: scikit-learn (1.7 and later) copies ``warnings.filters`` into every task it hands to
    joblib and re-applies them one by one (``sklearn.utils.parallel._FuncWrapper``); a forest
    predicts one task per tree even with ``n_jobs=None``. A serving process holds ~16 filters
    (numpy, scipy, urllib3, requests and kserve add them on import), so re-applying them is half
    of a 500-tree forest's one-row ``predict``; two filters cost almost nothing.

    Why it is safe: no warning is silenced and no filter is added. Each recorded warning goes
    through ``warnings.warn_explicit`` with the module and ``__warningregistry__`` its own code
    would have used, so the process's filters (ignore, default, once, module, error) decide as
    before; only the moment moves to just after the call ("error" raises then). Warnings that
    other threads raise during the call are recorded and re-issued the same way.

    Threads: ``catch_warnings`` (which scikit-learn enters per task, in joblib's worker threads
    too) saves and restores the *binding* of ``warnings.filters``, so interleaved blocks in two
    threads can leave a copy of whatever list was bound. The filter list is therefore changed and
    restored in place, and a left-over copy of the temporary list (recognised by its marker) is
    replaced by the restored list at the end of the call or, if a thread still held one, at the
    start of the next: at worst, until then, another thread's warnings are shown that a filter
    would have ignored. The recorder passes warnings on to the previous ``showwarning`` whenever
    no call is running, wherever a thread leaves it. One call at a time: meanwhile other threads
    make the plain call; :meth:`exclusive` keeps the fast path off while a thread runs model code
    of its own (an explainer).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._caught: list[CaughtWarning] | None = None
        self._shown_by: Callable[..., Any] = warnings.showwarning
        self._restored: list[Any] | None = None
        self._modules = _ModulesByFile()

    def call(self, function: Callable[[Any], Any], argument: Any) -> Any:
        if not self._lock.acquire(blocking=False):
            return function(argument)
        try:
            filters = self._filters_in_force()
            kept = filters[:]
            if warnings.showwarning is not self:
                self._shown_by = warnings.showwarning
            caught: list[CaughtWarning] = []
            self._caught = caught
            warnings.showwarning = self
            filters[:] = _TEMPORARY_FILTERS
            try:
                return function(argument)
            finally:
                filters[:] = kept
                self._restored = filters
                if _is_temporary(warnings.filters):
                    warnings.filters = filters
                self._caught = None
                if warnings.showwarning is self:
                    warnings.showwarning = self._shown_by
                self._reissue(caught)
        finally:
            self._lock.release()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """While the block runs, :meth:`call` makes plain calls (for model code run in another thread)."""
        with self._lock:
            yield

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """``warnings.showwarning`` while a model runs (and wherever a thread leaves it after)."""
        caught = self._caught
        if caught is not None:
            caught.append(CaughtWarning(message, category, filename, lineno))
        else:
            self._shown_by(message, category, filename, lineno, file, line)

    def _filters_in_force(self) -> list[Any]:
        filters = cast(list[Any], warnings.filters)
        if _is_temporary(filters) and self._restored is not None:
            # a thread's catch_warnings put back a copy of the temporary list after the last call
            warnings.filters = filters = self._restored
        return filters

    def _reissue(self, caught: list[CaughtWarning]) -> None:
        for warning in caught:
            module = self._modules.find(warning.filename)
            if module is None:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
                continue
            # no module_globals: CPython would read the module's whole source for every warning,
            # even an ignored one (linecache finds the line when one is shown)
            warnings.warn_explicit(
                warning.message,
                warning.category,
                warning.filename,
                warning.lineno,
                module=module.__name__,
                registry=vars(module).setdefault("__warningregistry__", {}),
            )


def _is_temporary(filters: Sequence[Any]) -> bool:
    return _MARKER in filters


class _ModulesByFile:
    """The loaded module a source file belongs to (what ``warnings.warn`` takes from the frame)."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._indexed = -1

    def find(self, filename: str) -> ModuleType | None:
        name = self._names.get(filename)
        if name is None and len(sys.modules) != self._indexed:
            self._indexed = len(sys.modules)
            self._names = {}
            for module_name, module in list(sys.modules.items()):
                path = getattr(module, "__file__", None)
                if isinstance(path, str):
                    self._names[path] = module_name
            name = self._names.get(filename)
        return sys.modules.get(name) if name is not None else None


DEFERRED_WARNINGS = DeferredWarnings()
