"""``nb2pipe deploy``: an MLflow model -> a KServe InferenceService, written or applied.

The deployment mode is resolved first (given, else the cluster's default, else Knative),
the settings are checked against it, and the built resource against the rules KServe's
admission webhook and reconcilers apply (:mod:`nb2pipe.lifecycle.kserve_rules`); the
result says in one line per setting what KServe will do with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nb2pipe.deploy_checks import deploy_problems
from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import write_all_or_nothing
from nb2pipe.ir import DeploySettings, is_service_name
from nb2pipe.lifecycle import kserve_behaviour, kserve_rules
from nb2pipe.lifecycle.cluster import apply_inference_service, current_namespace, standard_rollout
from nb2pipe.lifecycle.deploy_mode import ResolvedMode, resolve_mode
from nb2pipe.lifecycle.inference_service import (
    SERVER_IMAGE,
    SERVER_IMAGE_ENV,
    ServedModel,
    inference_service,
    is_cluster_storage,
    runtime_for,
    served_storage,
)
from nb2pipe.lifecycle.runtimes import ServingChoice
from nb2pipe.lifecycle.standard_scaling import Rollout, canary_name, uses_keda
from nb2pipe.store.registry import ModelSource, resolve_model, tracking_uri
from nb2pipe.store.serving_layout import check_layout


@dataclass(frozen=True)
class Deployment:
    resource: dict[str, Any]
    yaml: str
    warnings: tuple[str, ...]
    applied: Any = None  # cluster.Applied when applied
    written: Path | None = None
    mode: ResolvedMode | None = None
    #: what KServe will do with each setting, one line each (kserve_behaviour.effective_behaviour)
    behaviour: tuple[str, ...] = ()
    #: the server chosen for the model, and why (runtimes.choose_runtime)
    runtime: ServingChoice | None = None


def check_request(service: str, settings: DeploySettings) -> None:
    if not is_service_name(service):
        raise Nb2PipeError(
            f"{service!r} is not a valid service name: use lowercase letters, digits and '-', "
            "starting with a letter, at most 63 characters"
        )
    found = deploy_problems(settings)
    if found:
        raise Nb2PipeError("; ".join(found))


def check_mode(settings: DeploySettings, mode: ResolvedMode) -> None:
    """The settings' problems in a mode the user did not give (the cluster's, or assumed)."""
    if settings.mode == mode.mode:
        return  # check_request saw them
    found = deploy_problems(replace(settings, mode=mode.mode))
    if found:
        raise Nb2PipeError(f"{mode.describe()}: {'; '.join(found)}")


def admitted(resource: dict[str, Any], mode: ResolvedMode | None = None, pending: str | None = None) -> tuple[str, ...]:
    """What KServe will do with ``resource``, one line per setting; refused, with every reason,
    when its webhook would reject it or a reconciler silently ignore part of it. ``mode``: as
    resolved (the cluster's ingress setting, for canary weights); ``pending``: a canary not written."""
    found = kserve_rules.admission_problems(resource)
    if found:
        name = resource["metadata"]["name"]
        raise Nb2PipeError(f"KServe would not serve InferenceService {name} as asked: {'; '.join(found)}")
    gateway_api = mode.gateway_api if mode else None
    return tuple(kserve_behaviour.effective_behaviour(resource, gateway_api=gateway_api, pending_canary=pending))


def check_served_layout(source: ModelSource, runtime: ServingChoice) -> None:
    """Refuse a model whose files the chosen KServe server would not load (checked on the local
    copy, with the server's own listing rules and loader)."""
    if runtime.layout_format is None:
        return
    folder = source.local_path / runtime.storage_path if runtime.storage_path else source.local_path
    found = check_layout(folder, runtime.layout_format)
    if found:
        again = " (or register it again: nb2pipe keeps a kserve/ copy of xgboost and lightgbm models)"
        raise Nb2PipeError(
            f"{runtime.runtime} would not load {source.uri}: {'; '.join(found)}; deploy with runtime nb2pipe"
            + (again if runtime.storage_path else "")
        )


def render(
    model_uri: str,
    service: str,
    settings: DeploySettings,
    *,
    store: str | Path | None = None,
    notebook_uri: str | None = None,
    mode: ResolvedMode | None = None,
) -> Deployment:
    """Resolve the model and build its InferenceService; nothing is applied. ``store`` and
    ``notebook_uri`` choose the tracking store as :func:`nb2pipe.store.registry.tracking_uri` does;
    ``mode``: the deployment mode already resolved (default: resolved here)."""
    import os

    import yaml

    check_request(service, settings)
    resolved = mode or resolve_mode(settings.mode)
    check_mode(settings, resolved)
    if uses_keda(settings, resolved.mode) and settings.namespace is None:
        # KEDA's query selects the service's namespace: name the one applying picks (a pipeline step's pod's,
        # else the kubeconfig's) in the resource too, so that the query and the service cannot part
        settings = replace(settings, namespace=current_namespace())
    source = resolve_model(model_uri, store, notebook_uri)
    served = ServedModel(
        model_uri, source.flavor, source.storage_uri, source.version, source.name, source.library_versions
    )
    runtime = runtime_for(served, settings)
    check_served_layout(source, runtime)
    tracking = tracking_uri(store, notebook_uri)
    image = os.environ.get(SERVER_IMAGE_ENV) or SERVER_IMAGE
    resource = inference_service(service, served, settings, tracking_uri=tracking, server_image=image, mode=resolved)
    rollout = Rollout(resource)  # Standard mode: a canary or promotion against the running service
    if resolved.mode == "standard":
        rollout = standard_rollout(resource, settings.canary_percent, canary_name(source.version, source.storage_uri))
    resource = rollout.resource
    behaviour = admitted(resource, resolved, rollout.pending)
    warnings = [resolved.warning()] if resolved.assumed else []
    warnings += runtime.warnings
    warnings += rollout.notes
    if settings.explainer and not tracking.startswith(("http://", "https://")):
        warnings.append(
            f"the explainer loads the model and its training data from MLflow, but the tracking URI {tracking} is "
            "on this machine; set MLFLOW_TRACKING_URI to an MLflow server the cluster reaches"
        )
    if not is_cluster_storage(source.storage_uri):
        warnings.append(
            f"storageUri {served_storage(served, runtime)} is on this machine; a cluster cannot fetch it. "
            "Track models on an MLflow server whose artifact store is S3, GCS or a PVC (MLFLOW_TRACKING_URI), "
            "or edit storageUri"
        )
    text = yaml.safe_dump(resource, sort_keys=False)
    return Deployment(resource, text, tuple(warnings), mode=resolved, behaviour=behaviour, runtime=runtime)


def deploy_model(
    model_uri: str,
    service: str,
    settings: DeploySettings,
    *,
    dry_run: bool = False,
    output: str | Path | None = None,
    wait_seconds: float = 300,
    store: str | Path | None = None,
    notebook_uri: str | None = None,
) -> Deployment:
    """Build the InferenceService; write it to ``output`` and/or apply it (unless dry run)."""
    deployment = render(model_uri, service, settings, store=store, notebook_uri=notebook_uri)
    if output is not None:
        path = Path(output)
        write_all_or_nothing({path: deployment.yaml})
        deployment = replace(deployment, written=path)
    if dry_run:
        return deployment

    return replace(deployment, applied=apply_inference_service(deployment.resource, wait_seconds=wait_seconds))
