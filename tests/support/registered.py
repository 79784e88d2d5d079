"""A scikit-learn model registered in a private MLflow sqlite store, shared by the
lifecycle tests (registering costs seconds, so it happens once per session)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.store.registry import TRACKING_ENV


@dataclass(frozen=True)
class RegisteredModel:
    folder: Path  # nb2pipe's local store: mlflow.db and mlartifacts/ are in it
    tracking_uri: str
    model_uri: str  # models:/NAME/1
    name: str
    model: Any  # the fitted estimator, to compare served predictions with
    features: Any  # a DataFrame of rows the model was trained on


def train_classifier() -> tuple[Any, Any, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    features, labels = data.data, data.target
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)
    return model, features, labels


@pytest.fixture(scope="session")
def registered_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    from nb2pipe.lifecycle.register import PromotionRule, Registration, register_model

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    model, features, labels = train_classifier()
    saved = os.environ.get(TRACKING_ENV)
    os.environ[TRACKING_ENV] = uri
    try:
        registered = register_model(
            model,
            features,
            Registration(
                "cancer",
                "tests",
                params={"max_iter": 500},
                metrics={"accuracy": float(model.score(features, labels))},
                rule=PromotionRule("accuracy", True),
            ),
            store=folder,
        )
    finally:  # mlflow exports the URI it is given; later tests must not inherit it
        if saved is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = saved
    yield RegisteredModel(folder, uri, registered.uri, "cancer", model, features)
