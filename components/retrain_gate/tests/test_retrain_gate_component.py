"""components/retrain_gate: the interface is the documented one, and its code
(nb2pipe.monitoring.steps.monitor_step) answers "retrain" for drifted traffic, "no" for
traffic like the training data, and "retrain" when no champion exists, against a real
MLflow sqlite store and a real payload log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FOLDER = Path(__file__).resolve().parent.parent


def test_interface_is_the_documented_one() -> None:
    from kfp import components

    spec = components.load_component_from_file(str(FOLDER / "component.yaml")).component_spec
    assert set(spec.inputs) == {"model_name", "payloads", "force_retrain", "method", "p_value", "min_rows"}
    assert {name: str(item.type) for name, item in spec.outputs.items()} == {
        "drift_metrics": "system.Metrics@0.0.1",
        "drift_report": "system.HTML@0.0.1",
        "retrain": "Boolean",
    }


class FakeArtifact:
    """What kfp hands a component for an Output[Metrics] / Output[HTML]."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.metrics: dict[str, float] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics[name] = value


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A classifier registered as champion of 'gate-test', with its training data kept."""
    import os

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from nb2pipe.lifecycle.register import Registration, register_model

    folder = tmp_path_factory.mktemp("gate-store")
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(features, labels)
    register_model(model, features, Registration("gate-test", "tests"), store=folder)
    yield features
    if saved is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = saved


def gate(tmp_path: Path, model_name: str, payloads: Path, force: bool = False) -> tuple[bool, FakeArtifact, str]:
    from nb2pipe.monitoring.steps import monitor_step

    metrics, report, flag = FakeArtifact(tmp_path / "m"), FakeArtifact(tmp_path / "report.html"), tmp_path / "flag"
    options = {"method": "tabular", "p_value": 0.05, "min_rows": 50}
    answer = monitor_step(
        {"model_name": model_name, "service": None, "options": options},
        payloads=str(payloads),
        force=force,
        metrics=metrics,
        report=report,
        flag_path=str(flag),
    )
    assert flag.read_text() == json.dumps(answer)  # the output parameter says the same
    return answer, metrics, Path(report.path).read_text(encoding="utf-8")


def served(folder: Path, features: Any, shift: float) -> Path:
    from nb2pipe.store.payloads import PayloadLog

    rows = features.sample(n=200, replace=True, random_state=3).to_numpy(dtype=float)
    rows[:, :3] += shift * features.to_numpy()[:, :3].std(axis=0)
    log = PayloadLog(folder, "gate-test", "1")
    for start in range(0, len(rows), 20):
        log.append("v1", None, rows[start : start + 20].tolist(), [0] * 20)
    log.close()
    return folder


@pytest.mark.slow
def test_drifted_traffic_means_retrain(champion: Any, tmp_path: Path) -> None:
    answer, metrics, report = gate(tmp_path, "gate-test", served(tmp_path / "drifted", champion, 1.0))
    assert answer is True
    assert metrics.metrics["retrain"] == 1.0 and metrics.metrics["served_rows"] == 200.0
    assert metrics.metrics["drifted_features"] >= 3
    assert "mean radius" in report


@pytest.mark.slow
def test_traffic_like_the_training_data_means_no_retraining(champion: Any, tmp_path: Path) -> None:
    answer, metrics, _ = gate(tmp_path, "gate-test", served(tmp_path / "same", champion, 0.0))
    assert answer is False and metrics.metrics["retrain"] == 0.0
    forced, _, _ = gate(tmp_path, "gate-test", tmp_path / "same", force=True)
    assert forced is True


@pytest.mark.slow
def test_no_champion_yet_means_train_one(champion: Any, tmp_path: Path) -> None:
    answer, _, report = gate(tmp_path, "never-registered", tmp_path)
    assert answer is True and "no champion" in report


@pytest.mark.slow
def test_too_little_traffic_waits(champion: Any, tmp_path: Path) -> None:
    from nb2pipe.store.payloads import PayloadLog

    log = PayloadLog(tmp_path / "few", "gate-test", "1")
    log.append("v1", None, np.zeros((5, 30)).tolist(), [0] * 5)
    log.close()
    answer, _, report = gate(tmp_path, "gate-test", tmp_path / "few")
    assert answer is False and "5 requests" in report
