"""The models bench/serve.py serves: registered in a private sqlite MLflow store (or one given
by URI), with the request row each server is sent, and the native scikit-learn object exported
with joblib for KServe's sklearnserver."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRACKING_ENV = "MLFLOW_TRACKING_URI"
#: the registered name of every bench model (each model has its own store)
MODEL_NAME = "bench"
#: KServe's sklearnserver loads the one model.joblib / .pkl / .pickle in --model_dir
SKLEARNSERVER_FILE = "model.joblib"
FOREST_TREES = 500
MLP_EPOCHS = 100
SEED = 0


@dataclass(frozen=True)
class Model:
    key: str
    uri: str
    tracking_uri: str
    columns: list[str] | None
    row: list[Any]
    description: str


@contextmanager
def tracking(uri: str) -> Iterator[None]:
    """MLFLOW_TRACKING_URI set to ``uri`` inside the block only (mlflow exports what it is given)."""
    saved = os.environ.get(TRACKING_ENV)
    os.environ[TRACKING_ENV] = uri
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = saved


def _breast_cancer() -> tuple[Any, Any, Any, str]:
    from tests.support.registered import train_classifier

    model, features, labels = train_classifier()
    return model, features, labels, "breast-cancer StandardScaler + LogisticRegression (30 features)"


def _iris_forest() -> tuple[Any, Any, Any, str]:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    data = load_iris(as_frame=True)
    features, labels = data.data, data.target
    model = RandomForestClassifier(n_estimators=FOREST_TREES, random_state=SEED).fit(features, labels)
    return model, features, labels, f"iris RandomForestClassifier ({FOREST_TREES} trees, n_jobs default, 4 features)"


def _digits_mlp() -> tuple[Any, Any, Any, str]:
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    data = load_digits(as_frame=True)
    features, labels = data.data / 16.0, data.target
    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    rows = torch.as_tensor(features.to_numpy(), dtype=torch.float32)
    targets = torch.as_tensor(labels.to_numpy())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(MLP_EPOCHS):  # full-batch: 1797 rows, a second on a CPU
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(rows), targets).backward()
        optimizer.step()
    return model.eval(), features, labels, f"digits PyTorch MLP 64-128-10 ({MLP_EPOCHS} epochs, 64 features)"


def _accuracy(model: Any, features: Any, labels: Any) -> float:
    if hasattr(model, "score"):
        return float(model.score(features, labels))
    import torch  # an nn.Module: no score(), its class is the largest output

    with torch.inference_mode():
        predicted = model(torch.as_tensor(features.to_numpy(), dtype=torch.float32)).argmax(dim=1).numpy()
    return float((predicted == labels.to_numpy()).mean())


#: bench name -> how to train it
TRAINERS: dict[str, Callable[[], tuple[Any, Any, Any, str]]] = {
    "cancer": _breast_cancer,
    "forest": _iris_forest,
    "torch": _digits_mlp,
}


def register(key: str, folder: Path) -> Model:
    """Train model ``key`` and register it in FOLDER's own sqlite store."""
    from nb2pipe.lifecycle.register import Registration, register_model

    model, features, labels, description = TRAINERS[key]()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with tracking(uri):
        accuracy = _accuracy(model, features, labels)
        registered = register_model(
            model, features, Registration(MODEL_NAME, "bench", metrics={"accuracy": accuracy}), store=folder
        )
    return Model(
        key,
        registered.uri,
        uri,
        [str(c) for c in features.columns],
        [float(v) for v in features.iloc[0]],
        f"{description}, registered here",
    )


def reuse(model_uri: str, tracking_uri: str | None, folder: Path) -> Model:
    """A model already registered: its first input-example row is the request."""
    import mlflow
    from mlflow.models import Model as MlflowModel

    tracking_to_use = tracking_uri or os.environ.get(TRACKING_ENV, "")
    if tracking_to_use:
        mlflow.set_tracking_uri(tracking_to_use)
        mlflow.set_registry_uri(tracking_to_use)
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(folder / "model"))
    example: Any = MlflowModel.load(local).load_input_example(local)
    if example is None:
        raise SystemExit(f"{model_uri} has no input example: cannot tell what one request row looks like")
    columns: list[str] | None = None
    if hasattr(example, "iloc"):
        columns = [str(c) for c in example.columns]
        row = example.iloc[0].tolist()
    else:
        first = example[0]
        row = list(first.tolist() if hasattr(first, "tolist") else first)
    return Model("given", model_uri, tracking_to_use, columns, row, f"{model_uri} (given)")


def export_for_sklearnserver(model: Model, folder: Path) -> tuple[Path | None, str]:
    """The registered model's own scikit-learn object, dumped with joblib where sklearnserver
    reads it: (folder, "") or (None, why not)."""
    import joblib

    from nb2pipe.store.registry import load_native, resolve_model

    with tracking(model.tracking_uri):
        source = resolve_model(model.uri)
        if source.flavor != "sklearn":
            return None, f"{model.uri} is a {source.flavor} model; sklearnserver serves scikit-learn objects only"
        native = load_native(source)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(native, folder / SKLEARNSERVER_FILE)
    return folder, ""
