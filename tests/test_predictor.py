"""Request rows -> model input: matrices where the estimator answers them as it answers
named frames, frames where it selects columns by name; malformed rows are BadPayload."""

from __future__ import annotations

import re
import threading
import warnings

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nb2pipe.lifecycle.deferred_warnings import DEFERRED_WARNINGS
from nb2pipe.lifecycle.predictor import BadPayload, Predictor
from tests.support.registered import train_classifier


@pytest.fixture(scope="module")
def data():
    _, features, labels = train_classifier()
    return features, labels


def test_a_numeric_pipeline_gets_matrices_and_the_same_answers(data):
    features, labels = data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)
    predictor = Predictor.build(model, list(features.columns), ["double"] * features.shape[1])
    assert predictor.wants_frame is False
    rows = features.iloc[:25].values.tolist()
    assert predictor.predict(predictor.table(rows)) == model.predict(features.iloc[:25]).tolist()


def test_a_model_that_picks_columns_by_name_gets_frames(data):
    features, labels = data
    picked = ["mean radius", "worst texture"]
    model = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), picked)]), LogisticRegression(max_iter=500)
    ).fit(features, labels)
    predictor = Predictor.build(model, list(features.columns), ["double"] * features.shape[1])
    assert predictor.wants_frame is True
    table = predictor.table(features.iloc[:10].values.tolist())
    assert isinstance(table, pd.DataFrame) and list(table.columns) == list(features.columns)
    assert predictor.predict(table) == model.predict(features.iloc[:10]).tolist()


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([], "no rows"),
        ([[1.0, 2.0]], "needs 30 values"),
        ([["a"] * 30], "numbers only"),
        ([[float("nan")] * 30], "NaN"),
        ([[0.0] * 30, [0.0] * 29], "row 1"),
        ([{"mean radius": 1.0}], "lacks"),
        ([7], "list of values"),
    ],
)
def test_malformed_rows_say_what_is_wrong(data, rows, needle):
    features, labels = data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features.values, labels)
    predictor = Predictor.build(model, list(features.columns), ["double"] * features.shape[1])
    with pytest.raises(BadPayload, match=needle):
        predictor.table(rows)


# -- warnings raised while the model runs ---------------------------------------------------


class _Warns:
    """An estimator whose predict warns, directly and from inside scikit-learn's joblib tasks
    (where scikit-learn re-applies every warnings filter per task, as a forest does per tree)."""

    n_features_in_ = None

    def __init__(self, message: str = "served model says hello", tasks: int = 3) -> None:
        self.message = message
        self.tasks = tasks
        self.filters_seen: list[int] = []

    def predict(self, table):
        from sklearn.utils.parallel import Parallel, delayed

        warnings.warn(self.message, UserWarning, stacklevel=1)
        self.filters_seen = Parallel(n_jobs=None)(delayed(self._task)() for _ in range(self.tasks))
        return [0] * len(table)

    def _task(self) -> int:
        warnings.warn(f"{self.message} from a task", RuntimeWarning, stacklevel=1)
        return len(warnings.filters)


def _warning_predictor(model: _Warns) -> Predictor:
    return Predictor.build(model, None, None)


def test_warnings_raised_while_predicting_reach_the_callers_filters():
    model = _Warns()
    predictor = _warning_predictor(model)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert predictor.predict(predictor.table([[1.0, 2.0]])) == [0]
    assert sorted(str(w.message) for w in shown) == [
        "served model says hello",
        *["served model says hello from a task"] * 3,
    ]
    assert {w.filename for w in shown} == {__file__}
    # scikit-learn's tasks re-applied two filters (a marker and "always"), not the process's list
    assert model.filters_seen == [2, 2, 2]


def test_an_ignored_warning_stays_ignored_and_error_still_raises():
    predictor = _warning_predictor(_Warns())
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="served model", module=re.escape(__name__))
        predictor.predict(predictor.table([[1.0, 2.0]]))
    assert shown == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(UserWarning, match="served model says hello"):
            predictor.predict(predictor.table([[1.0, 2.0]]))


def test_default_action_shows_a_warning_once_per_location():
    # no joblib tasks: scikit-learn's per-task filter resets also reset the registries
    predictor = _warning_predictor(_Warns("once per location", tasks=0))
    with warnings.catch_warnings(record=True) as shown:
        warnings.resetwarnings()
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("default", UserWarning)
        for _ in range(3):
            predictor.predict(predictor.table([[1.0, 2.0]]))
    assert [str(w.message) for w in shown] == ["once per location"]


def test_filters_and_showwarning_are_restored_even_when_threads_interleave():
    """Predictions racing with another thread's catch_warnings blocks (scikit-learn enters one
    per task) leave the process's filters and showwarning as they were, by the next call at the
    latest, and never hide a warning afterwards."""
    predictor = _warning_predictor(_Warns())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        contents, shown_by = list(warnings.filters), warnings.showwarning
        stop = threading.Event()

        def meddle() -> None:
            while not stop.is_set():
                with warnings.catch_warnings():
                    warnings.warn("from another thread", UserWarning, stacklevel=1)

        other = threading.Thread(target=meddle)
        other.start()
        try:
            for _ in range(200):
                predictor.predict(predictor.table([[1.0, 2.0]]))
        finally:
            stop.set()
            other.join()
        predictor.predict(predictor.table([[1.0, 2.0]]))  # puts back the list if a thread left a copy
        assert list(warnings.filters) == contents
        assert warnings.showwarning in (shown_by, DEFERRED_WARNINGS)
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            warnings.warn("after the race", UserWarning, stacklevel=1)
        assert [str(w.message) for w in shown] == ["after the race"]


def test_a_failing_model_still_restores_the_filters():
    class Broken:
        n_features_in_ = 2

        def predict(self, table):
            warnings.warn("about to fail", UserWarning, stacklevel=1)
            raise ValueError("unknown category")

    predictor = Predictor.build(Broken(), None, None)
    contents = list(warnings.filters)
    with pytest.raises(BadPayload, match="unknown category"), pytest.warns(UserWarning, match="about to fail"):
        predictor.predict(predictor.table([[1.0, 2.0]]))
    assert list(warnings.filters) == contents


def test_warnings_stay_deferred_only_for_models_that_run_joblib_tasks(data):
    from sklearn.ensemble import RandomForestClassifier

    features, labels = data
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(features, labels)
    rows = features.iloc[:3].values.tolist()
    for model, deferred in ((pipeline, False), (forest, True), (_Warns(tasks=0), False), (_Warns(tasks=2), True)):
        predictor = Predictor.build(model, None, None)
        assert predictor.defer_warnings is None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = predictor.predict(predictor.table(rows))
            assert predictor.defer_warnings is deferred, model
            assert predictor.predict(predictor.table(rows)) == first
