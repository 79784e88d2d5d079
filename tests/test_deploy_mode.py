"""KServe's deployment mode made explicit: where it comes from (``mode:`` tag, notebook
metadata, ``--mode``, the cluster's ``inferenceservice-config`` read from a loopback
Kubernetes API server, else Knative, assumed), what the builder writes for each mode
(CRD-valid, admitted by KServe's rules), and what Standard mode refuses: KEDA without Prometheus,
scale to zero on the pods' own metric, canaries before KServe 0.20. The ingress setting that
Standard-mode canary weights need is read with the mode. Every combination: test_deploy_matrix."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from nb2pipe.cli import main
from nb2pipe.deploy_checks import deploy_problems
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle import deploy, deploy_mode, kserve_behaviour, kserve_rules
from nb2pipe.lifecycle.deploy import check_request, render
from nb2pipe.lifecycle.deploy_mode import (
    CLUSTER_DEFAULT,
    GIVEN,
    NO_CLUSTER,
    NO_DEFAULT,
    NOT_CONSULTED,
    UNREADABLE,
    ResolvedMode,
    cluster_default,
    resolve_mode,
)
from nb2pipe.lifecycle.inference_service import (
    ServedModel,
    inference_service,
)
from nb2pipe.lifecycle.kserve_rules import (
    AUTOSCALER_CLASS_ANNOTATION,
    KNATIVE_CLASS_ANNOTATION,
    KNATIVE_HPA_CLASS,
    MODE_ANNOTATION,
    MODE_SOURCE_ANNOTATION as SOURCE_ANNOTATION,
)
from nb2pipe.notebook.tags import TagProblem, parse_tag
from nb2pipe.store.registry import TRACKING_ENV
from tests.support.crd_schema import validate_resource
from tests.support.fake_kserve import offline_model as resolve_offline, point_kubeconfig_at, status_body, use_kubeconfig
from tests.support.lifecycle_notebooks import lifecycle_notebook
from tests.support.loopback import LoopbackServer, Recorded
from tests.support.nbtools import codes, diagnostics_of, plan_of
from tests.support.registered import RegisteredModel

MODEL = ServedModel("models:/cancer/1", "sklearn", "s3://models/cancer/1", "1")
CONFIG_PATH = "/api/v1/namespaces/{namespace}/configmaps/inferenceservice-config"

# --- sources: the tag, the notebook's metadata, the flag -----------------------------------


@pytest.mark.parametrize("mode", ["knative", "standard"])
def test_the_mode_tag_parses(mode: str) -> None:
    tag = parse_tag(f"mode:{mode}")
    assert not isinstance(tag, TagProblem)
    assert (tag.kind, tag.args) == ("mode", (mode,))


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("mode:Knative", "mode:knative"),
        ("mode:Standard", "mode:standard"),
        ("mode:serverless", "mode:knative"),
        ("mode:RawDeployment", "mode:standard"),
        ("mode:standrad", "mode:standard"),
    ],
)
def test_a_bad_mode_tag_suggests_the_mode_meant(text: str, suggestion: str) -> None:
    problem = parse_tag(text)
    assert isinstance(problem, TagProblem) and problem.is_error
    assert f"did you mean {suggestion!r}?" in problem.message
    assert problem.hint == "write it as 'mode:knative|standard'"


def test_a_mode_tag_far_from_any_mode_lists_them() -> None:
    problem = parse_tag("mode:modelmesh")
    assert isinstance(problem, TagProblem)
    assert "expected knative or standard" in problem.message and "did you mean" not in problem.message
    assert isinstance(parse_tag("mode:"), TagProblem)
    assert isinstance(parse_tag("mode"), TagProblem)


def test_the_mode_tag_on_the_deploy_cell_reaches_the_plan() -> None:
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api", "mode:standard", "scale:cpu=70"))
    (item,) = plan_of(nb).lifecycle
    assert (item.deployment.settings.mode, item.deployment.settings.scale_metric) == ("standard", "cpu")
    (item,) = plan_of(lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api",))).lifecycle
    assert item.deployment.settings.mode is None  # left to the deploy: the cluster's default


def test_notebook_metadata_gives_the_mode_and_the_tag_wins() -> None:
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api",))
    nb.metadata["nb2pipe"] = {"deploy": {"mode": "standard"}}
    (item,) = plan_of(nb).lifecycle
    assert item.deployment.settings.mode == "standard"

    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api", "mode:knative", "replicas:0-2"))
    nb.metadata["nb2pipe"] = {"deploy": {"mode": "standard"}}
    (item,) = plan_of(nb).lifecycle
    assert item.deployment.settings.mode == "knative"


def test_a_bad_mode_in_metadata_suggests_the_mode_meant() -> None:
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api",))
    nb.metadata["nb2pipe"] = {"deploy": {"mode": "Standard"}}
    (found,) = [d for d in diagnostics_of(nb) if d.code == "invalid-metadata"]
    assert "nb2pipe.deploy.mode must be one of knative, standard" in found.message
    assert found.hint == "did you mean 'standard'?"


def test_a_mode_tag_without_deploy_is_an_error() -> None:
    found = diagnostics_of(lifecycle_notebook("register:iris", deploy_tags=("mode:standard",)))
    assert "missing-deploy" in codes(found)


def test_the_mode_flag_reaches_the_settings(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    seen: list[DeploySettings] = []

    def fake_deploy(uri: str, service: str, settings: DeploySettings, **kwargs: Any) -> Any:
        seen.append(settings)
        raise Nb2PipeError("stop here")

    monkeypatch.setattr(deploy, "deploy_model", fake_deploy)
    assert main(["deploy", "models:/m/1", "--name", "m", "--mode", "standard", "--dry-run"]) == 1
    assert [s.mode for s in seen] == ["standard"]
    assert main(["deploy", "models:/m/1", "--name", "m", "--dry-run"]) == 1
    assert seen[-1].mode is None
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["deploy", "models:/m/1", "--name", "m", "--mode", "serverless"])
    assert "invalid choice: 'serverless'" in capsys.readouterr().err


# --- what Standard mode refuses: what KEDA and spec.canary need, and cannot do ------------------

PROM = "http://prometheus.monitoring:9090"
STANDARD_REFUSALS = [
    (DeploySettings(scale_metric="rps", scale_target=50), "scale metric rps in Standard mode scales through KEDA"),
    (
        DeploySettings(scale_metric="concurrency", scale_target=8),
        "scale metric concurrency in Standard mode scales through KEDA",
    ),
    (
        DeploySettings(min_replicas=0, max_replicas=3, prometheus_url=PROM),
        "minimum replicas 0 in Standard mode: no pod reports the request metric",
    ),
    (DeploySettings(canary_percent=20), "canary 20% in Standard mode for an unknown KServe version"),
    (DeploySettings(canary_percent=20, kserve_version="0.19"), "canary 20% in Standard mode for KServe 0.19"),
    (
        DeploySettings(canary_percent=20, kserve_version="0.20", min_replicas=0, scale_query="q", prometheus_url=PROM),
        "canary 20% with minimum replicas 0 in Standard mode",
    ),
]


@pytest.mark.parametrize(("settings", "expected"), STANDARD_REFUSALS)
def test_standard_mode_refuses_what_it_cannot_do_and_says_what_to_do(settings: DeploySettings, expected: str) -> None:
    (problem,) = deploy_problems(replace(settings, mode="standard"))
    assert expected in problem
    assert "mode:knative" in problem
    assert deploy_problems(replace(settings, mode="knative", scale_query=None)) == []
    with pytest.raises(Nb2PipeError, match=expected):
        check_request("cancer", replace(settings, mode="standard"))


def test_the_refusals_say_what_to_give() -> None:
    (problem,) = deploy_problems(DeploySettings(mode="standard", scale_metric="rps", scale_target=50))
    assert "--prometheus-url" in problem and "metadata nb2pipe.deploy.prometheus_url" in problem
    (problem,) = deploy_problems(DeploySettings(mode="standard", canary_percent=10))
    assert "canaries in Standard mode need KServe 0.20 (spec.canary): give --kserve-version 0.20 if your cluster " in (
        problem
    )
    (problem,) = deploy_problems(DeploySettings(mode="standard", min_replicas=0, max_replicas=2, prometheus_url=PROM))
    assert "--scale-query" in problem and "exists at zero replicas" in problem and "no activator" in problem
    settings = DeploySettings(mode="standard", min_replicas=0, max_replicas=2, scale_metric="rps", canary_percent=5)
    assert len(deploy_problems(settings)) == 3  # every refusal at once: Prometheus, scale to zero, canary


@pytest.mark.parametrize(
    "settings",
    [
        DeploySettings(scale_metric="rps", scale_target=700, prometheus_url=PROM),
        DeploySettings(scale_metric="concurrency", prometheus_url=PROM, max_replicas=4),
        DeploySettings(min_replicas=0, max_replicas=3, prometheus_url=PROM, scale_query="sum(rate(x[1m]))"),
        DeploySettings(canary_percent=20, kserve_version="0.20"),
        DeploySettings(canary_percent=20, kserve_version="v0.21.1", scale_metric="cpu", scale_target=60),
        DeploySettings(scale_metric="cpu", scale_target=60, prometheus_url=PROM),  # the URL is simply not needed
    ],
)
def test_standard_mode_accepts_what_keda_and_spec_canary_do(settings: DeploySettings) -> None:
    assert deploy_problems(replace(settings, mode="standard")) == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (DeploySettings(mode="standard", scale_metric="cpu", scale_query="q"), "a scale query is read only by KEDA"),
        (DeploySettings(mode="knative", scale_query="q"), "a scale query has no effect in Knative mode"),
        (
            DeploySettings(mode="standard", scale_metric="rps", prometheus_url=PROM, runtime="mlserver"),
            "MLServer does not export the request_predict_seconds metric",
        ),
    ],
)
def test_a_setting_that_would_be_ignored_is_refused(settings: DeploySettings, expected: str) -> None:
    (problem,) = deploy_problems(settings)
    assert expected in problem


def test_knative_mode_refuses_memory_scaling_whose_target_would_mean_mib() -> None:
    (problem,) = deploy_problems(DeploySettings(mode="knative", scale_metric="memory", scale_target=80))
    assert "reads the target as MiB per replica" in problem
    assert problem.endswith("use mode:standard (memory in % of the request), or scale:cpu")
    assert deploy_problems(DeploySettings(mode="standard", scale_metric="memory", scale_target=80)) == []


def test_a_standard_refusal_is_a_compile_error_at_the_deploy_cell() -> None:
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api", "mode:standard", "scale:rps=50"))
    (found,) = [d for d in diagnostics_of(nb) if d.code == "bad-tag"]
    assert found.message.startswith("deploy:iris-api: scale metric rps in Standard mode scales through KEDA")
    assert found.location.cell == 2  # the deploy: cell (0-based)


def test_a_standard_mode_from_metadata_refuses_a_canary_tag() -> None:
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api", "canary:10"))
    nb.metadata["nb2pipe"] = {"deploy": {"mode": "standard"}}
    (found,) = [d for d in diagnostics_of(nb) if d.code == "bad-tag"]
    assert "canary 10% in Standard mode for an unknown KServe version" in found.message
    assert found.location.cell == 2


# --- the builder: what each mode needs ----------------------------------------------------


def built(settings: DeploySettings, mode: ResolvedMode | None = None) -> dict[str, Any]:
    resource = inference_service("cancer", MODEL, settings, mode=mode)
    validate_resource(resource)
    assert kserve_rules.admission_problems(resource) == []
    return resource


@pytest.mark.parametrize(
    "settings",
    [
        DeploySettings(),
        DeploySettings(min_replicas=0, max_replicas=4, scale_metric="concurrency", scale_target=8, canary_percent=20),
        DeploySettings(min_replicas=1, max_replicas=3, scale_metric="rps", scale_target=40),
        DeploySettings(scale_metric="cpu", scale_target=70),
        DeploySettings(scale_metric="cpu", scale_target=50, min_replicas=2, max_replicas=5),
    ],
)
def test_knative_services_carry_the_mode_and_pass_the_crd_and_kserves_rules(settings: DeploySettings) -> None:
    annotations = built(replace(settings, mode="knative"))["metadata"]["annotations"]
    assert annotations[MODE_ANNOTATION] == "Knative"
    assert annotations[SOURCE_ANNOTATION] == GIVEN
    assert AUTOSCALER_CLASS_ANNOTATION not in annotations
    hpa_class = settings.scale_metric in ("cpu", "memory")
    assert (annotations.get(KNATIVE_CLASS_ANNOTATION) == KNATIVE_HPA_CLASS) == hpa_class


@pytest.mark.parametrize(
    ("settings", "replicas"),
    [
        (DeploySettings(), (None, 1)),
        (DeploySettings(min_replicas=2), (2, 2)),
        (DeploySettings(min_replicas=1, max_replicas=6, scale_metric="cpu", scale_target=75), (1, 6)),
        (DeploySettings(max_replicas=4, scale_metric="memory", scale_target=80), (None, 4)),
    ],
)
def test_standard_services_get_the_hpa_class_and_a_maximum(settings: DeploySettings, replicas: tuple) -> None:
    resource = built(replace(settings, mode="standard"))
    annotations = resource["metadata"]["annotations"]
    assert annotations[MODE_ANNOTATION] == "Standard"
    assert annotations[AUTOSCALER_CLASS_ANNOTATION] == "hpa"
    assert KNATIVE_CLASS_ANNOTATION not in annotations
    predictor = resource["spec"]["predictor"]
    assert (predictor.get("minReplicas"), predictor["maxReplicas"]) == replicas


def test_a_resolved_mode_is_written_with_its_source() -> None:
    resource = built(DeploySettings(), ResolvedMode("standard", CLUSTER_DEFAULT))
    annotations = resource["metadata"]["annotations"]
    assert (annotations[MODE_ANNOTATION], annotations[SOURCE_ANNOTATION]) == ("Standard", CLUSTER_DEFAULT)
    unresolved = built(DeploySettings())["metadata"]["annotations"]
    assert (unresolved[MODE_ANNOTATION], unresolved[SOURCE_ANNOTATION]) == ("Knative", NOT_CONSULTED)


# --- the cluster's default, read from a loopback Kubernetes API server ---------------------

TOKEN = "mode-test-token"


def config_map(mode: str | None, *, raw: str | None = None) -> dict[str, Any]:
    data = {"ingress": "{}"}
    if raw is not None:
        data["deploy"] = raw
    elif mode is not None:
        data["deploy"] = json.dumps({"defaultDeploymentMode": mode})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inferenceservice-config"}, "data": data}


class FakeConfigMaps:
    """``inferenceservice-config`` in the namespaces given; 404 elsewhere, or ``refuse`` for every read."""

    def __init__(self, by_namespace: dict[str, dict[str, Any]], refuse: tuple[int, str] | None = None) -> None:
        self.by_namespace = by_namespace
        self.refuse = refuse
        self.delay = 0.0

    def __call__(self, request: Recorded) -> tuple[int, Any]:
        time.sleep(self.delay)
        if self.refuse:
            code, message = self.refuse
            return code, status_body(code, message)
        for namespace, body in self.by_namespace.items():
            if request.method == "GET" and request.path == CONFIG_PATH.format(namespace=namespace):
                return 200, body
        return 404, status_body(404, 'configmaps "inferenceservice-config" not found')


@pytest.fixture
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No kubeconfig anywhere (and not in a pod)."""
    use_kubeconfig(monkeypatch, tmp_path / "missing" / "config")
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def point_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def write(server_url: str) -> None:
        point_kubeconfig_at(monkeypatch, tmp_path / "kubeconfig.yaml", server_url, TOKEN)

    return write


@pytest.fixture
def cluster(point_at: Callable[[str], None]) -> Iterator[Callable[..., LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(maps: dict[str, dict[str, Any]], refuse: tuple[int, str] | None = None) -> LoopbackServer:
        server = LoopbackServer(FakeConfigMaps(maps, refuse)).__enter__()
        servers.append(server)
        point_at(server.url)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("named", "mode"),
    [("Serverless", "knative"), ("Knative", "knative"), ("RawDeployment", "standard"), ("Standard", "standard")],
)
def test_the_cluster_default_is_read_from_inferenceservice_config(cluster, named: str, mode: str) -> None:
    server = cluster({"kserve": config_map(named)})
    assert cluster_default() == ResolvedMode(mode, CLUSTER_DEFAULT)
    (request,) = server.requests
    assert (request.method, request.path) == ("GET", CONFIG_PATH.format(namespace="kserve"))
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("ingress", "gateway_api"),
    [('{"enableGatewayApi": true}', True), ('{"enableGatewayApi": false}', False), ("{}", False), ("not json", None)],
)
def test_the_ingress_setting_canary_weights_need_is_read_with_the_mode(cluster, ingress: str, gateway_api) -> None:
    body = config_map("Standard")
    body["data"]["ingress"] = ingress
    cluster({"kserve": body})
    resolved = cluster_default()
    assert (resolved.mode, resolved.gateway_api) == ("standard", gateway_api)
    assert resolve_mode("standard").gateway_api is None  # a given mode reads nothing


def test_kubeflows_kserve_namespace_is_read_next(cluster) -> None:
    server = cluster({"kubeflow": config_map("RawDeployment")})
    assert cluster_default() == ResolvedMode("standard", CLUSTER_DEFAULT)
    namespaces = [r.path.split("/")[4] for r in server.requests]
    assert namespaces == ["kserve", "kubeflow"]


def test_a_given_mode_asks_no_cluster(cluster) -> None:
    server = cluster({"kserve": config_map("Standard")})
    assert resolve_mode("knative") == ResolvedMode("knative", GIVEN) and server.requests == []
    assert resolve_mode(None).mode == "standard"


@pytest.mark.parametrize(
    ("body", "source", "detail"),
    [
        (config_map(None), NO_DEFAULT, "has no deploy key"),
        (config_map(None, raw="{not json"), NO_DEFAULT, "is not a JSON object"),
        (config_map("ModelMesh"), NO_DEFAULT, "names 'ModelMesh', not one of Knative, Standard"),
        (config_map(None, raw="{}"), NO_DEFAULT, "names None"),
    ],
)
def test_a_config_without_a_usable_default_means_knative_assumed(cluster, body, source: str, detail: str) -> None:
    cluster({"kserve": body})
    resolved = cluster_default()
    assert (resolved.mode, resolved.source, resolved.assumed) == ("knative", source, True)
    assert detail in resolved.detail


def test_a_missing_or_forbidden_config_means_knative_assumed(cluster) -> None:
    cluster({})
    missing = cluster_default()
    assert (missing.mode, missing.source) == ("knative", UNREADABLE)
    assert "no inferenceservice-config in namespace kserve or kubeflow" in missing.detail

    cluster({}, refuse=(403, 'configmaps "inferenceservice-config" is forbidden'))
    forbidden = cluster_default()
    assert (forbidden.source, forbidden.detail) == (UNREADABLE, "kserve/inferenceservice-config: 403 Forbidden")


def test_an_unreachable_api_server_means_knative_assumed(point_at) -> None:
    with LoopbackServer(FakeConfigMaps({})) as server:
        url = server.url  # nothing listens there once closed
    point_at(url)
    resolved = cluster_default()
    assert (resolved.mode, resolved.source) == ("knative", NO_CLUSTER)
    assert "does not answer" in resolved.detail


def test_a_silent_api_server_does_not_hang_the_deploy(cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    server = cluster({"kserve": config_map("Standard")})
    server.respond.delay = 2.0
    monkeypatch.setattr(deploy_mode, "TIMEOUT", (0.3, 0.3))
    started = time.monotonic()
    resolved = cluster_default()
    assert time.monotonic() - started < 1.5  # one short try, no retries
    assert (resolved.mode, resolved.source) == ("knative", NO_CLUSTER)


def test_without_a_kubeconfig_knative_is_assumed(no_cluster) -> None:
    resolved = resolve_mode(None)
    assert (resolved.mode, resolved.source) == ("knative", NO_CLUSTER)
    assert resolved.detail.startswith("no Kubernetes configuration")
    assert resolved.warning().startswith("deployment mode Knative assumed: no cluster reachable (")
    assert "mode:knative or mode:standard" in resolved.warning()


# --- render: resolve, check, build, admit, describe ---------------------------------------


@pytest.fixture
def offline_model(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> None:
    """render() without MLflow: every model resolves to a registered sklearn model on S3."""
    resolve_offline(monkeypatch, model_folder)


def test_render_uses_the_cluster_default_and_says_so(cluster, offline_model) -> None:
    cluster({"kserve": config_map("RawDeployment")})
    rendered = render("models:/cancer/1", "cancer", DeploySettings(scale_metric="cpu", scale_target=70))
    assert rendered.mode == ResolvedMode("standard", CLUSTER_DEFAULT)
    annotations = rendered.resource["metadata"]["annotations"]
    assert (annotations[MODE_ANNOTATION], annotations[SOURCE_ANNOTATION]) == ("Standard", CLUSTER_DEFAULT)
    assert rendered.warnings == ()
    assert rendered.behaviour == tuple(kserve_behaviour.effective_behaviour(rendered.resource))
    assert rendered.behaviour and any("Standard" in line for line in rendered.behaviour)
    validate_resource(yaml.safe_load(rendered.yaml))


def test_render_refuses_what_the_clusters_standard_default_cannot_do(cluster, offline_model) -> None:
    cluster({"kserve": config_map("Standard")})
    with pytest.raises(Nb2PipeError) as caught:
        render("models:/cancer/1", "cancer", DeploySettings(scale_metric="rps", scale_target=50, canary_percent=10))
    message = str(caught.value)
    assert message.startswith("deployment mode Standard (the cluster's default (inferenceservice-config)): ")
    assert "scale metric rps in Standard mode scales through KEDA" in message
    assert "canary 10% in Standard mode" in message
    # the same settings in the mode given
    rendered = render(
        "models:/cancer/1",
        "cancer",
        DeploySettings(scale_metric="rps", scale_target=50, canary_percent=10, mode="knative"),
    )
    assert rendered.resource["metadata"]["annotations"][MODE_ANNOTATION] == "Knative"


def test_render_without_a_cluster_assumes_knative_with_a_warning(no_cluster, offline_model) -> None:
    rendered = render("models:/cancer/1", "cancer", DeploySettings())
    assert rendered.mode is not None and rendered.mode.source == NO_CLUSTER
    assert rendered.warnings[0] == rendered.mode.warning()
    assert rendered.resource["metadata"]["annotations"][SOURCE_ANNOTATION] == NO_CLUSTER


def test_render_refuses_what_kserves_rules_refuse(offline_model, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kserve_rules, "admission_problems", lambda resource: ["first reason", "second reason"])
    with pytest.raises(Nb2PipeError) as caught:
        render("models:/cancer/1", "cancer", DeploySettings(mode="knative"))
    assert str(caught.value) == "KServe would not serve InferenceService cancer as asked: first reason; second reason"


def test_dry_run_prints_the_mode_and_the_behaviour(cluster, offline_model, capsys, tmp_path: Path) -> None:
    cluster({"kserve": config_map("Serverless")})
    argv = ["deploy", "models:/cancer/1", "--name", "cancer", "--scale-metric", "concurrency", "--scale-target", "8"]
    assert main([*argv, "--dry-run"]) == 0
    captured = capsys.readouterr()
    resource = yaml.safe_load(captured.out)  # stdout stays the YAML
    assert resource["metadata"]["annotations"][MODE_ANNOTATION] == "Knative"
    err = captured.err.splitlines()
    assert err[0] == "nb2pipe: deployment mode Knative (the cluster's default (inferenceservice-config))"
    assert err[1].startswith("nb2pipe: runtime kserve-sklearnserver (sklearn/1, v1): ")
    assert err[2] == "nb2pipe: what KServe will do:"
    assert [line.strip() for line in err[3:]] == kserve_behaviour.effective_behaviour(resource)

    assert main([*argv, "--mode", "knative", "--dry-run", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["mode"] == {"mode": "knative", "annotation": "Knative", "source": GIVEN, "assumed": False}
    assert outcome["behaviour"] == kserve_behaviour.effective_behaviour(outcome["resource"])
    assert outcome["runtime"] == err[1].removeprefix("nb2pipe: ")
    assert outcome["warnings"] == []


def test_dry_run_without_a_cluster_warns_of_the_assumption(no_cluster, offline_model, capsys, tmp_path) -> None:
    out = tmp_path / "cancer.yaml"
    assert main(["deploy", "models:/cancer/1", "--name", "cancer", "--dry-run", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote {out}"
    warnings = [line for line in captured.err.splitlines() if line.startswith("nb2pipe: warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"nb2pipe: warning: deployment mode Knative {NO_CLUSTER} (no Kubernetes configuration"
    )
    assert "--mode" in warnings[0]
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["metadata"]["annotations"][SOURCE_ANNOTATION] == NO_CLUSTER


def test_cli_refuses_a_standard_combination_before_resolving_the_model(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["deploy", "models:/nope/1", "--name", "cancer", "--mode", "standard", "--min-replicas", "0"]
    assert main([*argv, "--max-replicas", "2", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nb2pipe: minimum replicas 0 in Standard mode scales through KEDA")
    assert not (tmp_path / ".nb2pipe").exists()


@pytest.mark.slow
def test_a_registered_model_deploys_in_standard_mode(
    registered_model: RegisteredModel, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(TRACKING_ENV, registered_model.tracking_uri)
    argv = ["deploy", registered_model.model_uri, "--name", "cancer", "--mode", "standard", "--min-replicas", "2"]
    assert main([*argv, "--scale-metric", "cpu", "--scale-target", "60", "--dry-run", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    resource = outcome["resource"]
    validate_resource(resource)
    assert resource["metadata"]["annotations"][AUTOSCALER_CLASS_ANNOTATION] == "hpa"
    assert resource["spec"]["predictor"]["maxReplicas"] == 2
    assert outcome["mode"]["source"] == GIVEN
    assert outcome["behaviour"] == kserve_behaviour.effective_behaviour(resource)
