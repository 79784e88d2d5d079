"""A KServe ``InferenceService`` (serving.kserve.io/v1beta1) for a registered model, built
with the kserve SDK's own models and serialized to the plain dict the API server takes.

The server, model format, protocol and the folder ``storageUri`` points at come from
:func:`nb2pipe.lifecycle.runtimes.choose_runtime`: KServe's own server for sklearn, xgboost and
lightgbm when its image's library version loads the model, else nb2pipe's own
ClusterServingRuntime (``runtime:`` chooses otherwise).

With an explainer (``explain:anchor`` / ``explain:ig``), ``spec.explainer`` is a custom
container running ``nb2pipe serve --explainer`` on the same registered version: KServe 0.13
removed its built-in alibi explainer, and KServe routes ``/v1/models/NAME:explain`` to this
container. It loads the model and the training data kept with it from MLflow
(``MLFLOW_TRACKING_URI``), fits the explainer once and warms it before it reports ready.

GPUs (:func:`nb2pipe.deploy_checks.gpu_placement`): the extended resource in requests and limits, a
``nodeSelector`` on ``nvidia.com/gpu.product`` for a GPU product, and the ``NoSchedule`` toleration
Kubernetes' ExtendedResourceToleration admission would add, for GPU node pools tainted that way.

The deployment mode is always written (``serving.kserve.io/deploymentMode``, with where it
came from), with what each mode needs for the documented scaling to happen: in Knative mode,
cpu scaling takes Knative's HPA class (its default KPA class rejects cpu and memory; memory is
refused earlier, by deploy_problems, since that class reads its target as MiB); in
Standard mode the autoscaler class ``hpa`` (so KServe's webhook checks the scaling) and a
``maxReplicas`` (unset, KServe's HPA keeps max = min), or, for rps, concurrency and scale to
zero, the class ``keda`` with a Prometheus trigger (:mod:`standard_scaling`). Standard mode's
canary is ``spec.canary``, composed against the running service at deploy time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nb2pipe.deploy_checks import gpu_placement
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.deploy_mode import ResolvedMode, given_or_assumed
from nb2pipe.lifecycle.kserve_rules import (
    AUTOSCALER_CLASS_ANNOTATION,
    KNATIVE_CLASS_ANNOTATION,
    KNATIVE_HPA_CLASS,
    MODE_ANNOTATION,
    MODE_SOURCE_ANNOTATION as SOURCE_ANNOTATION,
)
from nb2pipe.lifecycle.runtimes import ServingChoice, choose_runtime
from nb2pipe.lifecycle.standard_scaling import KEDA_CLASS, keda_autoscaling, scrape_annotations, uses_keda
from nb2pipe.store.logged_payloads import VERSION_ANNOTATION, logger_spec

API_VERSION = "serving.kserve.io/v1beta1"
MANAGED_BY = "nb2pipe"
MODEL_URI_ANNOTATION = "nb2pipe.io/model-uri"
#: the image of nb2pipe's server (manifests/Dockerfile); NB2PIPE_SERVER_IMAGE overrides it
SERVER_IMAGE = "ghcr.io/nb2pipe/nb2pipe:0.1.0"
SERVER_IMAGE_ENV = "NB2PIPE_SERVER_IMAGE"
#: alibi, TensorFlow and a fitted explainer in memory
EXPLAINER_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


@dataclass(frozen=True)
class ServedModel:
    """What the deployment needs to know about a registered version."""

    uri: str
    flavor: str  # sklearn | xgboost | lightgbm | tensorflow | mlflow | nb2pipe
    storage_uri: str
    version: str | None = None
    #: the registered model's name (None for a model folder)
    name: str | None = None
    #: the training environment's library versions (registry.ModelSource.library_versions)
    library_versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def pinned_uri(self) -> str:
        """``models:/NAME/VERSION`` when registered: an alias may move before a pod starts."""
        return f"models:/{self.name}/{self.version}" if self.name and self.version else self.uri


def runtime_for(model: ServedModel, settings: DeploySettings) -> ServingChoice:
    """The server for ``model`` under ``settings.runtime`` (see :mod:`nb2pipe.lifecycle.runtimes`)."""
    return choose_runtime(model.flavor, settings.runtime, model.library_versions, settings.gpu)


def served_storage(model: ServedModel, runtime: ServingChoice) -> str:
    """The ``storageUri``: the version's artifacts, or the runtime-ready sub-folder in them."""
    if not runtime.storage_path:
        return model.storage_uri
    return f"{model.storage_uri.rstrip('/')}/{runtime.storage_path}"


def inference_service(
    service: str,
    model: ServedModel,
    settings: DeploySettings,
    *,
    tracking_uri: str | None = None,
    server_image: str = SERVER_IMAGE,
    mode: ResolvedMode | None = None,
) -> dict[str, Any]:
    """The InferenceService resource as a dict (camelCase keys, no empty fields).

    ``tracking_uri`` is where the explainer container finds MLflow (with ``settings.explainer``).
    ``mode``: the resolved deployment mode (default: ``settings.mode``, else Knative, assumed).
    """
    from kserve import (
        V1beta1Batcher,
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import ApiClient, V1ObjectMeta, V1ResourceRequirements, V1Toleration

    runtime = runtime_for(model, settings)
    resolved = mode or given_or_assumed(settings.mode)
    annotations = {
        MODEL_URI_ANNOTATION: model.uri,
        MODE_ANNOTATION: resolved.annotation,
        SOURCE_ANNOTATION: resolved.source,
        **_autoscaler_annotations(resolved, settings, runtime.runtime),
    }
    versioned = settings.monitor and model.version is not None
    if versioned:  # each payload record carries the version that answered it (the drift gate's filter)
        annotations[VERSION_ANNOTATION] = str(model.version)
    keda = uses_keda(settings, resolved.mode)  # KEDA's autoScaling replaces scaleMetric/scaleTarget
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    gpus = gpu_placement(settings)
    if gpus is not None:
        limits[gpus.resource] = str(settings.gpu)
        requests[gpus.resource] = str(settings.gpu)  # extended resources: request == limit
    if settings.cpu:
        requests["cpu"] = limits["cpu"] = settings.cpu
    if settings.memory:
        requests["memory"] = limits["memory"] = settings.memory
    resources = V1ResourceRequirements(limits=limits, requests=requests) if limits else None
    predictor = V1beta1PredictorSpec(
        model=V1beta1ModelSpec(
            model_format=V1beta1ModelFormat(name=runtime.format_name, version=runtime.format_version),
            runtime=runtime.runtime,
            protocol_version=runtime.protocol,
            storage_uri=served_storage(model, runtime),
            resources=resources,
        ),
        min_replicas=settings.min_replicas,
        max_replicas=_max_replicas(resolved, settings),
        scale_metric=None if keda else settings.scale_metric,
        scale_target=None if keda else settings.scale_target,
        container_concurrency=settings.container_concurrency,
        # Standard mode's canary is spec.canary (standard_scaling.with_canary, against the running service)
        canary_traffic_percent=settings.canary_percent if resolved.mode == "knative" else None,
        logger=logger_spec(settings, versioned) if settings.monitor else None,
        batcher=V1beta1Batcher(max_batch_size=settings.batch_max_size, max_latency=settings.batch_max_latency_ms)
        if settings.batch_max_size
        else None,
        node_selector=gpus.node_selector if gpus else None,
        tolerations=[V1Toleration(**toleration) for toleration in gpus.tolerations] if gpus else None,
    )
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY}
    if model.version:
        labels["nb2pipe.io/model-version"] = model.version
    resource = V1beta1InferenceService(
        api_version=API_VERSION,
        kind="InferenceService",
        metadata=V1ObjectMeta(name=service, namespace=settings.namespace, annotations=annotations, labels=labels),
        spec=V1beta1InferenceServiceSpec(
            predictor=predictor,
            explainer=_explainer(service, model, settings, tracking_uri, server_image) if settings.explainer else None,
        ),
    )
    document = ApiClient().sanitize_for_serialization(resource)
    # the SDK's ModelSpec defaults its container name to ""; KServe names the container itself
    if not document["spec"]["predictor"]["model"].get("name"):
        document["spec"]["predictor"]["model"].pop("name", None)
    if keda:
        document["spec"]["predictor"]["autoScaling"] = keda_autoscaling(service, settings)
        if document["spec"].get("explainer"):  # the class is the service's: KEDA without triggers for it
            document["spec"]["explainer"]["annotations"] = {AUTOSCALER_CLASS_ANNOTATION: "hpa"}
    return document


def _autoscaler_annotations(mode: ResolvedMode, settings: DeploySettings, runtime: str) -> dict[str, str]:
    if uses_keda(settings, mode.mode):
        return {AUTOSCALER_CLASS_ANNOTATION: KEDA_CLASS, **scrape_annotations(runtime)}
    if mode.mode == "standard":
        return {AUTOSCALER_CLASS_ANNOTATION: "hpa"}
    if settings.scale_metric in ("cpu", "memory"):
        return {KNATIVE_CLASS_ANNOTATION: KNATIVE_HPA_CLASS}
    return {}


def _max_replicas(mode: ResolvedMode, settings: DeploySettings) -> int | None:
    """Standard mode always gets a maximum: KServe's HPA takes an unset one as the minimum."""
    if mode.mode == "standard" and settings.max_replicas is None:
        return settings.min_replicas or 1
    return settings.max_replicas


def _explainer(service: str, model: ServedModel, settings: DeploySettings, tracking_uri: str | None, image: str) -> Any:
    from kserve import V1beta1ExplainerSpec
    from kubernetes.client import V1Container, V1ContainerPort, V1EnvVar, V1ResourceRequirements

    args = [model.pinned_uri, f"--name={service}", "--host=0.0.0.0", "--port=8080", f"--explainer={settings.explainer}"]
    container = V1Container(
        name="kserve-container",  # KServe's name for the container it routes to
        image=image,
        command=["nb2pipe", "serve"],
        args=args,
        env=[V1EnvVar(name="MLFLOW_TRACKING_URI", value=tracking_uri)] if tracking_uri else None,
        ports=[V1ContainerPort(container_port=8080, name="http1", protocol="TCP")],
        resources=V1ResourceRequirements(**EXPLAINER_RESOURCES),
    )
    return V1beta1ExplainerSpec(containers=[container], logger=None)


def is_cluster_storage(uri: str) -> bool:
    """Whether a cluster's storage initializer can fetch ``uri`` (not a path on this machine)."""
    return uri.split("://", 1)[0] in ("s3", "gs", "pvc", "hdfs", "webhdfs", "https", "http", "oci", "hf")
