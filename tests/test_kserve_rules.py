"""KServe's admission and reconciler rules, checked offline on InferenceService dicts
(nb2pipe/lifecycle/kserve_rules.py): one broken resource per rule, the same resource fixed,
and every problem reported at once. The effective behaviour: tests/test_kserve_behaviour.py."""

from __future__ import annotations

import pytest

from nb2pipe.lifecycle.kserve_rules import (
    AUTOSCALER_CLASS_ANNOTATION,
    KNATIVE_CLASS_ANNOTATION,
    KNATIVE_HPA_CLASS,
    MODE_ANNOTATION,
    admission_problems,
)
from tests.support.isvc_dicts import (
    CPU_METRIC,
    EXTERNAL,
    HPA_OK,
    KEDA_CPU,
    KNATIVE_HPA,
    MODEL,
    POD_QUERY,
    PYTHONPATH,
    STORAGE,
    canaried,
    canary,
    external,
    isvc,
    keda,
    resource_metric,
    stable_named,
    standard,
    with_explainer,
)

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
    (
        "logger-blob-without-path",
        isvc(logger={"mode": "all", "url": "s3://logs/p"}),
        isvc(logger={"mode": "all", "url": "s3://logs/p", "storage": STORAGE}),
        "logger url s3://logs/p without storage.path: KServe's agent drops every batch",
    ),
    (
        "logger-s3a",
        isvc(logger={"mode": "all", "url": "s3a://logs/p", "storage": STORAGE}),
        isvc(logger={"mode": "all", "url": "s3://logs/p", "storage": STORAGE}),
        "logger url s3a://logs/p: KServe's logger agent has no s3a storage provider",
    ),
    (
        "logger-pvc",
        isvc(logger={"mode": "all", "url": "pvc://claim/p"}),
        isvc(logger={"mode": "all", "url": "http://sink.default/"}),
        "so these payloads are lost",
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
