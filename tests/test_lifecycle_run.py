"""Acceptance: ``nb2pipe run`` of the example notebook trains, registers the model in MLflow
as champion and serves it on a local KServe endpoint whose v1 and v2 predictions equal the
notebook's own model; a worse second run is registered but not promoted, and the endpoint
keeps serving the champion."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nb2pipe.lifecycle.endpoints import list_endpoints, read_endpoint, stop_endpoint
from nb2pipe.store.registry import TRACKING_ENV
from tests.support.equivalence import notebook_final_variables
from tests.support.nbtools import EXAMPLES
from tests.support.served import Server

pytestmark = pytest.mark.slow  # runs, registers in MLflow and serves


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("lifecycle")
    shutil.copy(EXAMPLES / "lifecycle.ipynb", where / "lifecycle.ipynb")
    yield where
    for endpoint in list_endpoints(where / ".nb2pipe"):  # never leave a server behind
        stop_endpoint(endpoint.service, where / ".nb2pipe")


def nb2pipe_run(folder: Path, *arguments: str) -> dict:
    environment = {k: v for k, v in __import__("os").environ.items() if k != TRACKING_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "run", "lifecycle.ipynb", "--json", *arguments],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def first_run(folder: Path) -> dict:
    return nb2pipe_run(folder)


def endpoint_server(folder: Path) -> Server:
    endpoint = read_endpoint("cancer", folder / ".nb2pipe")
    assert endpoint is not None and endpoint.alive
    port = int(endpoint.url.rsplit(":", 1)[1])
    return Server(port, None, Path(endpoint.log))  # type: ignore[arg-type]


def test_first_run_registers_the_champion_and_serves_it(first_run: dict, folder: Path):
    assert first_run["status"] == "succeeded"
    (model,) = first_run["models"]
    assert model == {
        "model_name": "cancer-classifier",
        "version": "1",
        "uri": "models:/cancer-classifier/1",
        "champion": True,
    }
    (deployment,) = first_run["endpoints"]
    assert deployment["deployed"] is True and deployment["target"] == "local"
    assert deployment["url"].startswith("http://127.0.0.1:")
    assert (folder / ".nb2pipe" / "mlflow.db").is_file()
    promotion = folder / ".nb2pipe" / "runs" / first_run["run_id"] / "register-cancer-classifier" / "promotion"
    assert "Promoted to champion" in promotion.read_text()


def test_endpoint_predictions_equal_the_notebooks_model(first_run: dict, folder: Path, tmp_path: Path):
    finals = notebook_final_variables(folder / "lifecycle.ipynb", tmp_path)
    features = finals["X_test"].iloc[:20]
    expected = finals["model"].predict(features).tolist()
    server = endpoint_server(folder)
    status, v1 = server.post_json("/v1/models/cancer:predict", {"instances": features.values.tolist()})
    assert (status, v1) == (200, {"predictions": expected})
    request = {
        "inputs": [
            {"name": "x", "shape": list(features.shape), "datatype": "FP64", "data": np.ravel(features.values).tolist()}
        ]
    }
    status, v2 = server.post_json("/v2/models/cancer/infer", request)
    assert status == 200 and v2["outputs"][0]["data"] == expected
    assert v2["model_version"] == "1"


def test_a_worse_second_run_is_kept_but_not_promoted(first_run: dict, folder: Path):
    serving_before = read_endpoint("cancer", folder / ".nb2pipe")
    second = nb2pipe_run(folder, "--param", "C=0.0001")
    (model,) = second["models"]
    assert (model["version"], model["champion"]) == ("2", False)
    (deployment,) = second["endpoints"]
    assert deployment["deployed"] is False and "not the champion" in deployment["reason"]
    assert second["metrics"]["accuracy"] < first_run["metrics"]["accuracy"]
    # the champion's server was left alone
    serving_after = read_endpoint("cancer", folder / ".nb2pipe")
    assert serving_after == serving_before and serving_after is not None and serving_after.alive

    import mlflow

    uri = f"sqlite:///{folder / '.nb2pipe' / 'mlflow.db'}"
    registry = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(registry.get_model_version_by_alias("cancer-classifier", "champion").version) == "1"
    assert str(registry.get_model_version_by_alias("cancer-classifier", "candidate").version) == "2"


def test_nb2pipe_endpoints_stops_the_server(first_run: dict, folder: Path):
    endpoint = read_endpoint("cancer", folder / ".nb2pipe")
    assert endpoint is not None
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "endpoints", "--stop-all"],
        cwd=folder,  # the default workdir: .nb2pipe/ here
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "cancer: stopped" in done.stdout
    assert not endpoint.alive and read_endpoint("cancer", folder / ".nb2pipe") is None
