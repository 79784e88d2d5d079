"""The reusable explain component: its interface is the documented one (its YAML is checked
by components/test_compiled_yaml.py), and the function it runs
(``nb2pipe.monitoring.steps.explain_step``) writes the page and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

FOLDER = Path(__file__).resolve().parents[1]


def test_the_interface_is_the_documented_one() -> None:
    root = yaml.safe_load((FOLDER / "component.yaml").read_text(encoding="utf-8"))["root"]
    inputs, outputs = root["inputDefinitions"], root["outputDefinitions"]
    kinds = {name: spec["artifactType"]["schemaTitle"] for name, spec in inputs["artifacts"].items()}
    assert kinds == {"model": "system.Model", "data": "system.Dataset"}
    parameters = inputs["parameters"]
    assert parameters["method"] == {"defaultValue": "anchor", "isOptional": True, "parameterType": "STRING"}
    assert parameters["rows"]["parameterType"] == "NUMBER_INTEGER" and parameters["rows"]["defaultValue"] == 3
    made = {name: spec["artifactType"]["schemaTitle"] for name, spec in outputs["artifacts"].items()}
    assert made == {"explanation": "system.HTML", "explain_metrics": "system.Metrics"}


@dataclass
class FakeArtifact:
    """What KFP hands a component: a path, and (for Metrics) log_metric."""

    path: str
    logged: dict[str, float] = field(default_factory=dict)

    def log_metric(self, name: str, value: float) -> None:
        self.logged[name] = value


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    loaded = load_iris(as_frame=True)
    return loaded.data, loaded.target


def run_step(tmp_path: Path, model: Any, data: Any, method: str) -> tuple[str, dict[str, float]]:
    from nb2pipe.monitoring.steps import explain_step
    from nb2pipe.runtime.step import save_value

    save_value(model, str(tmp_path / "model"), "model")
    save_value(data, str(tmp_path / "data"), "data")
    report = FakeArtifact(str(tmp_path / "out" / "explanation.html"))
    metrics = FakeArtifact(str(tmp_path / "out" / "metrics.json"))
    config = {"method": method, "rows": 2, "model_name": "iris"}
    explain_step(config, model=str(tmp_path / "model"), data=str(tmp_path / "data"), report=report, metrics=metrics)
    return Path(report.path).read_text(encoding="utf-8"), metrics.logged


@pytest.mark.slow
def test_the_step_explains_a_saved_model_with_anchors(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)
    page, logged = run_step(tmp_path, model, features, "anchor")
    assert "<title>iris: anchor explanation of 2 training rows</title>" in page
    sections = page.split('<section class="row">')[1:]
    assert len(sections) == 2 and all("<svg" in s and "IF <b>" in s for s in sections)
    assert set(logged) == {"anchor_precision", "anchor_coverage"}
    assert logged["anchor_precision"] >= 0.95 and 0 < logged["anchor_coverage"] <= 1


@pytest.mark.slow
def test_the_step_explains_a_saved_keras_model_with_integrated_gradients(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    import keras

    keras.utils.set_random_seed(3)
    features, labels = iris
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(features.to_numpy("float32"), labels.to_numpy(), epochs=20, verbose=0)
    page, logged = run_step(tmp_path, model, features, "ig")
    assert page.count('<section class="row">') == 2 and page.count("<svg") == 2
    assert "sepal length (cm) = 5.1" in page
    assert logged["ig_rows"] == 2.0 and logged["ig_completeness_error"] <= 0.05
