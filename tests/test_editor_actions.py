"""The editor's compile, submit and deploy: the library calls behind the panel's buttons."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nb2pipe.cli import main
from nb2pipe.compiler import compile_with_environment
from nb2pipe.editor.actions import NothingToDeploy, compile_for_editor, deploy_champions, submit_for_editor
from nb2pipe.errors import Nb2PipeError
from tests.support.nbtools import EXAMPLES


def _copy(tmp_path: Path, name: str, nb2pipe_metadata: dict | None = None) -> Path:
    target = tmp_path / name
    shutil.copy(EXAMPLES / name, target)
    if nb2pipe_metadata is not None:
        content = json.loads(target.read_text(encoding="utf-8"))
        content["metadata"]["nb2pipe"] = nb2pipe_metadata
        target.write_text(json.dumps(content), encoding="utf-8")
    return target


def test_compile_for_the_editor_writes_what_compile_writes(tmp_path: Path):
    path = _copy(tmp_path, "sklearn_train.ipynb")
    result = compile_for_editor(path, "sklearn_train.ipynb")
    assert result.output == tmp_path / "sklearn_train.pipeline.yaml"
    assert result.output.read_text(encoding="utf-8") == result.yaml
    assert result.yaml == compile_with_environment(path.read_text(encoding="utf-8"), str(path)).yaml
    data = result.to_json(tmp_path)
    assert data["output"] == "sklearn_train.pipeline.yaml" and data["graph"]["notebook"] == "sklearn_train.ipynb"


def test_submit_uses_the_notebook_host(tmp_path: Path, kfp_server):
    path = _copy(tmp_path, "parameters_metrics.ipynb", {"kfp_host": kfp_server.url})
    reply = submit_for_editor(path)
    assert reply["run_url"] == f"{kfp_server.url}/#/runs/details/r-1" and reply["pipeline_id"] == "p-1"
    # and so does the command line, without --host
    assert main(["submit", str(path)]) == 0
    assert len(kfp_server.fake.runs) == 2


def test_submit_without_a_host_says_where_to_set_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = _copy(tmp_path, "parameters_metrics.ipynb")
    with pytest.raises(Nb2PipeError, match="pass --host URL, or set kfp_host"):
        submit_for_editor(path)
    assert main(["submit", str(path)]) == 1
    assert "no Kubeflow Pipelines host" in capsys.readouterr().err


def test_deploy_refuses_a_notebook_that_deploys_nothing(tmp_path: Path):
    with pytest.raises(NothingToDeploy, match="deploys no model"):
        deploy_champions(_copy(tmp_path, "sklearn_train.ipynb"))


def test_deploy_refuses_before_anything_is_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = _copy(tmp_path, "lifecycle.ipynb")
    for target in ("local", "cluster"):
        with pytest.raises(NothingToDeploy, match="no model is registered yet"):
            deploy_champions(path, target)
    assert not (tmp_path / ".nb2pipe").exists()
    with pytest.raises(Nb2PipeError, match="choose local or cluster"):
        deploy_champions(path, "moon")  # type: ignore[arg-type]


@pytest.mark.slow
def test_deploy_reads_the_notebook_mlflow_server_and_wants_every_champion(
    tmp_path: Path, registered_model, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # the store holds a champion of "cancer", not of the notebook's "cancer-classifier"
    path = _copy(tmp_path, "lifecycle.ipynb", {"mlflow_tracking_uri": registered_model.tracking_uri})
    with pytest.raises(NothingToDeploy, match="no champion of cancer-classifier is registered in sqlite:///"):
        deploy_champions(path)
    assert not (tmp_path / ".nb2pipe").exists()


def _deploying_notebook(tmp_path: Path, tracking_uri: str) -> Path:
    """lifecycle.ipynb deploying the registered fixture's model ("cancer") from ``tracking_uri``."""
    path = _copy(tmp_path, "lifecycle.ipynb", {"mlflow_tracking_uri": tracking_uri})
    content = json.loads(path.read_text(encoding="utf-8"))
    for cell in content["cells"]:
        tags = cell["metadata"].get("tags", [])
        cell["metadata"]["tags"] = ["register:cancer" if t.startswith("register:") else t for t in tags]
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_cluster_deploy_leaves_the_tracking_variable_alone(
    tmp_path: Path, registered_model, monkeypatch: pytest.MonkeyPatch
):
    """Resolving the champion points mlflow at the notebook's store, and mlflow exports that as
    MLFLOW_TRACKING_URI; in the Jupyter server it would then win over every later notebook's own."""
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    # a store of its own (the registry's copy, artifacts where they were), so mlflow is
    # pointed somewhere new and exports it
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(registered_model.folder / "mlflow.db", store / "mlflow.db")
    path = _deploying_notebook(tmp_path, f"sqlite:///{store / 'mlflow.db'}")
    with pytest.raises(Nb2PipeError, match=r"(?i)kube|cluster"):  # no cluster here, after the model resolved
        deploy_champions(path, "cluster")
    assert "MLFLOW_TRACKING_URI" not in os.environ


@pytest.mark.slow
def test_deploy_serves_the_champion_locally(tmp_path: Path, registered_model, monkeypatch: pytest.MonkeyPatch):
    """The Deploy button on a notebook whose MLflow URI (panel settings) holds a champion:
    an nb2pipe serve process answers predictions on loopback until it is stopped by PID."""
    import urllib.request

    from nb2pipe.lifecycle.endpoints import list_endpoints, stop_endpoint

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = _deploying_notebook(tmp_path, registered_model.tracking_uri)
    (deployed,) = deploy_champions(path, "local")
    store = tmp_path / ".nb2pipe"
    try:
        assert (deployed.service, deployed.model_uri, deployed.target) == ("cancer", "models:/cancer@champion", "local")
        rows = registered_model.features.head(3)
        request = urllib.request.Request(
            f"{deployed.url}/v1/models/cancer:predict",
            data=json.dumps({"instances": rows.values.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = json.loads(response.read())
        assert reply["predictions"] == registered_model.model.predict(rows).tolist()
        assert [e.service for e in list_endpoints(store)] == ["cancer"]
        (first,) = list_endpoints(store)
        # deploying again replaces the server at the same URL: the old one is stopped
        (again,) = deploy_champions(path, "local")
        (second,) = list_endpoints(store)
        assert again.url == deployed.url and second.pid != first.pid and second.alive and not first.alive
    finally:
        assert stop_endpoint("cancer", store)


@pytest.mark.slow
def test_deploy_says_how_to_call_each_service(tmp_path: Path, registered_model, monkeypatch: pytest.MonkeyPatch):
    """The Deploy answer carries the paths, the signature's columns and a curl that, run as
    given in a POSIX shell, predicts the first row of the training data kept with the version."""
    import subprocess

    from nb2pipe.editor.actions import deployments_json
    from nb2pipe.lifecycle.endpoints import stop_endpoint

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = _deploying_notebook(tmp_path, registered_model.tracking_uri)
    (deployed,) = deploy_champions(path, "local")
    try:
        (answer,) = deployments_json((deployed,))["deployments"]
        call = answer["call"]
        assert call["base_url"] == deployed.url
        assert (call["predict_path"], call["infer_path"]) == ("/v1/models/cancer:predict", "/v2/models/cancer/infer")
        features = registered_model.features
        assert [(i["name"], i["type"]) for i in call["inputs"]] == [(c, "double") for c in features.columns]
        assert call["curl"] and call["curl_note"] is None, call["curl_note"]
        ran = subprocess.run(["sh", "-c", call["curl"]], capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(ran.stdout) == {"predictions": registered_model.model.predict(features.head(1)).tolist()}
    finally:
        assert stop_endpoint("cancer", tmp_path / ".nb2pipe")
