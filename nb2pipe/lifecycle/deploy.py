"""``nb2pipe deploy``: an MLflow model -> a KServe InferenceService, written or applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import write_all_or_nothing
from nb2pipe.ir import DeploySettings, deploy_problems, is_service_name
from nb2pipe.lifecycle.cluster import apply_inference_service
from nb2pipe.lifecycle.inference_service import (
    SERVER_IMAGE,
    SERVER_IMAGE_ENV,
    ServedModel,
    inference_service,
    is_cluster_storage,
)
from nb2pipe.store.registry import resolve_model, tracking_uri


@dataclass(frozen=True)
class Deployment:
    resource: dict[str, Any]
    yaml: str
    warnings: tuple[str, ...]
    applied: Any = None  # cluster.Applied when applied
    written: Path | None = None


def check_request(service: str, settings: DeploySettings) -> None:
    if not is_service_name(service):
        raise Nb2PipeError(
            f"{service!r} is not a valid service name: use lowercase letters, digits and '-', "
            "starting with a letter, at most 63 characters"
        )
    found = deploy_problems(settings)
    if found:
        raise Nb2PipeError("; ".join(found))


def render(
    model_uri: str,
    service: str,
    settings: DeploySettings,
    *,
    store: str | Path | None = None,
    notebook_uri: str | None = None,
) -> Deployment:
    """Resolve the model and build its InferenceService; nothing is applied. ``store`` and
    ``notebook_uri`` choose the tracking store as :func:`nb2pipe.store.registry.tracking_uri` does."""
    import os

    import yaml

    check_request(service, settings)
    source = resolve_model(model_uri, store, notebook_uri)
    served = ServedModel(model_uri, source.flavor, source.storage_uri, source.version, source.name)
    tracking = tracking_uri(store, notebook_uri)
    image = os.environ.get(SERVER_IMAGE_ENV) or SERVER_IMAGE
    resource = inference_service(service, served, settings, tracking_uri=tracking, server_image=image)
    warnings = []
    if settings.explainer and not tracking.startswith(("http://", "https://")):
        warnings.append(
            f"the explainer loads the model and its training data from MLflow, but the tracking URI {tracking} is "
            "on this machine; set MLFLOW_TRACKING_URI to an MLflow server the cluster reaches"
        )
    if not is_cluster_storage(source.storage_uri):
        warnings.append(
            f"storageUri {source.storage_uri} is on this machine; a cluster cannot fetch it. Track models on an "
            "MLflow server whose artifact store is S3, GCS or a PVC (MLFLOW_TRACKING_URI), or edit storageUri"
        )
    text = yaml.safe_dump(resource, sort_keys=False)
    return Deployment(resource, text, tuple(warnings))


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
    from dataclasses import replace

    deployment = render(model_uri, service, settings, store=store, notebook_uri=notebook_uri)
    if output is not None:
        path = Path(output)
        write_all_or_nothing({path: deployment.yaml})
        deployment = replace(deployment, written=path)
    if dry_run:
        return deployment

    return replace(deployment, applied=apply_inference_service(deployment.resource, wait_seconds=wait_seconds))
