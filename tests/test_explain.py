"""Explanations of table rows (nb2pipe.monitoring.explain): Anchor on a scikit-learn pipeline
and an MLflow pyfunc model, Integrated Gradients on a Keras model, the HTML page, the errors
and ``nb2pipe explain``. Models are trained once per module."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy
import pandas
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.explain import AnchorRow, Condition, Explanation, IGRow, build_explainer
from nb2pipe.monitoring.explain_report import explanation_html

pytestmark = pytest.mark.slow  # alibi and TensorFlow

#: anchors are checked on test rows when at least this many satisfy them
ENOUGH_ROWS = 15


@dataclass(frozen=True)
class Cancer:
    model: Any
    train: pandas.DataFrame
    test: pandas.DataFrame
    train_labels: pandas.Series


@pytest.fixture(scope="module")
def cancer() -> Cancer:
    data = load_breast_cancer(as_frame=True)
    train, test, train_labels, _ = train_test_split(data.data, data.target, train_size=0.75, random_state=7)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train, train_labels)
    return Cancer(model, train, test, train_labels)


@pytest.fixture(scope="module")
def anchored(cancer: Cancer) -> tuple[Any, Explanation]:
    explainer = build_explainer("anchor", cancer.model, cancer.train)
    return explainer, explainer.explain(cancer.test.iloc[:3])


def satisfying(conditions: tuple[Condition, ...], table: pandas.DataFrame) -> Any:
    holds = numpy.ones(len(table), dtype=bool)
    for condition in conditions:
        holds &= table[condition.feature].map(condition.holds).to_numpy(dtype=bool)
    return holds


def test_anchor_on_the_breast_cancer_pipeline_holds_on_unseen_rows(cancer: Cancer, anchored: Any) -> None:
    _, explanation = anchored
    assert (explanation.method, explanation.modality) == ("anchor", "tabular")
    assert explanation.feature_names == tuple(cancer.train.columns)
    predicted = cancer.model.predict(cancer.test)
    checked = 0
    for index, record in enumerate(explanation.rows):
        assert record.prediction == predicted[index]
        assert record.precision >= 0.95  # what alibi reports (threshold 0.95)
        assert 0 < record.coverage <= 1
        assert record.conditions and record.anchor == tuple(c.text() for c in record.conditions)
        holds = satisfying(record.conditions, cancer.test)
        assert holds[index], "the explained row satisfies its own anchor"
        if holds.sum() >= ENOUGH_ROWS:  # independent check: the test split's rows under the anchor
            assert (predicted[holds] == record.prediction).mean() >= 0.95
            checked += 1
    assert checked >= 2
    precisions = [r.precision for r in explanation.rows]
    assert explanation.metrics()["anchor_precision"] == pytest.approx(sum(precisions) / 3)
    assert 0 < explanation.metrics()["anchor_coverage"] <= 1


def test_anchors_are_repeatable_and_rows_may_come_as_plain_lists(cancer: Cancer, anchored: Any) -> None:
    explainer, explanation = anchored
    again = explainer.explain(cancer.test.iloc[:1].to_numpy().tolist())
    assert again.rows[0].anchor == explanation.rows[0].anchor
    assert again.rows[0].precision == explanation.rows[0].precision
    encoded = json.loads(json.dumps(explanation.to_json()))
    first = encoded["explanations"][0]
    assert first["anchor"] == list(explanation.rows[0].anchor)
    assert first["conditions"][0]["feature"] == explanation.rows[0].conditions[0].feature
    assert encoded["metrics"]["anchor_precision"] >= 0.95


def test_anchor_uses_categorical_columns_of_a_frame_by_dtype() -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    rng = numpy.random.default_rng(3)
    frame = pandas.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], 600),
            "size": rng.uniform(0, 1, 600),
            "count": rng.integers(0, 10, 600),
        }
    )
    labels = (frame["colour"] == "red").astype(int)
    encode = make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough")
    model = make_pipeline(encode, DecisionTreeClassifier(random_state=0)).fit(frame, labels)
    explainer = build_explainer("anchor", model, frame)
    red = frame.index[frame["colour"] == "red"][0]
    record = explainer.explain(frame.loc[[red]]).rows[0]
    assert record.prediction == 1 and record.precision >= 0.95
    assert Condition("colour", equals="red") in record.conditions
    assert "colour = red" in record.anchor
    with pytest.raises(Nb2PipeError, match="'purple'"):
        explainer.explain(pandas.DataFrame({"colour": ["purple"], "size": [0.5], "count": [1]}))


def test_anchor_explains_an_mlflow_pyfunc_model(cancer: Cancer, tmp_path: Path) -> None:
    import mlflow

    mlflow.sklearn.save_model(cancer.model, str(tmp_path / "model"))
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    record = build_explainer("anchor", pyfunc, cancer.train).explain(cancer.test.iloc[:1]).rows[0]
    assert record.prediction == cancer.model.predict(cancer.test.iloc[:1])[0]
    assert record.precision >= 0.95


@pytest.fixture(scope="module")
def keras_cancer(cancer: Cancer) -> Any:
    import keras

    keras.utils.set_random_seed(7)
    features = cancer.train.to_numpy(dtype="float32")
    scale = keras.layers.Normalization()
    scale.adapt(features)
    model = keras.Sequential(
        [
            keras.Input(shape=(features.shape[1],)),
            scale,
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(features, cancer.train_labels.to_numpy(), epochs=15, batch_size=32, verbose=0)
    return model


def test_integrated_gradients_add_up_to_the_score_difference(cancer: Cancer, keras_cancer: Any) -> None:
    explainer = build_explainer("ig", keras_cancer, cancer.train)
    rows = cancer.test.iloc[:5]
    explanation = explainer.explain(rows)
    scores = numpy.asarray(keras_cancer(rows.to_numpy(dtype="float32")))
    mean_row = cancer.train.to_numpy(dtype="float32").mean(axis=0, keepdims=True)
    at_baseline = numpy.asarray(keras_cancer(mean_row))[0]
    for index, record in enumerate(explanation.rows):
        target = int(scores[index].argmax())
        assert record.target == target == record.prediction
        assert record.attributions.shape == (cancer.train.shape[1],)
        assert record.input_prediction == pytest.approx(float(scores[index, target]), abs=1e-5)
        assert record.baseline_prediction == pytest.approx(float(at_baseline[target]), abs=1e-5)
        difference = scores[index, target] - at_baseline[target]
        assert abs(difference) > 0.05
        assert abs(record.attributions.sum() - difference) <= 0.05 * abs(difference)
    metrics = explanation.metrics()
    assert metrics["ig_rows"] == 5.0 and metrics["ig_completeness_error"] <= 0.05
    encoded = json.loads(json.dumps(explanation.to_json()))
    assert len(encoded["explanations"][0]["attributions"]) == cancer.train.shape[1]
    # a row explained on its own (as a warm server does, one request at a time) gets its batch figures
    (alone,) = explainer.explain(rows.iloc[[2]]).rows
    assert alone.target == explanation.rows[2].target
    assert alone.attributions == pytest.approx(explanation.rows[2].attributions, rel=1e-4, abs=1e-6)


def test_the_page_shows_each_row_and_escapes_names(cancer: Cancer, anchored: Any) -> None:
    _, explanation = anchored
    page = explanation_html(explanation, cancer.test.iloc[:3], title="cancer <anchor>")
    sections = page.split('<section class="row">')[1:]
    assert len(sections) == 3 and all("<svg" in section for section in sections)
    assert "<title>cancer &lt;anchor&gt;</title>" in page
    for record, section in zip(explanation.rows, sections, strict=True):
        for text in record.anchor:
            assert f"<b>{escape(text)}</b>" in section
    assert "precision" in page and "coverage" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")

    hostile = "<script>alert(1)</script>"
    gradients = Explanation(
        "ig",
        "tabular",
        (IGRow(1, 1, numpy.array([0.4, -0.2]), 0.3, 0.5, 0.0),),
        (hostile, "size"),
    )
    anchors = Explanation(
        "anchor", "tabular", (AnchorRow(hostile, (f"{hostile} > 1",), 0.97, 0.2, (Condition(hostile, low=1.0),)),)
    )
    for shown in (gradients, anchors):
        rows = pandas.DataFrame({hostile: [2.0], "size": [3.0]})
        page = explanation_html(shown, rows, title=hostile)
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert page.count("<svg") >= 1


def test_errors_say_what_to_do_instead(cancer: Cancer) -> None:
    with pytest.raises(
        Nb2PipeError, match="Integrated Gradients needs a Keras model or a PyTorch module; use explain:anchor"
    ):
        build_explainer("ig", cancer.model, cancer.train)
    with pytest.raises(Nb2PipeError, match="did you mean 'anchor'"):
        build_explainer("anchr", cancer.model, cancer.train)
    for strange in (numpy.zeros(5), numpy.zeros((2, 3, 4, 5, 6)), {"a": 1}, numpy.zeros((4, 8, 8, 9))):
        with pytest.raises(Nb2PipeError, match="cannot explain data"):
            build_explainer("anchor", cancer.model, strange)


def run_cli(argv: list[str]) -> int:
    from nb2pipe.cli.explain import add_commands

    parser = argparse.ArgumentParser(prog="nb2pipe")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_cli_explains_a_saved_mlflow_model_on_a_csv(
    cancer: Cancer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    mlflow.sklearn.save_model(cancer.model, str(tmp_path / "model"))
    cancer.train.to_csv(tmp_path / "train.csv", index=False)
    report = tmp_path / "out" / "explained.html"
    argv = ["explain", str(tmp_path / "model"), "--data", str(tmp_path / "train.csv"), "--rows", "1"]
    assert run_cli([*argv, "--json", "--report", str(report)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == "anchor" and len(printed["explanations"]) == 1
    assert printed["explanations"][0]["precision"] >= 0.95
    assert printed["explanations"][0]["prediction"] == cancer.model.predict(cancer.train.iloc[:1])[0]
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.count('<section class="row">') == 1
    assert [p.name for p in report.parent.iterdir()] == ["explained.html"]  # no staged file left

    with pytest.raises(Nb2PipeError, match="no training data kept"):
        run_cli(["explain", str(tmp_path / "model")])

    from nb2pipe.cli import main  # the command as nb2pipe's own parser wires it

    assert main([*argv[:4], "--method", "ig"]) == 1
    assert "Integrated Gradients needs a Keras model or a PyTorch module; use explain:anchor" in capsys.readouterr().err


def test_cli_fits_on_the_training_data_kept_with_a_registered_version(
    registered_model: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nb2pipe.store.registry import TRACKING_ENV

    monkeypatch.setenv(TRACKING_ENV, registered_model.tracking_uri)  # restored afterwards; mlflow exports it
    argv = ["explain", registered_model.model_uri, "--rows", "1", "--workdir", str(registered_model.folder)]
    assert run_cli(argv) == 0
    printed = capsys.readouterr().out
    expected = registered_model.model.predict(registered_model.features.iloc[:1])[0]
    assert f"row 0: prediction {expected!r} when " in printed and "precision" in printed
