"""Drift tests: has a current table moved away, in distribution, from a reference table?

:func:`check_drift` checks the two tables, encodes them as plain float arrays (categories as
integer codes shared by both tables) and hands them to a :class:`DriftBackend`. The one
backend is alibi-detect (``nb2pipe[drift]``), imported only when a test runs; another
library fits behind the same two methods and a name in :data:`BACKENDS`.

Methods: ``tabular`` (KS for numeric, Chi-squared for categorical columns, one p-value per
column, then a Bonferroni or FDR correction), ``ks`` (numeric columns only), ``chi2`` (every
column categorical) and ``mmd`` (one kernel two-sample test on all numeric columns together).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DRIFT_CORRECTIONS, DRIFT_METHODS
from nb2pipe.native_order import load_triton_before_tensorflow

if TYPE_CHECKING:
    import numpy
    import pandas

NUMERIC, CATEGORICAL = "numeric", "categorical"
#: MMD's permutation test costs (rows of both tables)² per permutation: larger tables are
#: sampled down to this many rows each, with SAMPLE_SEED, so a verdict is reproducible
MMD_MAX_ROWS = 500
SAMPLE_SEED = 0
DEFAULT_BACKEND = "alibi-detect"
INSTALL_HINT = "drift detection needs alibi-detect: pip install 'nb2pipe[drift]'"


class DriftError(Nb2PipeError):
    """The tables cannot be tested for drift as asked."""


@dataclass(frozen=True)
class DriftSettings:
    method: str = "tabular"
    p_value: float = 0.05
    correction: str = "bonferroni"
    #: columns to test as categories; None: object, category, bool and string columns
    categorical: tuple[str, ...] | None = None
    backend: str = DEFAULT_BACKEND


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # numeric | categorical
    test: str  # ks | chi2
    statistic: float
    p_value: float
    #: p_value is below the corrected threshold
    is_drift: bool


@dataclass(frozen=True)
class DriftResult:
    method: str
    is_drift: bool
    #: a feature drifted when its p-value is below this (after the correction); mmd: the p-value setting
    threshold: float
    features: tuple[FeatureDrift, ...]
    reference_rows: int
    current_rows: int
    p_value: float | None = None  # mmd only: the permutation test's
    distance: float | None = None  # mmd only: MMD² between the tables
    #: requests of a payload log the model rejected (bad payloads): logged, but not tested
    rejected_requests: int = 0

    @property
    def drifted(self) -> tuple[FeatureDrift, ...]:
        return tuple(feature for feature in self.features if feature.is_drift)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for a KFP Metrics artifact; names use only [A-Za-z0-9_]."""
        count = len(self.drifted)
        values = {
            "is_drift": float(self.is_drift),
            "drifted_features": float(count),
            "drifted_share": count / len(self.features) if self.features else 0.0,
            "threshold": float(self.threshold),
        }
        if self.p_value is not None:
            values["p_value"] = float(self.p_value)
        if self.distance is not None:
            values["distance"] = float(self.distance)
        if self.rejected_requests:
            values["rejected_requests"] = float(self.rejected_requests)
        for feature in self.features:
            key = base = "p_value_" + re.sub(r"[^A-Za-z0-9_]", "_", feature.name)
            suffix = 1
            while key in values:  # "a b" and "a_b" must not overwrite each other
                suffix += 1
                key = f"{base}_{suffix}"
            values[key] = float(feature.p_value)
        return values

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = [asdict(feature) for feature in self.features]
        data["drifted_features"] = [feature.name for feature in self.drifted]
        return data


def check_drift(
    reference: pandas.DataFrame, current: pandas.DataFrame, settings: DriftSettings | None = None
) -> DriftResult:
    """Test ``current`` against ``reference`` (same columns, any order).

    Method ``mmd`` tests standardised numeric columns (by the reference's mean and standard
    deviation) and, as its permutation test grows with the square of the rows, a seeded
    sample of at most :data:`MMD_MAX_ROWS` rows of each table; its result has no per-feature
    list, only the overall p-value and distance.
    """
    settings = settings or DriftSettings()
    method = _known(settings.method, DRIFT_METHODS, "method")
    correction = _known(settings.correction, DRIFT_CORRECTIONS, "correction")
    if not 0.0 < settings.p_value < 1.0:
        raise DriftError(f"the drift p-value must be between 0 and 1 (exclusive), got {settings.p_value}")
    backend = drift_backend(settings.backend)
    columns = _shared_columns(reference, current)
    kinds = column_kinds(reference, current, columns, settings.categorical, method)
    if method in ("ks", "mmd"):
        categorical = [str(column) for column in columns if kinds[column] == CATEGORICAL]
        if categorical:
            raise DriftError(
                f"method {method} compares numeric columns only, but {', '.join(categorical)} "
                f"{'is' if len(categorical) == 1 else 'are'} categorical: use method tabular "
                "(KS for numeric, Chi-squared for categorical columns) or drop those columns"
            )
    sizes = len(reference), len(current)
    if method == "mmd":
        before, after = _standardised(reference, current, columns)
        score = backend.kernel_test(_sampled(before), _sampled(after), settings.p_value)
        return DriftResult("mmd", score.is_drift, settings.p_value, (), *sizes, score.p_value, score.distance)
    before, after = _encoded(reference, current, columns, kinds)
    categorical_indices = [index for index, column in enumerate(columns) if kinds[column] == CATEGORICAL]
    scores = backend.feature_tests(method, before, after, categorical_indices, settings.p_value, correction)
    features = tuple(
        FeatureDrift(
            name=str(column),
            kind=kinds[column],
            test="chi2" if kinds[column] == CATEGORICAL else "ks",
            statistic=float(statistic),
            p_value=float(p_value),
            is_drift=bool(p_value < scores.threshold),
        )
        for column, statistic, p_value in zip(columns, scores.statistics, scores.p_values, strict=True)
    )
    return DriftResult(method, scores.is_drift, scores.threshold, features, *sizes)


# --- checking and encoding the tables -------------------------------------------------


def _known(value: str, choices: Sequence[str], what: str) -> str:
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DriftError(f"unknown drift {what} {value!r}{hint} (choose from {', '.join(choices)})")


def _shared_columns(reference: pandas.DataFrame, current: pandas.DataFrame) -> list[Any]:
    """The reference's columns, once the current table is known to have exactly those."""
    for table, name in ((reference, "reference"), (current, "current")):
        if len(table.columns) == 0:
            raise DriftError(f"the {name} data has no columns: there is nothing to compare")
        if len(table) == 0:
            raise DriftError(f"the {name} data has no rows: there is nothing to compare")
        if not table.columns.is_unique:
            repeated = sorted({str(c) for c in table.columns[table.columns.duplicated()]})
            raise DriftError(f"the {name} data has repeated column names: {', '.join(repeated)}; rename them")
    missing = [str(c) for c in reference.columns if c not in current.columns]
    extra = [str(c) for c in current.columns if c not in reference.columns]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"the current data lacks {', '.join(missing)}")
        if extra:
            problems.append(f"it has {', '.join(extra)}, which the reference lacks")
        raise DriftError(
            "the tables must have the same columns: " + "; ".join(problems) + "; select or rename columns to match"
        )
    return list(reference.columns)


def _is_categorical_dtype(series: pandas.Series) -> bool:
    import pandas

    dtype = series.dtype
    return bool(
        pandas.api.types.is_object_dtype(dtype)
        or isinstance(dtype, pandas.CategoricalDtype | pandas.StringDtype)
        or pandas.api.types.is_bool_dtype(dtype)
    )


def _is_numeric_dtype(series: pandas.Series) -> bool:
    import pandas

    dtype = series.dtype
    return bool(pandas.api.types.is_numeric_dtype(dtype) and not pandas.api.types.is_bool_dtype(dtype))


def column_kinds(
    reference: pandas.DataFrame,
    current: pandas.DataFrame,
    columns: Sequence[Any],
    categorical: Sequence[str] | None,
    method: str,
) -> dict[Any, str]:
    """Numeric or categorical, per column: as listed in ``categorical``, else by the
    reference's dtype; every column for ``chi2``. Numeric columns must hold finite numbers."""
    by_name = {str(column): column for column in columns}
    if categorical is not None:
        unknown = [name for name in categorical if name not in by_name]
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, list(by_name), n=1)
                hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise DriftError(
                f"no column {', '.join(hints)} to treat as categorical; the columns are {', '.join(by_name)}"
            )
        listed = {by_name[name] for name in categorical}
    else:
        listed = {column for column in columns if _is_categorical_dtype(reference[column])}
    kinds = {}
    for column in columns:
        if method == "chi2" or column in listed:
            kinds[column] = CATEGORICAL
            continue
        for table, name in ((reference, "reference"), (current, "current")):
            _check_numeric(table[column], str(column), name, categorical is None)
        kinds[column] = NUMERIC
    return kinds


def _check_numeric(series: pandas.Series, column: str, table: str, by_dtype: bool) -> None:
    import numpy

    if not _is_numeric_dtype(series):
        fix = (
            "convert it to numbers, or drop it"
            if by_dtype
            else "list it as categorical (--categorical / categorical=...), convert it to numbers, or drop it"
        )
        raise DriftError(
            f"column {column!r} of the {table} data holds {series.dtype} values but is tested as numeric: {fix}"
        )
    bad = int((~numpy.isfinite(series.to_numpy(dtype=numpy.float64))).sum())
    if bad:
        raise DriftError(
            f"column {column!r} of the {table} data has {bad} missing or infinite value(s); "
            "fill or drop those rows before testing for drift"
        )


def _encoded(
    reference: pandas.DataFrame, current: pandas.DataFrame, columns: Sequence[Any], kinds: dict[Any, str]
) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Float arrays; a categorical column becomes codes numbered over both tables together,
    so a value has one code in both and a value the reference never saw gets a code of its own."""
    import numpy
    import pandas

    rows = len(reference)
    before = numpy.empty((rows, len(columns)), dtype=numpy.float64)
    after = numpy.empty((len(current), len(columns)), dtype=numpy.float64)
    for index, column in enumerate(columns):
        if kinds[column] == CATEGORICAL:
            both = pandas.concat([reference[column].astype(object), current[column].astype(object)], ignore_index=True)
            codes, _ = pandas.factorize(both, use_na_sentinel=False)  # a missing value is a category too
            before[:, index], after[:, index] = codes[:rows], codes[rows:]
        else:
            before[:, index] = reference[column].to_numpy(dtype=numpy.float64)
            after[:, index] = current[column].to_numpy(dtype=numpy.float64)
    return before, after


def _standardised(
    reference: pandas.DataFrame, current: pandas.DataFrame, columns: Sequence[Any]
) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Both tables scaled by the reference's mean and deviation: MMD's kernel measures
    distances, so a column in large units must not outweigh the others."""
    import numpy

    before = reference[list(columns)].to_numpy(dtype=numpy.float64)
    after = current[list(columns)].to_numpy(dtype=numpy.float64)
    mean, deviation = before.mean(axis=0), before.std(axis=0)
    deviation[deviation == 0] = 1.0  # a constant column stays constant
    return ((before - mean) / deviation).astype(numpy.float32), ((after - mean) / deviation).astype(numpy.float32)


def _sampled(array: numpy.ndarray) -> numpy.ndarray:
    import numpy

    if len(array) <= MMD_MAX_ROWS:
        return array
    chosen = numpy.random.default_rng(SAMPLE_SEED).choice(len(array), MMD_MAX_ROWS, replace=False)
    return array[numpy.sort(chosen)]


# --- backends ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureScores:
    statistics: Sequence[float]
    p_values: Sequence[float]
    threshold: float
    is_drift: bool


@dataclass(frozen=True)
class KernelScore:
    p_value: float
    distance: float
    is_drift: bool


class DriftBackend(Protocol):
    """A drift-test library. Arrays are float, rows by columns; categorical columns hold
    integer codes."""

    def feature_tests(
        self,
        method: str,
        reference: numpy.ndarray,
        current: numpy.ndarray,
        categorical: Sequence[int],
        p_value: float,
        correction: str,
    ) -> FeatureScores: ...

    def kernel_test(self, reference: numpy.ndarray, current: numpy.ndarray, p_value: float) -> KernelScore: ...


class AlibiDetectBackend:
    """alibi-detect's TabularDrift, KSDrift, ChiSquareDrift and MMDDrift (TensorFlow)."""

    def feature_tests(
        self,
        method: str,
        reference: numpy.ndarray,
        current: numpy.ndarray,
        categorical: Sequence[int],
        p_value: float,
        correction: str,
    ) -> FeatureScores:
        detectors = _alibi_detect()
        if method == "ks":
            detector = detectors.KSDrift(reference, p_val=p_value, correction=correction)
        elif method == "chi2":
            detector = detectors.ChiSquareDrift(reference, p_val=p_value, correction=correction)
        else:
            # None per column: the categories are read from the reference (and the current
            # table's are added when testing)
            per_feature = {index: None for index in categorical}
            detector = detectors.TabularDrift(
                reference, p_val=p_value, categories_per_feature=per_feature, correction=correction
            )
        data = detector.predict(current, drift_type="batch", return_p_val=True, return_distance=True)["data"]
        return FeatureScores(
            statistics=[float(value) for value in data["distance"]],
            p_values=[float(value) for value in data["p_val"]],
            threshold=float(data["threshold"]),
            is_drift=bool(data["is_drift"]),
        )

    def kernel_test(self, reference: numpy.ndarray, current: numpy.ndarray, p_value: float) -> KernelScore:
        detectors = _alibi_detect()
        detector = detectors.MMDDrift(reference, backend="tensorflow", p_val=p_value)
        with _seeded_numpy():  # alibi-detect draws its permutations from numpy's global generator
            data = detector.predict(current, return_p_val=True, return_distance=True)["data"]
        return KernelScore(float(data["p_val"]), float(data["distance"]), bool(data["is_drift"]))


BACKENDS: dict[str, Callable[[], DriftBackend]] = {DEFAULT_BACKEND: AlibiDetectBackend}


def drift_backend(name: str) -> DriftBackend:
    return BACKENDS[_known(name, tuple(BACKENDS), "backend")]()


def _alibi_detect() -> Any:
    # TensorFlow, which alibi-detect imports, logs start-up notes on stderr unless told not to
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_triton_before_tensorflow()
    try:
        import alibi_detect.cd as detectors
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "alibi_detect":
            raise Nb2PipeError(INSTALL_HINT) from None
        raise DriftError(f"alibi-detect is installed but cannot be imported ({exc}): {INSTALL_HINT}") from exc
    return detectors


@contextlib.contextmanager
def _seeded_numpy() -> Iterator[None]:
    import numpy

    state = numpy.random.get_state()
    numpy.random.seed(SAMPLE_SEED)
    try:
        yield
    finally:
        numpy.random.set_state(state)
