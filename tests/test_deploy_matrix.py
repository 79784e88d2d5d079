"""Every scaling setting in both deployment modes: Knative mode x Standard mode x each scale
metric (none, cpu, memory, rps, concurrency) x canary (none, 20 %) x scale to zero (min 0, 1) x
what the cluster offers (Prometheus for KEDA, the KServe version for spec.canary, a scale query
for scale to zero). Each combination is either refused with a message that says what to do, or
rendered to an InferenceService that is valid against KServe's CRD, passes KServe's webhook and
reconciler rules, and says what KServe will do in the expected behaviour lines. Then the
requests a deployment sends to a loopback Kubernetes API server: a KEDA service, a Standard-mode
canary over the running version and its promotion, and the switch between HPA and KEDA."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.cli import main
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle import kserve_behaviour
from nb2pipe.lifecycle.deploy import deploy_model, render
from nb2pipe.lifecycle.kserve_rules import AUTOSCALER_CLASS_ANNOTATION, admission_problems
from nb2pipe.lifecycle.standard_scaling import KSERVE_SCRAPING_ANNOTATION, SCRAPE_ANNOTATION, request_query
from tests.support.crd_schema import validate_resource
from tests.support.fake_kserve import offline_model, point_kubeconfig_at
from tests.support.loopback import LoopbackServer

PROM = "http://prometheus.monitoring:9090"
INGRESS_QUERY = 'sum(rate(nginx_ingress_controller_requests{service="cancer-predictor"}[1m]))'
TARGETS = {None: None, "cpu": 70, "memory": 70, "rps": 700, "concurrency": 8}
KNATIVE_SCALING = {
    None: "KServe default: scale on concurrency 100 per replica via the Knative Pod Autoscaler",
    "cpu": "scale on cpu 70% via Knative's HPA class",
    "rps": "scale on rps 700 per replica via the Knative Pod Autoscaler",
    "concurrency": "scale on concurrency 8 per replica via the Knative Pod Autoscaler",
}
HPA_SCALING = {
    None: "KServe default: scale on cpu 80% via the HPA",
    "cpu": "scale on cpu 70% via the HPA",
    "memory": "scale on memory 70% of the request via the HPA",
}
#: what the cluster offers: Prometheus (KEDA), the KServe version (spec.canary), an ingress metric
CLUSTERS = {
    "bare": {},
    "prometheus": {"prometheus_url": PROM},
    "prometheus-kserve-0.19": {"prometheus_url": PROM, "kserve_version": "0.19"},
    "prometheus-kserve-0.20": {"prometheus_url": PROM, "kserve_version": "0.20"},
    "ingress-query-kserve-0.20": {"prometheus_url": PROM, "kserve_version": "0.20", "scale_query": INGRESS_QUERY},
}


@dataclass(frozen=True)
class Case:
    mode: str
    metric: str | None
    canary: int | None
    min_replicas: int
    cluster: str

    @property
    def settings(self) -> DeploySettings:
        return DeploySettings(
            mode=self.mode,  # type: ignore[arg-type]
            scale_metric=self.metric,  # type: ignore[arg-type]
            scale_target=TARGETS[self.metric],
            canary_percent=self.canary,
            min_replicas=self.min_replicas,
            max_replicas=4,
            **CLUSTERS[self.cluster],
        )

    def refusals(self) -> list[str]:
        """What each refusal must say (the cause and what to do), worked out apart from nb2pipe's code."""
        settings, found = self.settings, []
        if self.min_replicas == 0 and self.metric in ("cpu", "memory"):
            found.append("scaling to zero works with the concurrency or rps metric")
        if self.mode == "knative":
            if self.metric == "memory":
                found.append("use mode:standard (memory in % of the request), or scale:cpu")
            if settings.scale_query:
                found.append("a scale query has no effect in Knative mode")
            return found
        keda = self.metric in ("rps", "concurrency") or self.min_replicas == 0
        if keda and settings.prometheus_url is None:
            found.append("give the Prometheus URL with --prometheus-url or metadata nb2pipe.deploy.prometheus_url")
        if self.min_replicas == 0 and settings.scale_query is None:
            found.append("use mode:knative to scale to zero, keep at least 1 replica, or give --scale-query")
        if settings.scale_query and not keda:
            found.append("a scale query is read only by KEDA")
        if self.canary is not None and settings.kserve_version != "0.20":
            found.append("canaries in Standard mode need KServe 0.20 (spec.canary): give --kserve-version 0.20")
        elif self.canary is not None and self.min_replicas == 0:
            found.append("keep at least 1 replica, or use mode:knative")
        return found

    def scaling_line(self) -> str:
        if self.mode == "knative":
            return KNATIVE_SCALING[self.metric]
        if self.metric in ("rps", "concurrency") or self.min_replicas == 0:
            metric = self.metric or "concurrency"
            target = TARGETS[self.metric] or 100  # Knative's default concurrency target
            query = self.settings.scale_query
            what = f"the query's value {target}" if query else f"{metric} {target}"
            query = query or request_query("cancer", metric, "default")  # no kubeconfig: namespace default
            return f"scale via KEDA on {what} per replica (Prometheus {PROM}, query {query})"
        return HPA_SCALING[self.metric]

    def replicas_line(self) -> str:
        if self.min_replicas == 1:
            return "replicas 1-4"
        if self.mode == "knative":
            return "replicas 0-4, scale to zero allowed"
        return (
            "replicas 0-4, scale to zero via KEDA: "
            + "requests fail while no replica runs (no activator in Standard mode)"
        )

    def canary_line(self) -> str:
        if self.canary is None:
            return "no canary: each rollout takes all traffic once ready"
        if self.mode == "knative":
            return (
                "canary 20% of traffic to the new revision, 80% to the previous one "
                "(from the second rollout on; the first takes all)"
            )
        return "canary 20% to canary-v1: not written, the running service could not be read ("


CASES = [
    Case(*combination)
    for combination in itertools.product(("knative", "standard"), TARGETS, (None, 20), (0, 1), CLUSTERS)
]


def _case_id(case: Case) -> str:
    return f"{case.mode}-{case.metric or 'default'}-canary{case.canary or 0}-min{case.min_replicas}-{case.cluster}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_every_combination_is_refused_with_advice_or_rendered_as_kserve_runs_it(case: Case, offline) -> None:
    expected = case.refusals()
    if expected:
        with pytest.raises(Nb2PipeError) as caught:
            render("models:/cancer/1", "cancer", case.settings)
        for advice in expected:
            assert advice in str(caught.value)
        return
    rendered = render("models:/cancer/1", "cancer", case.settings)
    validate_resource(rendered.resource)
    assert admission_problems(rendered.resource) == []
    behaviour = rendered.behaviour
    assert behaviour[0] == "mode " + ("Knative" if case.mode == "knative" else "Standard") + (
        " (annotation serving.kserve.io/deploymentMode; given)"
    )
    assert behaviour[1:3] == (case.scaling_line(), case.replicas_line())
    assert behaviour[3].startswith(case.canary_line())
    predictor = rendered.resource["spec"]["predictor"]
    assert "canary" not in rendered.resource["spec"]  # no running service could be read
    if case.mode == "standard":
        assert "canaryTrafficPercent" not in predictor  # Standard mode ignores it: never written there
    keda = rendered.resource["metadata"]["annotations"].get(AUTOSCALER_CLASS_ANNOTATION) == "keda"
    assert keda == ("autoScaling" in predictor)
    assert not (keda and ("scaleMetric" in predictor or "scaleTarget" in predictor))  # refused with KEDA


def test_the_matrix_covers_both_outcomes_in_both_modes() -> None:
    outcomes = {(case.mode, bool(case.refusals())) for case in CASES}
    assert outcomes == {("knative", True), ("knative", False), ("standard", True), ("standard", False)}
    rendered_standard = {case.metric for case in CASES if case.mode == "standard" and not case.refusals()}
    assert rendered_standard == set(TARGETS)  # every metric deploys in Standard mode with what it needs


def test_a_keda_service_scrapes_the_servers_port_and_keeps_kserves_switch_off(offline) -> None:
    settings = DeploySettings(mode="standard", scale_metric="concurrency", scale_target=8, prometheus_url=PROM)
    resource = render("models:/cancer/1", "cancer", settings).resource
    annotations = resource["metadata"]["annotations"]
    assert annotations[SCRAPE_ANNOTATION] == "true"
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("8080", "/metrics")
    assert annotations[KSERVE_SCRAPING_ANNOTATION] == "false"  # else KServe points the port at 9091
    (metric,) = resource["spec"]["predictor"]["autoScaling"]["metrics"]
    assert metric == {
        "type": "External",
        "external": {
            "metric": {
                "backend": "prometheus",
                "serverAddress": PROM,
                "query": 'sum(rate(request_predict_seconds_sum{namespace="default",model_name="cancer"}[1m]))',
            },
            "target": {"type": "Value", "value": "8"},
        },
    }


def test_with_keda_the_explainer_keeps_the_hpa(offline) -> None:
    settings = DeploySettings(mode="standard", scale_metric="rps", prometheus_url=PROM, explainer="anchor")
    rendered = render("models:/cancer/1", "cancer", settings)
    validate_resource(rendered.resource)
    # the class is the service's for every component: KEDA would get the explainer without a trigger
    assert rendered.resource["spec"]["explainer"]["annotations"] == {AUTOSCALER_CLASS_ANNOTATION: "hpa"}
    assert rendered.behaviour[1].startswith("scale via KEDA on rps 200 per replica")  # Knative's default target


def test_the_cli_flags_reach_keda_and_the_dry_run_says_what_kserve_does(offline, capsys) -> None:
    argv = ["deploy", "models:/cancer/1", "--name", "cancer", "--mode", "standard", "--min-replicas", "0"]
    argv += ["--max-replicas", "5", "--prometheus-url", PROM, "--scale-query", INGRESS_QUERY, "--dry-run", "--json"]
    assert main(argv) == 0
    outcome = json.loads(capsys.readouterr().out)
    (metric,) = outcome["resource"]["spec"]["predictor"]["autoScaling"]["metrics"]
    assert metric["external"]["metric"]["query"] == INGRESS_QUERY
    assert outcome["behaviour"][1:3] == [
        f"scale via KEDA on the query's value 100 per replica (Prometheus {PROM}, query {INGRESS_QUERY})",
        "replicas 0-5, scale to zero via KEDA: requests fail while no replica runs (no activator in Standard mode)",
    ]

    assert main([*argv[:-2], "--canary", "20", "--dry-run"]) == 1  # no --kserve-version
    assert "give --kserve-version 0.20 if your cluster runs it, or use mode:knative" in capsys.readouterr().err


def keda_query(resource: dict[str, Any]) -> str:
    (metric,) = resource["spec"]["predictor"]["autoScaling"]["metrics"]
    return str(metric["external"]["metric"]["query"])


def test_same_named_services_in_two_namespaces_scale_on_their_own_traffic(offline) -> None:
    settings = DeploySettings(mode="standard", scale_metric="rps", scale_target=700, prometheus_url=PROM)
    queries = {}
    for namespace in ("staging", "prod"):
        rendered = render("models:/cancer/1", "cancer", replace(settings, namespace=namespace))
        validate_resource(rendered.resource)
        assert admission_problems(rendered.resource) == []
        assert rendered.resource["metadata"]["namespace"] == namespace
        queries[namespace] = keda_query(rendered.resource)
        assert rendered.behaviour[1] == (
            f"scale via KEDA on rps 700 per replica (Prometheus {PROM}, query {queries[namespace]})"
        )
    assert queries["prod"] == 'sum(rate(request_predict_seconds_count{namespace="prod",model_name="cancer"}[1m]))'
    assert queries["staging"] == queries["prod"].replace('namespace="prod"', 'namespace="staging"')


def test_without_a_namespace_the_query_and_the_resource_name_the_one_applying_picks(offline) -> None:
    settings = DeploySettings(mode="standard", scale_metric="concurrency", prometheus_url=PROM)
    resource = render("models:/cancer/1", "cancer", settings).resource
    assert resource["metadata"]["namespace"] == "default"  # no kubeconfig: what apply_inference_service takes
    assert 'namespace="default",model_name="cancer"' in keda_query(resource)
    # an HPA service has no query: its namespace stays the applier's choice, as before
    hpa = render("models:/cancer/1", "cancer", DeploySettings(mode="standard", scale_metric="cpu")).resource
    assert "namespace" not in hpa["metadata"]


@pytest.mark.parametrize(
    ("flags", "selector"),
    [
        ([], 'namespace="prod",model_name="cancer"'),
        (["--prometheus-namespace-label", "kubernetes_namespace"], 'kubernetes_namespace="prod",model_name="cancer"'),
        (["--prometheus-namespace-label", ""], 'model_name="cancer"'),
    ],
)
def test_the_namespace_label_flag_names_the_label_and_empty_drops_the_filter(
    offline, capsys, flags: list[str], selector: str
) -> None:
    argv = ["deploy", "models:/cancer/1", "--name", "cancer", "--mode", "standard", "--scale-metric", "concurrency"]
    argv += ["--prometheus-url", PROM, "--namespace", "prod", "--dry-run", "--json", *flags]
    assert main(argv) == 0
    outcome = json.loads(capsys.readouterr().out)
    validate_resource(outcome["resource"])
    assert keda_query(outcome["resource"]) == f"sum(rate(request_predict_seconds_sum{{{selector}}}[1m]))"
    assert outcome["behaviour"][1].startswith("scale via KEDA on concurrency 100 per replica")


def test_a_namespace_label_that_is_no_label_name_is_refused(offline, capsys) -> None:
    argv = ["deploy", "models:/cancer/1", "--name", "cancer", "--mode", "standard", "--scale-metric", "rps"]
    argv += ["--prometheus-url", PROM, "--prometheus-namespace-label", "kubernetes-namespace", "--dry-run"]
    assert main(argv) == 1
    assert "Prometheus namespace label 'kubernetes-namespace' is not a label name" in capsys.readouterr().err


# --- the requests sent to a loopback Kubernetes API server ------------------------------------

TOKEN = "matrix-token"
ITEM = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/cancer"
COLLECTION = ITEM.rsplit("/", 1)[0]
CANARY = DeploySettings(mode="standard", canary_percent=20, kserve_version="0.20", min_replicas=2, max_replicas=4)


@pytest.fixture
def cluster(
    kserve_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_folder: Path
) -> Callable[[str], LoopbackServer]:
    """The fake KServe API server in the kubeconfig; call it with the model version render resolves."""
    point_kubeconfig_at(monkeypatch, tmp_path / "kubeconfig.yaml", kserve_server.url, TOKEN)

    def serving(version: str) -> LoopbackServer:
        offline_model(monkeypatch, model_folder, version)
        return kserve_server

    return serving


def deployed(settings: DeploySettings) -> Any:
    return deploy_model("models:/cancer/latest", "cancer", settings, wait_seconds=5)


def stored(server: LoopbackServer) -> dict[str, Any]:
    resource = server.fake.service("models", "cancer")
    validate_resource(resource)
    assert admission_problems(resource) == []
    return resource


def test_a_keda_deployment_creates_the_service_with_its_trigger(cluster) -> None:
    server = cluster("1")
    settings = DeploySettings(mode="standard", scale_metric="rps", scale_target=700, prometheus_url=PROM)
    deployment = deployed(replace(settings, min_replicas=1, max_replicas=6))

    assert (deployment.applied.action, deployment.applied.ready) == ("created", True)
    calls = [(request.method, request.path) for request in server.requests]
    assert calls == [("GET", ITEM), ("GET", ITEM), ("POST", COLLECTION), ("GET", ITEM)]  # render reads, apply reads
    (post,) = [request for request in server.requests if request.method == "POST"]
    sent = post.json()
    assert sent["metadata"]["annotations"][AUTOSCALER_CLASS_ANNOTATION] == "keda"
    assert sent["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]["target"]["value"] == "700"
    # the kubeconfig context's namespace, where the service was created, is the one KEDA's query selects
    assert sent["metadata"]["namespace"] == "models"
    assert keda_query(sent) == 'sum(rate(request_predict_seconds_count{namespace="models",model_name="cancer"}[1m]))'
    assert stored(server)["spec"] == sent["spec"]
    assert deployment.behaviour[1].startswith("scale via KEDA on rps 700 per replica")


def test_a_standard_canary_keeps_the_running_version_stable_and_promotes_on_100(cluster) -> None:
    server = cluster("1")
    first = deployed(CANARY)
    assert first.applied.action == "created"
    assert "spec.canary" not in first.yaml and "canary" not in first.resource["spec"]
    assert any("takes all traffic (it does not run yet)" in warning for warning in first.warnings)

    server = cluster("2")
    second = deployed(CANARY)
    patch = [request for request in server.requests if request.method == "PATCH"][-1].json()
    assert patch["spec"]["predictor"]["model"]["storageUri"] == "s3://models/cancer/1"  # stable: what runs
    (canary,) = patch["spec"]["canary"]
    assert canary["predictor"]["name"] == "canary-v2"
    assert canary["predictor"]["model"]["storageUri"] == "s3://models/cancer/2"
    assert canary["trafficPercent"] == 20
    running = stored(server)
    assert running["spec"]["canary"] == patch["spec"]["canary"]
    assert second.behaviour[3] == (
        "canary 20% to canary-v2 (1 fixed replica), the stable predictor (s3://models/cancer/1) keeps 80%; "
        "weights apply only with the Gateway API (inferenceservice-config ingress.enableGatewayApi)"
    )
    assert any("canary 20% to canary-v2 (s3://models/cancer/2)" in warning for warning in second.warnings)

    # the same version with canary:100: KServe's promotion, the canary's Deployment becomes the stable one
    promoted = deployed(replace(CANARY, canary_percent=100))
    patch = [request for request in server.requests if request.method == "PATCH"][-1].json()
    assert patch["spec"]["canary"] is None
    assert patch["spec"]["predictor"]["name"] == "canary-v2"
    assert patch["spec"]["predictor"]["model"]["storageUri"] == "s3://models/cancer/2"
    running = stored(server)
    assert "canary" not in running["spec"] and running["spec"]["predictor"]["name"] == "canary-v2"
    assert any("canary canary-v2 promoted" in warning for warning in promoted.warnings)


def test_a_deployment_without_canary_promotes_the_running_canary(cluster) -> None:
    server = cluster("1")
    deployed(CANARY)
    server = cluster("2")
    deployed(CANARY)
    deployment = deployed(replace(CANARY, canary_percent=None))
    running = stored(server)
    assert "canary" not in running["spec"]
    assert running["spec"]["predictor"]["name"] == "canary-v2"
    assert running["spec"]["predictor"]["model"]["storageUri"] == "s3://models/cancer/2"
    assert deployment.behaviour[3] == "no canary: each rollout takes all traffic once ready"


def test_a_new_canary_replaces_the_running_one(cluster) -> None:
    cluster("1")
    deployed(CANARY)
    cluster("2")
    deployed(CANARY)
    server = cluster("3")
    deployment = deployed(replace(CANARY, canary_percent=10))
    running = stored(server)
    (canary,) = running["spec"]["canary"]
    assert (canary["predictor"]["name"], canary["trafficPercent"]) == ("canary-v3", 10)
    assert running["spec"]["predictor"]["model"]["storageUri"] == "s3://models/cancer/1"
    assert any("the running canary canary-v2 is replaced by canary-v3" in warning for warning in deployment.warnings)


def test_hpa_to_keda_and_back_leaves_nothing_of_the_other_autoscaler(cluster) -> None:
    server = cluster("1")
    hpa = DeploySettings(mode="standard", scale_metric="cpu", scale_target=60, min_replicas=1, max_replicas=4)
    deployed(hpa)
    assert stored(server)["spec"]["predictor"]["scaleMetric"] == "cpu"

    deployed(replace(hpa, scale_metric="rps", scale_target=700, prometheus_url=PROM))
    patch = [request for request in server.requests if request.method == "PATCH"][-1].json()
    assert (patch["spec"]["predictor"]["scaleMetric"], patch["spec"]["predictor"]["scaleTarget"]) == (None, None)
    assert patch["metadata"]["annotations"][AUTOSCALER_CLASS_ANNOTATION] == "keda"
    running = stored(server)
    assert "scaleMetric" not in running["spec"]["predictor"] and "autoScaling" in running["spec"]["predictor"]

    deployed(hpa)
    patch = [request for request in server.requests if request.method == "PATCH"][-1].json()
    assert patch["spec"]["predictor"]["autoScaling"] is None
    assert patch["metadata"]["annotations"][SCRAPE_ANNOTATION] is None
    assert patch["metadata"]["annotations"][KSERVE_SCRAPING_ANNOTATION] is None
    running = stored(server)
    assert running["metadata"]["annotations"][AUTOSCALER_CLASS_ANNOTATION] == "hpa"
    assert not any(key.startswith("prometheus.io/") for key in running["metadata"]["annotations"])
    assert "autoScaling" not in running["spec"]["predictor"]
    assert kserve_behaviour.effective_behaviour(running)[1] == "scale on cpu 60% via the HPA"


def test_a_canary_over_an_unreadable_service_is_not_guessed(cluster) -> None:
    server = cluster("2")
    server.fake.fail_reads_with = (403, 'inferenceservices.serving.kserve.io "cancer" is forbidden')
    rendered = render("models:/cancer/2", "cancer", CANARY)
    assert "canary" not in rendered.resource["spec"]
    assert rendered.behaviour[3].startswith(
        "canary 20% to canary-v2: not written, the running service could not be read (models/cancer: "
        'inferenceservices.serving.kserve.io "cancer" is forbidden)'
    )
    assert rendered.warnings == (rendered.behaviour[3],)
    assert [request.method for request in server.requests] == ["GET"]  # read once, nothing written


def test_moving_a_running_service_to_another_mode_is_refused_before_anything_is_sent(cluster) -> None:
    """KServe's webhook refuses it ("deploymentMode cannot be changed"); nb2pipe says so first, with the ways out."""
    server = cluster("1")
    deployed(DeploySettings(mode="knative", scale_metric="concurrency", scale_target=8))
    with pytest.raises(Nb2PipeError) as refused:
        deployed(DeploySettings(mode="standard", scale_metric="cpu", scale_target=60, max_replicas=4))
    assert str(refused.value) == (
        "InferenceService models/cancer runs in Knative mode, and KServe does not move a running service to "
        "Standard mode: deploy with --mode knative (or mode:knative), or delete it first "
        "(kubectl delete inferenceservice cancer -n models)"
    )
    assert [request.method for request in server.requests].count("PATCH") == 0
    assert stored(server)["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"


def test_the_fake_api_server_refuses_a_mode_change_as_kserves_webhook_does(cluster) -> None:
    """What the check above spares the user: the webhook's own answer, through the same client."""
    from nb2pipe.lifecycle import cluster as cluster_module

    server = cluster("1")
    deployed(DeploySettings(mode="knative"))
    resource = render("models:/cancer/latest", "cancer", DeploySettings(mode="standard", max_replicas=2)).resource
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(cluster_module, "_check_mode_kept", lambda *_: None)
        with pytest.raises(Nb2PipeError, match="deploymentMode cannot be changed from 'Knative' to 'Standard'"):
            cluster_module.apply_inference_service(resource, wait_seconds=0)
    assert stored(server)["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"


def test_a_monitored_canary_logs_each_version_under_its_own_name(cluster) -> None:
    """The payload records name the version that answered: the stable pods keep the running
    version's annotation, the canary's pods get the new one through the canary's annotations."""
    monitored = replace(CANARY, monitor=True)
    cluster("1")
    deployed(monitored)
    server = cluster("2")
    deployed(monitored)
    running = stored(server)
    assert running["metadata"]["annotations"]["nb2pipe.io/model-version"] == "1"
    (canary,) = running["spec"]["canary"]
    assert canary["predictor"]["annotations"] == {"nb2pipe.io/model-version": "2"}
    assert running["spec"]["predictor"]["logger"]["metadataAnnotations"] == ["nb2pipe.io/model-version"]

    deployed(replace(monitored, canary_percent=100))  # promoted: the service is version 2 throughout
    running = stored(server)
    assert running["metadata"]["annotations"]["nb2pipe.io/model-version"] == "2" and "canary" not in running["spec"]
