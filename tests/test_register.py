"""Registering in MLflow and promotion: candidate always, champion when it beats the
champion on the rule's metric (first version: always); every version kept, the comparison
recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nb2pipe.lifecycle.register import PROMOTION_TAG, PromotionRule, Registration, register_model
from nb2pipe.store.registry import TRACKING_ENV, RegistryError, resolve_model
from tests.support.registered import train_classifier

pytestmark = pytest.mark.slow  # MLflow registrations


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    yield tmp_path
    # mlflow exported the URI it was given; do not leak it into later tests
    monkeypatch.delenv(TRACKING_ENV, raising=False)


@pytest.fixture(scope="module")
def trained():
    model, features, _ = train_classifier()
    return model, features


def register(trained, store: Path, metrics: dict[str, float], rule: PromotionRule | None):
    model, features = trained
    return register_model(model, features, Registration("cancer", "exp", {"C": 1.0}, metrics, rule), store=store)


def client(store: Path):
    import mlflow

    uri = f"sqlite:///{store / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)  # not the process-wide registry


def test_versions_are_promoted_only_when_they_beat_the_champion(trained, store: Path):
    rule = PromotionRule("accuracy", higher_is_better=True)
    first = register(trained, store, {"accuracy": 0.90}, rule)
    worse = register(trained, store, {"accuracy": 0.80}, rule)
    better = register(trained, store, {"accuracy": 0.95}, rule)
    assert (first.version, worse.version, better.version) == ("1", "2", "3")
    assert first.champion and first.promotion.reason.startswith("first version")
    assert not worse.champion and "does not beat" in worse.promotion.reason
    assert (worse.promotion.champion_version, worse.promotion.champion_value) == ("1", 0.90)
    assert better.champion and better.promotion.champion_version == "1"

    registry = client(store)
    assert str(registry.get_model_version_by_alias("cancer", "champion").version) == "3"
    assert str(registry.get_model_version_by_alias("cancer", "candidate").version) == "3"
    assert sorted(str(v.version) for v in registry.search_model_versions("name='cancer'")) == ["1", "2", "3"]
    recorded = json.loads(registry.get_model_version("cancer", "2").tags[PROMOTION_TAG])
    assert recorded["promoted"] is False and recorded["candidate_value"] == 0.80
    run = registry.get_run(worse.run_id)
    assert run.data.params == {"C": "1.0"} and run.data.metrics == {"accuracy": 0.80}
    assert worse.tracking_uri == f"sqlite:///{store.resolve() / 'mlflow.db'}"


def test_lower_is_better_and_a_missing_metric_keeps_the_champion(trained, store: Path):
    rule = PromotionRule("rmse", higher_is_better=False)
    assert register(trained, store, {"rmse": 2.0}, rule).champion
    assert register(trained, store, {"rmse": 1.5}, rule).champion
    missing = register(trained, store, {"accuracy": 0.99}, rule)
    assert not missing.champion and "no metric 'rmse'" in missing.promotion.reason


def test_without_a_rule_only_the_first_version_is_champion(trained, store: Path):
    assert register(trained, store, {}, None).champion
    second = register(trained, store, {}, None)
    assert not second.champion and "promote:METRIC>=" in second.promotion.reason


def test_logged_model_has_a_signature_and_an_input_example(trained, store: Path, monkeypatch: pytest.MonkeyPatch):
    features = trained[1]
    registered = register(trained, store, {}, None)
    monkeypatch.setenv(TRACKING_ENV, registered.tracking_uri)
    source = resolve_model("models:/cancer@champion")
    assert source.flavor == "sklearn" and source.version == "1"
    from mlflow.models import Model

    logged = Model.load(str(source.local_path / "MLmodel"))
    assert logged.signature.inputs.input_names() == list(features.columns)
    assert (source.local_path / "input_example.json").is_file()
    assert source.storage_uri.startswith(str(store.resolve()))  # artifacts beside the sqlite store


def test_an_object_without_predict_is_refused(store: Path):
    with pytest.raises(RegistryError, match="has no predict"):
        register_model(object(), None, Registration("thing", "exp"), store=store)
