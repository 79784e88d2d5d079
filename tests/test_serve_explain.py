"""Explanations from the model server: ``nb2pipe serve --explainer`` answers
``/v1/models/NAME:explain`` (a real server on 127.0.0.1, stopped by PID), and a deployment
with an explainer gets a KServe custom explainer container that matches the real CRD."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nb2pipe.cli import main
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.inference_service import SERVER_IMAGE, ServedModel, inference_service
from nb2pipe.store.registry import TRACKING_ENV
from tests.support.crd_schema import validate_resource
from tests.support.registered import RegisteredModel
from tests.support.served import Server, serving

S3 = "s3://models/cancer/3"
TRACKING = "http://mlflow.kubeflow.svc:5000"


def explained_service(**settings: object) -> dict:
    model = ServedModel("models:/cancer@champion", "sklearn", S3, "3", "cancer")
    return inference_service("cancer", model, DeploySettings(**settings), tracking_uri=TRACKING)  # type: ignore[arg-type]


def test_an_explainer_is_a_custom_container_that_matches_the_crd():
    resource = explained_service(explainer="anchor", min_replicas=1, monitor=True)
    validate_resource(resource)
    (container,) = resource["spec"]["explainer"]["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == SERVER_IMAGE
    assert container["command"] == ["nb2pipe", "serve"]
    # pinned to the version, not the alias: the alias may move before the pod starts
    assert container["args"][0] == "models:/cancer/3"
    assert "--explainer=anchor" in container["args"] and "--name=cancer" in container["args"]
    assert container["env"] == [{"name": "MLFLOW_TRACKING_URI", "value": TRACKING}]
    # the predictor is unchanged by the explainer
    assert resource["spec"]["predictor"]["model"]["storageUri"] == S3


def test_no_explainer_no_explainer_component():
    resource = explained_service()
    validate_resource(resource)
    assert "explainer" not in resource["spec"]


@pytest.mark.slow
def test_deploy_dry_run_with_an_explainer_warns_about_a_local_tracking_store(
    registered_model: RegisteredModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv(TRACKING_ENV, registered_model.tracking_uri)
    assert main(["deploy", "models:/cancer/1", "--name", "cancer", "--explainer", "ig", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "--explainer=ig" in captured.out
    assert "MLFLOW_TRACKING_URI" in captured.err and "cluster" in captured.err


@pytest.fixture(scope="module")
def explaining(registered_model: RegisteredModel) -> Iterator[Server]:
    with serving(
        "models:/cancer@champion",
        "cancer",
        registered_model.tracking_uri,
        registered_model.folder,
        "--explainer",
        "anchor",
        ready_seconds=300,
    ) as running:
        yield running


@pytest.mark.slow
def test_the_server_explains_a_row_with_an_anchor(explaining: Server, registered_model: RegisteredModel):
    row = registered_model.features.iloc[:1].values.tolist()
    status, answer = explaining.post_json("/v1/models/cancer:explain", {"instances": row})
    assert status == 200, answer
    assert answer["model_name"] == "cancer" and answer["model_version"] == "1"
    assert answer["method"] == "anchor" and answer["modality"] == "tabular"
    (explained,) = answer["explanations"]
    assert explained["precision"] >= 0.95
    assert explained["anchor"], "an anchor names at least one condition"
    assert explained["prediction"] == int(registered_model.model.predict(registered_model.features.iloc[:1])[0])
    # predictions are still served beside explanations
    status, predicted = explaining.post_json("/v1/models/cancer:predict", {"instances": row})
    assert status == 200 and predicted["predictions"] == [explained["prediction"]]


@pytest.mark.slow
@pytest.mark.parametrize(
    "body",
    [
        {"instances": []},
        {"instances": [[1.0, 2.0]]},
        {"rows": [[1.0]]},
        {"instances": [[0.0] * 30] * 21},
    ],
    ids=["no-rows", "wrong-width", "no-instances", "too-many-rows"],
)
def test_bad_explain_requests_get_400(explaining: Server, body: dict):
    status, answer = explaining.post_json("/v1/models/cancer:explain", body)
    assert status == 400, answer
    assert "error" in answer


@pytest.mark.slow
def test_a_server_without_an_explainer_says_how_to_get_one(registered_model: RegisteredModel):
    with serving("models:/cancer@champion", "cancer", registered_model.tracking_uri, registered_model.folder) as plain:
        status, answer = plain.post_json("/v1/models/cancer:explain", {"instances": [[0.0] * 30]})
    assert status == 400 and "--explainer" in answer["error"]
