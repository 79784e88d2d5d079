"""`nb2pipe deploy`: the KServe InferenceService it builds (checked against the real CRD),
the requests it refuses, the CLI, and the cluster path against a recording Kubernetes API
server on loopback (no cluster can run here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from nb2pipe.cli import main
from nb2pipe.deploy_checks import deploy_problems
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.cluster import DeployError, apply_inference_service
from nb2pipe.lifecycle.deploy import check_request
from nb2pipe.lifecycle.inference_service import ServedModel, inference_service
from nb2pipe.lifecycle.runtimes import NB2PIPE_RUNTIME
from nb2pipe.store.registry import TRACKING_ENV
from tests.support.crd_schema import validate_resource
from tests.support.fake_kserve import API, FakeKServe, merge_patch, point_kubeconfig_at, service_url, use_kubeconfig
from tests.support.isvc_dicts import EVERY_SETTING as FULL
from tests.support.loopback import LoopbackServer
from tests.support.registered import RegisteredModel

S3 = "s3://models/cancer/1"
OPTIONAL_PREDICTOR_FIELDS = (
    "canaryTrafficPercent",
    "logger",
    "minReplicas",
    "maxReplicas",
    "scaleMetric",
    "scaleTarget",
    "containerConcurrency",
)


def served(flavor: str, version: str | None = "1") -> ServedModel:
    return ServedModel("models:/cancer/1", flavor, S3, version)


# --- the InferenceService resource -------------------------------------------------------


def test_sklearn_service_with_every_setting_matches_the_crd():
    resource = inference_service("cancer", served("sklearn"), FULL)
    validate_resource(resource)

    assert resource["apiVersion"] == "serving.kserve.io/v1beta1"
    assert resource["kind"] == "InferenceService"
    assert resource["metadata"]["name"] == "cancer"
    assert resource["metadata"]["annotations"] == {
        "nb2pipe.io/model-uri": "models:/cancer/1",
        "serving.kserve.io/deploymentMode": "Knative",
        "nb2pipe.io/deployment-mode-source": "assumed: no cluster consulted",
        "nb2pipe.io/model-version": "1",  # monitored: each payload record names the version that answered
    }
    assert resource["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "nb2pipe",
        "nb2pipe.io/model-version": "1",
    }
    assert "namespace" not in resource["metadata"]  # left to the kubeconfig context
    predictor = resource["spec"]["predictor"]
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "sklearn", "version": "1"}
    assert model["runtime"] == "kserve-sklearnserver"
    assert model["protocolVersion"] == "v1"
    assert model["storageUri"] == S3
    assert "name" not in model  # the SDK's empty container name is dropped
    # quantities are strings; an extended resource's request must equal its limit
    assert model["resources"] == {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}
    assert predictor["minReplicas"] == 1
    assert predictor["maxReplicas"] == 4
    assert predictor["scaleMetric"] == "concurrency"
    assert predictor["scaleTarget"] == 8
    assert predictor["containerConcurrency"] == 16
    assert predictor["canaryTrafficPercent"] == 20
    assert predictor["logger"] == {
        "mode": "all",
        "url": "http://logger.example/",
        "metadataAnnotations": ["nb2pipe.io/model-version"],
    }
    # a plain JSON document: what the API server receives, byte for byte
    assert json.loads(json.dumps(resource)) == resource


def test_cpu_memory_and_gpu_type_become_requests_and_limits():
    settings = DeploySettings(gpu=2, gpu_type="amd.com/gpu", cpu="500m", memory="1Gi")
    resource = inference_service("cancer", served("sklearn"), settings)
    validate_resource(resource)
    expected = {"amd.com/gpu": "2", "cpu": "500m", "memory": "1Gi"}
    assert resource["spec"]["predictor"]["model"]["resources"] == {"limits": expected, "requests": expected}


@pytest.mark.parametrize(
    ("flavor", "server", "version"), [("xgboost", "kserve-xgbserver", "2"), ("lightgbm", "kserve-lgbserver", "4")]
)
def test_boosters_go_to_kserves_server_from_their_runtime_folder(flavor, server, version):
    resource = inference_service("cancer", served(flavor), FULL)
    validate_resource(resource)
    model = resource["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": flavor, "version": version}
    assert (model["runtime"], model["protocolVersion"]) == (server, "v1")
    assert model["storageUri"] == f"{S3}/kserve"  # the Booster alone, as registration keeps it


@pytest.mark.parametrize("flavor", ["tensorflow", "mlflow"])
def test_other_mlflow_flavors_use_the_mlflow_format_on_nb2pipe_server(flavor):
    resource = inference_service("cancer", served(flavor), FULL)
    validate_resource(resource)
    model = resource["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "mlflow", "version": "3"}
    assert model["runtime"] == NB2PIPE_RUNTIME  # MLServer (unmaintained) only when asked
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"] == S3


def test_models_of_nb2pipe_wrapper_use_the_nb2pipe_runtime():
    resource = inference_service("cancer", served("nb2pipe"), DeploySettings())
    validate_resource(resource)
    model = resource["spec"]["predictor"]["model"]
    assert model["runtime"] == NB2PIPE_RUNTIME == "nb2pipe-server"
    assert model["modelFormat"] == {"name": "nb2pipe", "version": "1"}
    assert model["protocolVersion"] == "v2"


def test_minimal_settings_leave_everything_to_kserve():
    resource = inference_service("cancer", served("sklearn", version=None), DeploySettings())
    validate_resource(resource)
    predictor = resource["spec"]["predictor"]
    assert set(predictor) == {"model"}
    for field in OPTIONAL_PREDICTOR_FIELDS:
        assert field not in predictor
    assert set(predictor["model"]) == {"modelFormat", "runtime", "protocolVersion", "storageUri"}
    assert "nb2pipe.io/model-version" not in resource["metadata"]["labels"]


def test_a_namespace_setting_lands_in_metadata():
    resource = inference_service("cancer", served("sklearn"), DeploySettings(namespace="team-a"))
    validate_resource(resource)
    assert resource["metadata"]["namespace"] == "team-a"


def test_the_crd_check_catches_a_misspelled_field():
    # the validator used above is strict: otherwise the tests above prove little
    resource = inference_service("cancer", served("sklearn"), FULL)
    resource["spec"]["predictor"]["minReplica"] = resource["spec"]["predictor"].pop("minReplicas")
    with pytest.raises(AssertionError, match="minReplica"):
        validate_resource(resource)


# --- requests refused before anything is resolved ----------------------------------------


@pytest.mark.parametrize("name", ["Cancer_Model", "cancer_model", "1cancer", "cancer-", "", "c" * 64, "kärnten"])
def test_invalid_service_names_are_refused_with_the_rule(name):
    with pytest.raises(Nb2PipeError) as caught:
        check_request(name, DeploySettings())
    message = str(caught.value)
    assert repr(name) in message
    assert "lowercase letters, digits and '-'" in message
    assert "starting with a letter" in message and "63" in message


@pytest.mark.parametrize("name", ["cancer", "cancer-model-2", "c" * 63])
def test_valid_service_names_pass(name):
    check_request(name, FULL)  # no exception
    validate_resource(inference_service(name, served("sklearn"), FULL))


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (DeploySettings(min_replicas=5, max_replicas=2), "minimum replicas 5 is above the maximum 2"),
        (DeploySettings(canary_percent=150), "canary traffic 150% must be between 0 and 100"),
        (DeploySettings(canary_percent=-1), "canary traffic -1% must be between 0 and 100"),
        (DeploySettings(min_replicas=-1), "minimum replicas cannot be negative"),
        (DeploySettings(max_replicas=0), "maximum replicas must be at least 1"),
        (DeploySettings(scale_target=8), "a scale target needs a scale metric"),
        (DeploySettings(scale_metric="latency"), "scale metric 'latency' is not one of concurrency, rps, cpu, memory"),
        (DeploySettings(scale_metric="rps", scale_target=0), "the scale target must be at least 1"),
        (DeploySettings(min_replicas=0, scale_metric="cpu"), "scaling to zero works with the concurrency or rps"),
        (DeploySettings(gpu=-1), "the GPU count cannot be negative"),
        (DeploySettings(container_concurrency=-2), "container concurrency cannot be negative"),
    ],
)
def test_settings_problems_are_refused_clearly(settings, expected):
    with pytest.raises(Nb2PipeError) as caught:
        check_request("cancer", settings)
    assert expected in str(caught.value)


def test_every_settings_problem_is_reported_at_once():
    settings = DeploySettings(min_replicas=5, max_replicas=2, canary_percent=150)
    found = deploy_problems(settings)
    assert len(found) == 2
    with pytest.raises(Nb2PipeError) as caught:
        check_request("cancer", settings)
    assert str(caught.value) == "; ".join(found)


def test_edge_values_are_accepted():
    assert deploy_problems(DeploySettings(min_replicas=0, max_replicas=1, scale_metric="rps", canary_percent=0)) == []
    assert (
        deploy_problems(DeploySettings(min_replicas=3, max_replicas=3, canary_percent=100, container_concurrency=0))
        == []
    )


# --- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def registry(registered_model: RegisteredModel, monkeypatch: pytest.MonkeyPatch) -> RegisteredModel:
    monkeypatch.setenv(TRACKING_ENV, registered_model.tracking_uri)
    return registered_model


def _local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


@pytest.mark.slow
def test_cli_dry_run_writes_a_valid_inference_service(registry, tmp_path, capsys):
    from mlflow import MlflowClient

    out = tmp_path / "cancer.yaml"
    argv = ["deploy", registry.model_uri, "--name", "cancer", "--gpu", "1", "--min-replicas", "1"]
    argv += ["--max-replicas", "3", "--scale-metric", "concurrency", "--scale-target", "8", "--canary", "10"]
    argv += ["--mode", "knative"]
    assert main([*argv, "--dry-run", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote {out}"

    resource = yaml.safe_load(out.read_text(encoding="utf-8"))
    validate_resource(resource)
    predictor = resource["spec"]["predictor"]
    assert resource["metadata"]["name"] == "cancer"
    assert resource["metadata"]["annotations"]["nb2pipe.io/model-uri"] == "models:/cancer/1"
    assert resource["metadata"]["labels"]["nb2pipe.io/model-version"] == "1"
    # trained with scikit-learn 1.9, which kserve-sklearnserver (1.5.2) does not load
    assert (predictor["model"]["modelFormat"]["name"], predictor["model"]["runtime"]) == ("mlflow", NB2PIPE_RUNTIME)
    assert predictor["model"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 8)
    assert predictor["canaryTrafficPercent"] == 10
    assert "logger" not in predictor and "containerConcurrency" not in predictor

    # storageUri: the registered version's own artifacts (where MLflow says they are)
    storage = predictor["model"]["storageUri"]
    assert storage == MlflowClient(registry.tracking_uri, registry.tracking_uri).get_model_version_download_uri(
        "cancer", "1"
    )
    assert (_local_path(storage) / "MLmodel").is_file()
    assert str(registry.folder) in storage

    # a path on this machine: the user is told a cluster cannot fetch it
    warning = [line for line in captured.err.splitlines() if line.startswith("nb2pipe: warning:")]
    assert len(warning) == 2
    assert warning[0].endswith("scikit-learn predicts on CPU only: the GPU will sit idle")
    assert f"storageUri {storage} is on this machine" in warning[1]
    assert "a cluster cannot fetch it" in warning[1]
    assert "nb2pipe: runtime nb2pipe-server (mlflow/3, v2): scikit-learn " in captured.err
    assert "kserve-sklearnserver ships 1.5.2: serving on nb2pipe-server" in captured.err


@pytest.mark.slow
def test_cli_dry_run_without_output_prints_the_yaml(registry, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["deploy", registry.model_uri, "--name", "cancer-v2", "--log-url", "http://logger.example/"]
    assert main([*argv, "--container-concurrency", "4", "--namespace", "team-a", "--dry-run"]) == 0
    captured = capsys.readouterr()
    resource = yaml.safe_load(captured.out)
    validate_resource(resource)
    assert resource["metadata"]["name"] == "cancer-v2"
    assert resource["metadata"]["namespace"] == "team-a"
    predictor = resource["spec"]["predictor"]
    assert predictor["logger"] == {
        "mode": "all",
        "url": "http://logger.example/",
        "metadataAnnotations": ["nb2pipe.io/model-version"],
    }
    assert predictor["containerConcurrency"] == 4
    assert "is on this machine" in captured.err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.slow
def test_cli_dry_run_json_reports_resource_and_warnings(registry, capsys):
    assert main(["deploy", registry.model_uri, "--name", "cancer", "--mode", "knative", "--dry-run", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    validate_resource(outcome["resource"])
    assert outcome["written"] is None and outcome["applied"] is None
    assert len(outcome["warnings"]) == 1 and "is on this machine" in outcome["warnings"][0]
    assert outcome["runtime"].endswith("serving on nb2pipe-server")


@pytest.mark.slow
def test_cli_unknown_model_fails_and_keeps_the_existing_output(registry, tmp_path, capsys):
    out = tmp_path / "cancer.yaml"
    out.write_text("previous: content\n", encoding="utf-8")
    assert main(["deploy", "models:/nope/1", "--name", "cancer", "--dry-run", "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("nb2pipe: ")
    assert "models:/nope/1" in captured.err
    assert out.read_text(encoding="utf-8") == "previous: content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cancer.yaml"]  # no temporary left over


def test_cli_refuses_a_bad_name_before_resolving_the_model(tmp_path, capsys, monkeypatch):
    # no registry configured: the name check has to come first
    monkeypatch.chdir(tmp_path)
    assert main(["deploy", "models:/nope/1", "--name", "Cancer_Model", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nb2pipe: 'Cancer_Model' is not a valid service name")
    assert not (tmp_path / ".nb2pipe").exists()


@pytest.mark.slow
def test_cli_refuses_inconsistent_settings(registry, capsys):
    argv = ["deploy", registry.model_uri, "--name", "cancer", "--min-replicas", "5", "--max-replicas", "2"]
    assert main([*argv, "--canary", "150", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nb2pipe: ")
    assert "minimum replicas 5 is above the maximum 2" in err
    assert "canary traffic 150% must be between 0 and 100" in err


# --- the cluster: a recording Kubernetes API server on loopback ---------------------------

TOKEN = "test-token-123"
COLLECTION = f"{API}/namespaces/models/inferenceservices"
ITEM = f"{COLLECTION}/cancer"
SERVICE_URL = service_url("models", "cancer")


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    def write(server_url: str) -> Path:
        return point_kubeconfig_at(monkeypatch, tmp_path / "kubeconfig.yaml", server_url, TOKEN)

    return write


@pytest.fixture
def cluster(kserve_server: LoopbackServer, kubeconfig: Callable[[str], Path]) -> LoopbackServer:
    """The fake KServe API server, with the kubeconfig pointing at it."""
    kubeconfig(kserve_server.url)
    return kserve_server


def resource_for(settings: DeploySettings = FULL) -> dict[str, Any]:
    return inference_service("cancer", served("sklearn"), settings)


def test_a_new_service_is_created_and_waited_for(cluster):
    resource = resource_for()
    # not Ready at first, then Ready: the wait has to poll
    cluster.fake.ready_after_reads = 2
    cluster.fake.not_ready_message = "Predictor ingress not created"
    applied = apply_inference_service(resource, wait_seconds=5, poll=0.05)

    assert applied.action == "created"
    assert applied.ready is True
    assert applied.url == SERVICE_URL
    assert (applied.name, applied.namespace) == ("cancer", "models")
    calls = [(r.method, r.path) for r in cluster.requests]
    assert calls[:2] == [("GET", ITEM), ("POST", COLLECTION)]
    assert calls[2:] == [("GET", ITEM)] * 3  # polled until Ready, then stopped
    (post,) = [r for r in cluster.requests if r.method == "POST"]
    expected = {**resource, "metadata": {**resource["metadata"], "namespace": "models"}}
    assert post.json() == expected
    assert post.headers["content-type"] == "application/json"
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in cluster.requests)
    assert "namespace" not in resource["metadata"]  # the caller's dict is not changed
    assert cluster.fake.service("models", "cancer") == expected


def test_an_existing_service_is_merge_patched_clearing_old_fields(cluster):
    # an earlier deployment had a canary and a logger; the new one sets neither
    old = resource_for()
    new = resource_for(DeploySettings(min_replicas=1, max_replicas=2, scale_metric="rps", scale_target=50))
    validate_resource(new)
    cluster.fake.store(old, "models")
    applied = apply_inference_service(new, wait_seconds=5, poll=0.05)

    assert (applied.action, applied.ready, applied.url) == ("updated", True, SERVICE_URL)
    assert [r.method for r in cluster.requests] == ["GET", "PATCH", "GET"]
    assert not any(r.method in ("POST", "PUT") for r in cluster.requests)
    patch = cluster.requests[1]
    assert patch.path == ITEM
    # CustomObjectsApi sends a JSON merge patch for a dict body (RFC 7386: null deletes)
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.headers["authorization"] == f"Bearer {TOKEN}"
    body = patch.json()
    predictor = body["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] is None
    assert predictor["logger"] is None
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 2)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("rps", 50)
    # the old GPU resources are cleared: applying the patch leaves exactly the new model spec
    assert merge_patch(old["spec"]["predictor"]["model"], predictor["model"]) == new["spec"]["predictor"]["model"]
    assert body["metadata"]["namespace"] == "models"
    assert body["metadata"]["annotations"] == new["metadata"]["annotations"]


def test_a_redeployment_drops_the_autoscaler_class_of_the_earlier_scaling(cluster):
    # scaled on cpu (Knative's HPA class) before, on concurrency (the KPA) now: a class left on the
    # service would make KServe judge concurrency by the HPA's rules and refuse it
    old = resource_for(DeploySettings(scale_metric="cpu", scale_target=70))
    assert old["metadata"]["annotations"]["autoscaling.knative.dev/class"] == "hpa.autoscaling.knative.dev"
    new = resource_for(DeploySettings(scale_metric="concurrency", scale_target=8))
    cluster.fake.store(old, "models")
    apply_inference_service(new, wait_seconds=5, poll=0.05)

    annotations = cluster.requests[1].json()["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/class"] is None
    assert "serving.kserve.io/autoscalerClass" not in annotations  # never written: nothing to clear
    assert {k: v for k, v in annotations.items() if v is not None} == new["metadata"]["annotations"]
    assert cluster.fake.service("models", "cancer")["metadata"]["annotations"] == new["metadata"]["annotations"]


def test_a_redeployment_leaves_nothing_of_the_earlier_predictor(cluster):
    # deployed once with a GPU, container concurrency, a canary and a logger; then again
    # with none of them: the cluster's predictor must be the new one, not a mix
    cluster.fake.store(resource_for(), "models")
    new = resource_for(DeploySettings(min_replicas=1, max_replicas=2, scale_metric="rps", scale_target=50))
    applied = apply_inference_service(new, wait_seconds=5, poll=0.05)

    assert applied.action == "updated"
    patches = [r for r in cluster.requests if r.method == "PATCH"]
    assert all(r.headers["content-type"] == "application/merge-patch+json" for r in patches)
    stored = cluster.fake.service("models", "cancer")
    assert stored["spec"]["predictor"] == new["spec"]["predictor"]
    validate_resource(stored)


def test_a_service_that_never_gets_ready_fails_after_the_wait(cluster):
    reason = "Revision cancer-predictor-00001 failed: ImagePullBackOff"
    cluster.fake.ready_after_reads = None
    cluster.fake.not_ready_message = reason
    with pytest.raises(DeployError) as caught:
        apply_inference_service(resource_for(), wait_seconds=0.3, poll=0.05)

    message = str(caught.value)
    assert "InferenceService models/cancer was created but is not Ready after 0.3 s" in message
    assert reason in message
    assert "kubectl describe inferenceservice cancer -n models" in message
    assert [r.method for r in cluster.requests[:2]] == ["GET", "POST"]
    polls = [r for r in cluster.requests if r.method == "GET"][1:]
    assert 2 <= len(polls) <= 20  # it polled for ~0.3 s, then gave up


def test_wait_zero_applies_without_waiting(cluster):
    applied = apply_inference_service(resource_for(), wait_seconds=0)

    assert (applied.action, applied.ready, applied.url) == ("created", False, None)
    assert [r.method for r in cluster.requests] == ["GET", "POST"]
    assert ("models", "cancer") in cluster.fake.services


def test_a_refused_create_reports_the_servers_message(cluster):
    denial = (
        'inferenceservices.serving.kserve.io is forbidden: User "tester" cannot create resource '
        '"inferenceservices" in API group "serving.kserve.io" in the namespace "models"'
    )
    cluster.fake.refuse_create_with = (403, denial)
    with pytest.raises(DeployError) as caught:
        apply_inference_service(resource_for(), wait_seconds=5, poll=0.05)

    assert str(caught.value) == f"the cluster refused InferenceService models/cancer: {denial}"
    assert [r.method for r in cluster.requests] == ["GET", "POST"]  # no waiting after a refusal
    assert not cluster.fake.services


def test_a_failing_read_is_not_taken_for_a_missing_service(cluster):
    cluster.fake.fail_reads_with = (401, "Unauthorized")
    with pytest.raises(DeployError, match="refused InferenceService models/cancer: Unauthorized"):
        apply_inference_service(resource_for(), wait_seconds=5, poll=0.05)

    assert [r.method for r in cluster.requests] == ["GET"]  # nothing created
    assert not cluster.fake.services


def test_an_unreachable_api_server_is_a_deploy_error(kubeconfig):
    with LoopbackServer(FakeKServe()) as server:
        url = server.url  # a port that nothing listens on once the server is closed
    kubeconfig(url)
    with pytest.raises(DeployError) as caught:
        apply_inference_service(resource_for(), wait_seconds=5, poll=0.05)
    assert "models/cancer" in str(caught.value)


def test_without_a_kubeconfig_the_error_points_at_dry_run(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    use_kubeconfig(monkeypatch, tmp_path / "missing" / "config")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DeployError) as caught:
        apply_inference_service(resource_for(), wait_seconds=5, poll=0.05)
    message = str(caught.value)
    assert message.startswith("no Kubernetes cluster configured")
    assert "--dry-run -o FILE" in message
    assert "KUBECONFIG" in message


@pytest.mark.slow
def test_cli_deploy_to_the_cluster_reports_the_url(registry, cluster, capsys):
    argv = ["deploy", registry.model_uri, "--name", "cancer", "--mode", "knative", "--canary", "25", "--wait", "5"]
    assert main(argv) == 0

    out = capsys.readouterr().out
    assert out.strip() == f"created InferenceService models/cancer: ready at {SERVICE_URL}"
    assert [(r.method, r.path) for r in cluster.requests] == [("GET", ITEM), ("POST", COLLECTION), ("GET", ITEM)]
    stored = cluster.fake.service("models", "cancer")
    validate_resource(stored)
    assert stored["metadata"]["namespace"] == "models"
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 25
