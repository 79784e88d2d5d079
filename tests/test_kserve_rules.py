"""KServe's admission and reconciler rules, checked offline on InferenceService dicts
(nb2pipe/lifecycle/kserve_rules.py, kserve_behaviour.py): one broken resource per rule, the
same resource fixed, the effective behaviour in both modes, and every resource nb2pipe's builder
makes."""

from __future__ import annotations

from typing import Any

import pytest

from nb2pipe.deploy_checks import deploy_problems
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.inference_service import ServedModel, inference_service
from nb2pipe.lifecycle.kserve_behaviour import effective_behaviour
from nb2pipe.lifecycle.kserve_rules import (
    AUTOSCALER_CLASS_ANNOTATION,
    KNATIVE_CLASS_ANNOTATION,
    KNATIVE_HPA_CLASS,
    MODE_ANNOTATION,
    MODE_SOURCE_ANNOTATION,
    admission_problems,
    deployment_mode,
)

MODEL = {"modelFormat": {"name": "sklearn", "version": "1"}, "storageUri": "s3://models/cancer/1"}
KNATIVE_HPA = {KNATIVE_CLASS_ANNOTATION: KNATIVE_HPA_CLASS}


def isvc(
    mode: str | None = "Knative",
    annotations: dict[str, str] | None = None,
    name: str = "cancer",
    spec: dict[str, Any] | None = None,
    **predictor: Any,
) -> dict[str, Any]:
    """A minimal InferenceService: the model, the predictor fields given, the mode annotation."""
    notes = ({MODE_ANNOTATION: mode} if mode is not None else {}) | (annotations or {})
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": notes},
        "spec": {"predictor": {"model": dict(MODEL), **predictor}, **(spec or {})},
    }


def standard(cls: str | None = "hpa", **predictor: Any) -> dict[str, Any]:
    return isvc("Standard", {AUTOSCALER_CLASS_ANNOTATION: cls} if cls else {}, **predictor)


HPA_OK = {"minReplicas": 1, "maxReplicas": 4}
PROM = "http://prometheus.monitoring:9090"


def external(query: str = "q", target: dict[str, Any] | None = None, server: str | None = PROM) -> dict[str, Any]:
    """A KEDA Prometheus trigger as KServe's autoScaling spec writes it."""
    metric = {"backend": "prometheus", "query": query} | ({"serverAddress": server} if server else {})
    return {"type": "External", "external": {"metric": metric, "target": target or {"type": "Value", "value": "5"}}}


def resource_metric(name: str, target: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": name, "target": target}}


def keda(*metrics: dict[str, Any], **predictor: Any) -> dict[str, Any]:
    return standard("keda", autoScaling={"metrics": list(metrics)}, **{**HPA_OK, **predictor})


def canaried(*canaries: dict[str, Any], **predictor: Any) -> dict[str, Any]:
    return standard(spec={"canary": list(canaries)}, **{**HPA_OK, **predictor})


def canary(name: str | None = "canary-v2", percent: int = 20, **predictor: Any) -> dict[str, Any]:
    fields = ({"name": name} if name else {}) | {"model": MODEL | {"name": "kserve-container"}} | predictor
    return {"predictor": fields, "trafficPercent": percent}


def with_explainer(resource: dict[str, Any], **explainer: Any) -> dict[str, Any]:
    resource["spec"]["explainer"] = {"containers": [{"name": "kserve-container", "image": "x"}], **explainer}
    return resource


def stable_named(resource: dict[str, Any], name: str) -> dict[str, Any]:
    resource["spec"]["predictor"]["name"] = name
    return resource


EXTERNAL = external()
CPU_METRIC = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}
KEDA_CPU = resource_metric("cpu", {"type": "Utilization", "averageUtilization": 70})
POD_QUERY = 'sum(rate(request_predict_seconds_count{model_name="cancer"}[1m]))'
STORAGE = {"path": "logs", "parameters": {"format": "json"}, "key": "creds"}
PYTHONPATH = {"env": [{"name": "PYTHONPATH", "value": "/x"}]}

# (the rule, the resource that breaks only it, the same resource fixed, what the problem says)
RULES = [
    # --- both modes
    ("name", isvc(name="Cancer_1"), isvc(name="cancer-1"), 'the InferenceService "Cancer_1" is invalid'),
    (
        "name-dash",
        isvc(name="cancer-"),
        isvc(name="cancer"),
        "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?'",
    ),
    ("mode-missing", isvc(None), isvc("Knative"), f"no {MODE_ANNOTATION} annotation"),
    ("mode-unknown", isvc("standard"), isvc("Standard"), "'standard' is not a mode nb2pipe deploys with"),
    ("mode-modelmesh", isvc("ModelMesh"), isvc("Knative"), "'ModelMesh' is not a mode nb2pipe deploys with"),
    ("min-negative", isvc(minReplicas=-1), isvc(minReplicas=0), "'MinReplicas' cannot be less than 0"),
    ("max-negative", isvc(maxReplicas=-1), isvc(maxReplicas=0), "'MaxReplicas' cannot be less than 0"),
    (
        "min-above-max",
        isvc(minReplicas=5, maxReplicas=2),
        isvc(minReplicas=5, maxReplicas=0),  # max 0 means unset
        "minReplicas 5 above maxReplicas 2: KServe refuses it (\"'MinReplicas' cannot be greater than MaxReplicas\")",
    ),
    (
        "min-above-max-standard",
        standard(minReplicas=3, maxReplicas=2),
        standard(minReplicas=2, maxReplicas=2),
        "'MinReplicas' cannot be greater than MaxReplicas",
    ),
    (
        "container-concurrency",
        isvc(containerConcurrency=-1),
        isvc(containerConcurrency=0),
        '"parallelism cannot be less than 0"',
    ),
    (
        "logger-no-mode",
        isvc(logger={"url": "http://l"}),
        isvc(logger={"url": "http://l", "mode": "all"}),
        'logger without a mode: KServe refuses it ("invalid logger type")',
    ),
    ("logger-bad-mode", isvc(logger={"mode": "both"}), isvc(logger={"mode": "request"}), "logger mode 'both'"),
    (
        "logger-storage",
        isvc(logger={"mode": "all", "storage": {"path": "logs"}}),
        isvc(logger={"mode": "all", "storage": STORAGE}),
        'logger storage without parameters, key: KServe refuses it ("invalid logger storage configuration")',
    ),
    ("scale-metric-type", isvc(scaleMetricType="Utilization"), isvc(), "scaleMetricType Utilization has no effect"),
    (
        "pythonpath",
        isvc(model=MODEL | PYTHONPATH),
        isvc(model=MODEL | {"env": [{"name": "OTHER", "value": "/x"}]}),
        'setting PYTHONPATH in container "" is not allowed for security reasons',
    ),
    (
        "autoscaler-class",
        standard("kpa"),
        standard("hpa"),
        f'{AUTOSCALER_CLASS_ANNOTATION}: kpa: KServe refuses it ("[kpa] is not a supported autoscaler class type")',
    ),
    # --- Standard mode
    (
        "hpa-rps-explicit",
        standard(scaleMetric="rps", scaleTarget=10, **HPA_OK),
        standard(scaleMetric="cpu", scaleTarget=60, **HPA_OK),
        'scale:rps in Standard mode with the HPA: KServe refuses it ("[rps] is not a supported metric"); '
        "use mode:knative, or scale:cpu",
    ),
    (
        "hpa-concurrency-explicit",
        standard(scaleMetric="concurrency", **HPA_OK),
        standard(scaleMetric="cpu", **HPA_OK),
        '"[concurrency] is not a supported metric"',
    ),
    (
        "hpa-rps-implicit",
        standard(None, scaleMetric="rps", scaleTarget=10, **HPA_OK),
        standard(None, scaleMetric="cpu", scaleTarget=60, **HPA_OK),
        "scale:rps has no effect in Standard mode with the HPA",
    ),
    (
        "hpa-concurrency-implicit",
        standard(None, scaleMetric="concurrency", **HPA_OK),
        standard(None, **HPA_OK),
        "scale:concurrency has no effect in Standard mode with the HPA",
    ),
    (
        "cpu-target-high",
        standard(scaleMetric="cpu", scaleTarget=150, **HPA_OK),
        standard(scaleMetric="cpu", scaleTarget=100, **HPA_OK),
        'scale:cpu:150: KServe refuses it ("the target utilization percentage should be a [1-100] integer")',
    ),
    (
        "cpu-target-low",
        standard(scaleMetric="cpu", scaleTarget=0, **HPA_OK),
        standard(scaleMetric="cpu", scaleTarget=1, **HPA_OK),
        '"the target utilization percentage should be a [1-100] integer"',
    ),
    (
        "memory-target-high",
        standard(scaleMetric="memory", scaleTarget=101, **HPA_OK),
        standard(scaleMetric="memory", scaleTarget=70, **HPA_OK),
        '"the target utilization percentage should be a [1-100] integer"',
    ),
    (
        "memory-target-low",
        standard(scaleMetric="memory", scaleTarget=0, **HPA_OK),
        standard(scaleMetric="memory", scaleTarget=1, **HPA_OK),
        '"the target memory should be greater than 1 MiB"',
    ),
    (
        "memory-without-target",
        standard(scaleMetric="memory", **HPA_OK),
        standard(scaleMetric="memory", scaleTarget=70, **HPA_OK),
        "scale:memory without a target has no effect with the HPA",
    ),
    (
        "min-zero-under-hpa",
        standard(minReplicas=0, maxReplicas=4),
        standard(minReplicas=1, maxReplicas=4),
        "minReplicas 0 silently becomes 1 in Standard mode",
    ),
    (
        "max-unset-under-hpa",
        standard(minReplicas=2, scaleMetric="cpu"),
        standard(minReplicas=2, maxReplicas=4, scaleMetric="cpu"),
        "maxReplicas is not set: the HPA's maximum becomes the minimum (2), so it never scales",
    ),
    (
        "max-unset-under-implicit-hpa",
        standard(None, scaleMetric="cpu", scaleTarget=70),
        standard(None, scaleMetric="cpu", scaleTarget=70, maxReplicas=3),
        "maxReplicas is not set: the HPA's maximum becomes the minimum (1)",
    ),
    (
        "canary-percent-in-standard",
        standard(canaryTrafficPercent=20, **HPA_OK),
        standard(**HPA_OK),
        "canaryTrafficPercent 20 has no effect (in Standard mode: only Knative splits traffic)",
    ),
    (
        "external-metric-under-hpa",
        standard(autoScaling={"metrics": [EXTERNAL]}, **HPA_OK),
        standard(autoScaling={"metrics": [CPU_METRIC]}, **HPA_OK),
        '"invalid HPA metric source type with value [External],valid metric source types are Resource"',
    ),
    (
        "podmetric-under-implicit-hpa",
        standard(None, autoScaling={"metrics": [{"type": "PodMetric"}]}, **HPA_OK),
        standard(None, autoScaling={"metrics": [CPU_METRIC]}, **HPA_OK),
        "autoScaling PodMetric metric under the HPA is skipped silently",
    ),
    (
        "resource-metric-without-resource",
        standard(autoScaling={"metrics": [{"type": "Resource"}]}, **HPA_OK),
        standard(autoScaling={"metrics": [CPU_METRIC]}, **HPA_OK),
        '"metricSpec.Resource is not set for resource metric source type"',
    ),
    (
        "keda-scale-metric",
        keda(EXTERNAL, scaleMetric="rps"),
        keda(EXTERNAL),
        '"ScaleMetric is not supported for KEDA"',
    ),
    # --- Standard mode with KEDA (validateScalingKedaCompExtension, then what KEDA cannot use)
    ("keda-no-metrics", standard("keda", **HPA_OK), keda(EXTERNAL), "gives KEDA no trigger, so nothing scales"),
    (
        "keda-external-missing",
        keda({"type": "External"}),
        keda(EXTERNAL),
        '"metricSpec.External is not set for external metric source type"',
    ),
    ("keda-empty-query", keda(external("")), keda(EXTERNAL), '"the query should not be empty"'),
    (
        "keda-no-threshold",
        keda(external(target={"type": "Value"})),
        keda(EXTERNAL),
        '"the target threshold value should not be empty"',
    ),
    (
        "keda-average-value-unset",
        keda(external(target={"type": "AverageValue", "value": "5"})),
        keda(external(target={"type": "AverageValue", "value": "5", "averageValue": "5"})),
        '"the AverageValue type should be set"',
    ),
    (
        "keda-podmetric-missing",
        keda({"type": "PodMetric"}),
        keda(EXTERNAL),
        '"metricSpec.PodMetric is not set for pod metric source type"',
    ),
    (
        "keda-unknown-type",
        keda({"type": "Object"}),
        keda(EXTERNAL),
        '"unknown KEDA metric type with value [Object].Valid types are Resource,External,PodMetric"',
    ),
    (
        "keda-cpu-average-value",
        keda(resource_metric("cpu", {"type": "AverageValue", "averageValue": "500m"})),
        keda(KEDA_CPU),
        '"the cpu target value type should be Utilization"',
    ),
    (
        "keda-cpu-utilization-unset",
        keda(resource_metric("cpu", {"type": "Utilization"})),
        keda(KEDA_CPU),
        '"the AverageUtilization type should be set"',
    ),
    (
        "keda-cpu-utilization-range",
        keda(resource_metric("cpu", {"type": "Utilization", "averageUtilization": 150})),
        keda(KEDA_CPU),
        '"the target utilization percentage should be a [1-100] integer"',
    ),
    (
        "keda-memory-value",
        keda(resource_metric("memory", {"type": "Value", "value": "1Gi"})),
        keda(resource_metric("memory", {"type": "AverageValue", "averageValue": "1Gi"})),
        '"the memory target value type should be AverageValue or Utilization"',
    ),
    (
        "keda-resource-gpu",
        keda(resource_metric("gpu", {"type": "Utilization", "averageUtilization": 50})),
        keda(KEDA_CPU),
        '"resource type gpu is not supported"',
    ),
    ("keda-no-server", keda(external(server=None)), keda(EXTERNAL), "KEDA trigger without serverAddress"),
    (
        "keda-scale-target",
        keda(EXTERNAL, scaleTarget=5),
        keda(EXTERNAL),
        "scaleTarget 5 has no effect (KEDA reads only autoScaling.metrics)",
    ),
    (
        "keda-zero-on-pod-metric",
        keda(external(POD_QUERY), minReplicas=0),
        keda(external("sum(rate(nginx_ingress_controller_requests[1m]))"), minReplicas=0),
        "minReplicas 0 with KEDA on request_predict_seconds: no pod reports it while none runs",
    ),
    (
        "keda-query-on-mlserver",
        keda(external(POD_QUERY), model=MODEL | {"runtime": "kserve-mlserver"}),
        keda(external(POD_QUERY), model=MODEL | {"runtime": "kserve-sklearnserver"}),
        "the KEDA query reads request_predict_seconds, which MLServer does not export",
    ),
    (
        "keda-explainer-without-own-class",
        with_explainer(keda(EXTERNAL)),
        with_explainer(keda(EXTERNAL), annotations={AUTOSCALER_CLASS_ANNOTATION: "hpa"}),
        f"explainer: {AUTOSCALER_CLASS_ANNOTATION}: keda without autoScaling.metrics gives KEDA no trigger",
    ),
    # --- Standard mode's spec.canary (validateCanarySpecs)
    (
        "canary-without-stable-model",
        standard(spec={"canary": [canary()]}, model=None, containers=[{"name": "kserve-container", "image": "x"}]),
        canaried(canary()),
        '"canary requires a stable predictor with a model (multi-model serving is not supported with canary)"',
    ),
    ("canary-unnamed", canaried(canary(None)), canaried(canary()), '"canary[0] predictor.name is required"'),
    (
        "canary-duplicated",
        canaried(canary(percent=10), canary(percent=10)),
        canaried(canary(percent=10), canary("canary-v3", 10)),
        'canary predictor.name "canary-v2" is duplicated',
    ),
    (
        "canary-named-as-stable",
        stable_named(canaried(canary("v1")), "v1"),
        stable_named(canaried(canary("v2")), "v1"),
        'canary predictor.name "v1" conflicts with stable predictor name',
    ),
    (
        "canary-percent",
        canaried(canary(percent=120)),
        canaried(canary(percent=100)),
        'canary "canary-v2" trafficPercent must be between 0 and 100, got 120',
    ),
    (
        "canary-without-model",
        canaried({"predictor": {"name": "canary-v2"}, "trafficPercent": 20}),
        canaried(canary()),
        'canary "canary-v2" predictor: exactly one of [...] must be specified in PredictorSpec',
    ),
    (
        "canary-workerspec",
        canaried(canary(workerSpec={})),
        canaried(canary()),
        'canary "canary-v2" must not set workerSpec (multi-node is not yet supported for canary)',
    ),
    (
        "canary-max-replicas",
        canaried(canary(maxReplicas=3)),
        canaried(canary(maxReplicas=0)),
        'canary "canary-v2" must not set maxReplicas (canary uses fixed replicas)',
    ),
    (
        "canary-scale-metric",
        canaried(canary(scaleMetric="cpu")),
        canaried(canary()),
        'canary "canary-v2" must not set scaleMetric (canary uses fixed replicas)',
    ),
    (
        "canary-autoscaling",
        canaried(canary(autoScaling={"metrics": [KEDA_CPU]})),
        canaried(canary()),
        'canary "canary-v2" must not set autoScaling (canary uses fixed replicas)',
    ),
    (
        "canary-min-above-stable",
        canaried(canary(minReplicas=2)),
        canaried(canary(minReplicas=2), minReplicas=2),
        'canary "canary-v2" minReplicas (2) must not exceed stable predictor minReplicas (1)',
    ),
    (
        "canary-sum",
        canaried(canary(percent=60), canary("canary-v3", 50)),
        canaried(canary(percent=50), canary("canary-v3", 50)),
        '"sum of canary trafficPercent values (110) must be <= 100"',
    ),
    (
        "canary-service-name",
        canaried(canary("canary-" + "v" * 50)),
        canaried(canary("canary-" + "v" * 30)),
        "longer than 63 characters",
    ),
    # --- Knative mode
    (
        "kpa-cpu",
        isvc(scaleMetric="cpu", scaleTarget=80),
        isvc(annotations=KNATIVE_HPA, scaleMetric="cpu", scaleTarget=80),
        f'scale:cpu in Knative mode: KServe refuses it ("[cpu] is not a supported metric"); the Knative Pod '
        f"Autoscaler scales on concurrency or rps: use scale:concurrency or scale:rps, mode:standard for cpu, or "
        f"the annotation {KNATIVE_CLASS_ANNOTATION}: {KNATIVE_HPA_CLASS}",
    ),
    (
        "kpa-memory",
        isvc(scaleMetric="memory", scaleTarget=70),
        isvc(annotations=KNATIVE_HPA, scaleMetric="memory", scaleTarget=70),
        '"[memory] is not a supported metric"',
    ),
    (
        "knative-hpa-class-rps",
        isvc(annotations=KNATIVE_HPA, scaleMetric="rps"),
        isvc(scaleMetric="rps"),
        f"scale:rps under {KNATIVE_CLASS_ANNOTATION}: {KNATIVE_HPA_CLASS}",
    ),
    (
        "knative-hpa-class-target",
        isvc(annotations=KNATIVE_HPA, scaleMetric="cpu", scaleTarget=120),
        isvc(annotations=KNATIVE_HPA, scaleMetric="cpu", scaleTarget=90),
        '"the target utilization percentage should be a [1-100] integer"',
    ),
    (
        "rps-target",
        isvc(scaleMetric="rps", scaleTarget=0),
        isvc(scaleMetric="rps", scaleTarget=1),
        'scale:rps:0: KServe refuses it ("the target for rps should be greater than 1")',
    ),
    (
        "canary-spec-in-knative",
        isvc(spec={"canary": [{"predictor": {"name": "v2"}, "trafficPercent": 10}]}),
        isvc("Standard", spec={"canary": [canary("v2", 10)]}),
        '"canary is only supported in Standard deployment mode"',
    ),
    (
        "deployment-strategy-in-knative",
        isvc(deploymentStrategy={"type": "Recreate"}),
        isvc("Standard", deploymentStrategy={"type": "Recreate"}),
        '"customizing deploymentStrategy is only supported for raw deployment mode"',
    ),
    (
        "autoscaling-in-knative",
        isvc(autoScaling={"metrics": [CPU_METRIC]}),
        isvc(),
        "autoScaling has no effect (in Knative mode: only Standard mode's HPA and KEDA read it)",
    ),
    (
        "autoscaler-class-in-knative",
        isvc(annotations={AUTOSCALER_CLASS_ANNOTATION: "hpa"}),
        isvc(),
        f"{AUTOSCALER_CLASS_ANNOTATION}: hpa has no effect in Knative mode",
    ),
]


@pytest.mark.parametrize(("broken", "fixed", "expected"), [case[1:] for case in RULES], ids=[c[0] for c in RULES])
def test_each_rule_reports_its_problem_once_and_the_fix_passes(broken, fixed, expected):
    found = admission_problems(broken)
    assert len(found) == 1, found
    assert expected in found[0]
    assert admission_problems(fixed) == []


def test_problems_name_the_component_other_than_the_predictor():
    resource = isvc()
    resource["spec"]["explainer"] = {"containers": [{"name": "kserve-container", "image": "x"}], "minReplicas": -2}
    assert admission_problems(resource) == [
        "explainer: minReplicas -2: KServe refuses it (\"'MinReplicas' cannot be less than 0\"); use 0 or more"
    ]


def test_pythonpath_is_found_in_any_container():
    resource = isvc()
    resource["spec"]["transformer"] = {"containers": [{"name": "feast", "image": "x", **PYTHONPATH}]}
    assert admission_problems(resource) == [
        'the InferenceService "cancer" is invalid: setting PYTHONPATH in container "feast" is not allowed for '
        "security reasons"
    ]


def test_every_problem_is_reported_at_once_refusals_first():
    found = admission_problems(standard(minReplicas=0, scaleMetric="rps", canaryTrafficPercent=10))
    assert [problem.split(" ", 1)[0] for problem in found] == [
        "scale:rps",  # refused by the webhook
        "minReplicas",  # 0 -> 1
        "maxReplicas",  # max = min
        "canaryTrafficPercent",  # ignored
    ]


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
    DeploySettings(
        gpu=1,
        min_replicas=1,
        max_replicas=4,
        scale_metric="concurrency",
        scale_target=8,
        container_concurrency=16,
        canary_percent=20,
        monitor=True,
        logger_url="http://logger.example/",
    ),
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
