"""What KServe will do with each setting of an InferenceService, in one line each
(nb2pipe/lifecycle/kserve_behaviour.py), in both modes, and every resource nb2pipe's builder
makes free of KServe's problems."""

from __future__ import annotations

import pytest

from nb2pipe.deploy_checks import deploy_problems
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.inference_service import ServedModel, inference_service
from nb2pipe.lifecycle.kserve_behaviour import effective_behaviour
from nb2pipe.lifecycle.kserve_rules import (
    MODE_ANNOTATION,
    MODE_SOURCE_ANNOTATION,
    admission_problems,
    deployment_mode,
)
from tests.support.isvc_dicts import (
    CPU_METRIC,
    EVERY_SETTING,
    HPA_OK,
    KEDA_CPU,
    KNATIVE_HPA,
    MODEL,
    POD_QUERY,
    PROM,
    external,
    isvc,
    keda,
    standard,
)


@pytest.mark.parametrize(("legacy", "mode"), [("Serverless", "Knative"), ("RawDeployment", "Standard")])
def test_legacy_mode_names_mean_the_new_ones(legacy, mode):
    assert deployment_mode(isvc(legacy)) == mode
    assert admission_problems(isvc(legacy)) == []
    assert (
        effective_behaviour(isvc(legacy))[0]
        == f"mode {mode} (annotation {MODE_ANNOTATION} {legacy}, KServe's legacy name)"
    )
    # Serverless keeps Knative's rules: cpu is refused there
    assert bool(admission_problems(isvc(legacy, scaleMetric="cpu", **HPA_OK))) == (mode == "Knative")


# --- effective behaviour ------------------------------------------------------------------------


def test_effective_behaviour_of_a_knative_service_with_every_setting():
    resource = isvc(
        annotations={MODE_SOURCE_ANNOTATION: "assumed: the cluster could not be read"},
        minReplicas=1,
        maxReplicas=4,
        scaleMetric="concurrency",
        scaleTarget=8,
        containerConcurrency=16,
        canaryTrafficPercent=20,
        logger={"mode": "all", "url": "http://logger.example/"},
        batcher={"maxBatchSize": 16, "maxLatency": 50},
    )
    resource["spec"]["predictor"]["model"]["resources"] = {
        "limits": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"},
        "requests": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"},
    }
    resource["spec"]["explainer"] = {
        "containers": [
            {"name": "kserve-container", "image": "ghcr.io/nb2pipe/nb2pipe:0.1.0", "args": ["m", "--explainer=anchor"]}
        ]
    }
    assert effective_behaviour(resource) == [
        f"mode Knative (annotation {MODE_ANNOTATION}; assumed: the cluster could not be read)",
        "scale on concurrency 8 per replica via the Knative Pod Autoscaler; at most 16 requests at once per replica",
        "replicas 1-4",
        "canary 20% of traffic to the new revision, 80% to the previous one (from the second rollout on; the first "
        "takes all)",
        "resources: 1 nvidia.com/gpu, cpu 2, memory 4Gi (requests = limits)",
        "payload logger: requests and responses to http://logger.example/",
        "batcher: up to 16 requests per batch, waiting at most 50 ms",
        "explainer: ghcr.io/nb2pipe/nb2pipe:0.1.0 answers :explain (anchor)",
    ]


def test_effective_behaviour_of_a_bare_service_states_kserve_defaults():
    assert effective_behaviour(isvc()) == [
        f"mode Knative (annotation {MODE_ANNOTATION})",
        "KServe default: scale on concurrency 100 per replica via the Knative Pod Autoscaler",
        "replicas 1 up to Knative's global maximum",
        "no canary: each rollout takes all traffic once ready",
        "resources: the serving runtime's defaults, no GPU",
        "payload logger: off",
        "batcher: off",
        "explainer: none",
    ]
    lines = effective_behaviour(standard(None))
    assert lines[:3] == [
        f"mode Standard (annotation {MODE_ANNOTATION})",
        "KServe default: scale on cpu 80% via the HPA",
        "replicas 1, fixed: maxReplicas is not set",
    ]


@pytest.mark.parametrize(
    ("resource", "autoscaler", "replicas"),
    [
        (
            isvc(scaleMetric="rps", scaleTarget=50, minReplicas=0, maxReplicas=3),
            "scale on rps 50 per replica via the Knative Pod Autoscaler",
            "replicas 0-3, scale to zero allowed",
        ),
        (
            isvc(scaleMetric="rps", minReplicas=0),
            "scale on rps 200 (Knative's default) per replica via the Knative Pod Autoscaler",
            "replicas 0 up to Knative's global maximum, scale to zero allowed",
        ),
        (
            isvc(scaleTarget=10, minReplicas=2, maxReplicas=2, containerConcurrency=0),
            "scale on concurrency 10 per replica via the Knative Pod Autoscaler; no request limit",
            "replicas 2, fixed",
        ),
        (
            isvc(scaleMetric="cpu", **HPA_OK),
            "scale on cpu: refused in Knative mode (see the problems)",
            "replicas 1-4",
        ),
        (
            isvc(annotations=KNATIVE_HPA, scaleMetric="cpu", scaleTarget=70, **HPA_OK),
            "scale on cpu 70% via Knative's HPA class",
            "replicas 1-4",
        ),
        (standard(scaleMetric="cpu", **HPA_OK), "scale on cpu 80% via the HPA", "replicas 1-4"),
        (standard(scaleMetric="cpu", scaleTarget=60, **HPA_OK), "scale on cpu 60% via the HPA", "replicas 1-4"),
        (
            standard(scaleMetric="memory", scaleTarget=70, minReplicas=2, maxReplicas=6),
            "scale on memory 70% of the request via the HPA",
            "replicas 2-6",
        ),
        (
            standard(None, scaleMetric="rps", scaleTarget=5, containerConcurrency=4, minReplicas=0, maxReplicas=1),
            "scale:rps gives the HPA no metric: it scales on cpu 80% (see the problems); "
            "containerConcurrency 4 has no effect in Standard mode",
            "replicas 1, fixed: max = min (minReplicas 0 becomes 1 under the HPA)",
        ),
        (
            standard(scaleMetric="memory", **HPA_OK),
            "scale:memory gives the HPA no metric: it scales on cpu 80% (see the problems)",
            "replicas 1-4",
        ),
        (
            standard(autoScaling={"metrics": [CPU_METRIC]}, **HPA_OK),
            "scale via the HPA on the metrics in autoScaling",
            "replicas 1-4",
        ),
        (
            keda(external(), minReplicas=0, maxReplicas=5),
            f"scale via KEDA on the query's value 5 per replica (Prometheus {PROM}, query q)",
            "replicas 0-5, scale to zero via KEDA: requests fail while no replica runs (no activator in Standard mode)",
        ),
        (
            keda(external(POD_QUERY, {"type": "Value", "value": "700"})),
            f"scale via KEDA on rps 700 per replica (Prometheus {PROM}, query {POD_QUERY})",
            "replicas 1-4",
        ),
        (
            keda(KEDA_CPU, external(POD_QUERY.replace("_count", "_sum"), server=None)),
            "scale via KEDA on a Resource metric; concurrency 5 per replica (Prometheus unset, query "
            + POD_QUERY.replace("_count", "_sum")
            + ")",
            "replicas 1-4",
        ),
        (
            standard("none", minReplicas=3),
            "no autoscaler (class none): the replicas stay at minReplicas",
            "replicas 3, fixed",
        ),
        (
            standard("external"),
            "no KServe autoscaler (class external): an autoscaler of your own sets the replicas",
            "replicas: set by the external autoscaler",
        ),
        (
            isvc(None, minReplicas=1, maxReplicas=3),
            "autoscaler: unknown until the mode and class are valid (see the problems)",
            "replicas 1 to 3 as written: what they mean depends on the mode",
        ),
    ],
)
def test_effective_autoscaler_and_replicas_per_mode_and_metric(resource, autoscaler, replicas):
    assert effective_behaviour(resource)[1:3] == [autoscaler, replicas]


def test_effective_mode_lines_say_how_the_mode_was_chosen():
    assert effective_behaviour(isvc(None))[0].startswith("mode not set: the cluster's default decides")
    assert (
        effective_behaviour(isvc("standard"))[0]
        == "mode 'standard' unknown: KServe's controller uses the cluster's default"
    )
    sourced = isvc("Standard", {MODE_SOURCE_ANNOTATION: "read from the cluster's inferenceservice-config"})
    assert effective_behaviour(sourced)[0] == (
        f"mode Standard (annotation {MODE_ANNOTATION}; read from the cluster's inferenceservice-config)"
    )


def test_effective_canary_resources_logger_batcher_and_explainer_lines():
    ignored = effective_behaviour(standard(canaryTrafficPercent=30, **HPA_OK))
    assert ignored[3] == "canaryTrafficPercent 30 is ignored in Standard mode: each rollout takes all traffic"
    assert effective_behaviour(isvc(None, canaryTrafficPercent=5))[3] == (
        "canary 5%: Knative splits traffic between revisions, Standard mode ignores it"
    )
    split = isvc(model=MODEL | {"resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}}})
    assert effective_behaviour(split)[4] == "resources: requests cpu 500m; limits cpu 1, memory 1Gi"
    default_sink = effective_behaviour(isvc(logger={"mode": "response"}, batcher={}))
    assert (
        default_sink[5]
        == "payload logger: responses to the cluster's default sink (inferenceservice-config logger.defaultUrl)"
    )
    assert default_sink[6] == "batcher: up to 32 requests per batch, waiting at most 5000 ms"
    assert default_sink[7] == "explainer: none"
    built_in = isvc(spec={"explainer": {"art": {"type": "SquareAttack"}}})
    assert effective_behaviour(built_in)[7] == "explainer: KServe built-in answers :explain"


# --- what nb2pipe's builder makes -----------------------------------------------------------------

# the settings tests/test_deploy.py deploys (those deploy_problems accepts), plus the payload
# logger, the batcher and an explainer
BUILDER_SETTINGS = [
    EVERY_SETTING,
    DeploySettings(gpu=2, gpu_type="amd.com/gpu", cpu="500m", memory="1Gi"),
    DeploySettings(),
    DeploySettings(namespace="team-a"),
    DeploySettings(min_replicas=0, max_replicas=1, scale_metric="rps", canary_percent=0),
    DeploySettings(min_replicas=3, max_replicas=3, canary_percent=100, container_concurrency=0),
    DeploySettings(min_replicas=1, max_replicas=2, scale_metric="rps", scale_target=50),
    DeploySettings(monitor=True, batch_max_size=16, batch_max_latency_ms=50, explainer="anchor"),
]


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "tensorflow", "mlflow", "nb2pipe"])
@pytest.mark.parametrize("settings", BUILDER_SETTINGS, ids=range(len(BUILDER_SETTINGS)))
def test_what_the_builder_makes_is_problem_free_in_knative_mode(settings, flavor):
    assert deploy_problems(settings) == []
    model = ServedModel("models:/cancer/1", flavor, "s3://models/cancer/1", "1", "cancer")
    resource = inference_service("cancer", model, settings, tracking_uri="http://mlflow:5000")
    resource["metadata"]["annotations"][MODE_ANNOTATION] = "Knative"
    assert admission_problems(resource) == []
    assert len(effective_behaviour(resource)) == 8


def test_a_blob_logger_says_where_the_objects_go_and_whose_credentials_write_them():
    storage = {"path": "payloads", "parameters": {"format": "json"}, "key": "credentials"}
    resource = isvc(logger={"mode": "all", "url": "s3://logs/cancer/", "storage": storage})
    resource["metadata"]["namespace"] = "models"
    assert effective_behaviour(resource)[5] == (
        "payload logger: requests and responses as JSON objects under s3://logs/cancer/models/cancer/predictor/"
        "payloads (credentials: ServiceAccount logger-sa)"
    )
