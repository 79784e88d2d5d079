"""Request rows -> model input: matrices where the estimator answers them as it answers
named frames, frames where it selects columns by name; malformed rows are BadPayload."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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
