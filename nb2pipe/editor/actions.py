"""The editor's buttons: compile, submit to Kubeflow Pipelines, deploy the champions.

Each is the library call the matching command makes (``nb2pipe compile``, ``nb2pipe submit``,
``nb2pipe deploy`` / a pipeline's deploy step), with its answer shaped for the panel. They
block (files, HTTP, MLflow, a server starting): the Jupyter routes run them in a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nb2pipe.compiler import plan_source, read_notebook_text
from nb2pipe.editor.graph import NotebookGraph, describe_plan, notebook_places
from nb2pipe.errors import Diagnostic, Nb2PipeError
from nb2pipe.lifecycle.calling import CallingInstructions, describe_calling
from nb2pipe.notebook.read import parse_notebook
from nb2pipe.runners.kubeflow import submit_notebook
from nb2pipe.store.registry import CHAMPION, prepare_store, quiet_mlflow, tracking_env_kept, tracking_uri

Target = Literal["local", "cluster"]
TARGETS: tuple[Target, ...] = ("local", "cluster")
#: mlflow's tracking URI is global to a process: one deploy at a time in the server
_MLFLOW_LOCK = threading.Lock()


class NothingToDeploy(Nb2PipeError):
    """The notebook has no ``deploy:`` cell, or no registered champion to serve yet."""


def shown_path(path: Path, root: Path | None) -> str:
    """``path`` as the panel names files: relative to the server's root, with ``/``."""
    if root is not None and path.resolve().is_relative_to(root.resolve()):
        return path.resolve().relative_to(root.resolve()).as_posix()
    return str(path)


@dataclass(frozen=True)
class EditorCompile:
    graph: NotebookGraph
    output: Path
    yaml: str
    warnings: tuple[Diagnostic, ...]

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        return {
            "graph": self.graph.to_json(),
            "output": shown_path(self.output, root),
            "yaml": self.yaml,
            "diagnostics": [d.to_json() for d in self.warnings],
        }


def compile_for_editor(notebook: Path, shown: str | None = None) -> EditorCompile:
    """``nb2pipe compile NB``: writes ``NB.pipeline.yaml`` beside it (all or nothing) and
    answers with the graph of the same plan. ``shown`` names the notebook in the graph."""
    from nb2pipe.compiler import compile_notebook, read_notebook_text

    path = Path(notebook)
    text = read_notebook_text(path)
    result = compile_notebook(path)
    parsed = parse_notebook(text, str(path))
    graph = describe_plan(result.compiled.plan, parsed.metadata, shown or path.name, places=notebook_places(parsed))
    return EditorCompile(graph, result.output, result.compiled.yaml, result.compiled.warnings)


def submit_for_editor(
    notebook: Path,
    host: str | None = None,
    experiment: str | None = None,
    parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``nb2pipe submit NB``: the host defaults to ``metadata.nb2pipe.kfp_host``, and neither
    is an :class:`Nb2PipeError` that says where to set one. ``parameters``: name -> value as
    typed, checked against the notebook's parameters as ``--param`` is."""
    assignments = [f"{name}={value}" for name, value in (parameters or {}).items()]
    submission = submit_notebook(notebook, host=host or None, experiment=experiment or None, parameters=assignments)
    return {
        "run_id": submission.run_id,
        "run_url": submission.url,
        "pipeline_id": submission.pipeline_id,
        "version_id": submission.version_id,
        "experiment_id": submission.experiment_id,
    }


@dataclass(frozen=True)
class Deployed:
    service: str
    model_uri: str
    target: Target
    url: str | None
    #: how to call it: paths, input schema, a curl of one real row
    call: CallingInstructions | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "model_uri": self.model_uri,
            "target": self.target,
            "url": self.url,
            "call": self.call.to_json() if self.call else None,
        }


def deploy_champions(notebook: Path, target: Target = "local") -> tuple[Deployed, ...]:
    """Serve the champion of every model the notebook registers and deploys (``register:``
    + ``deploy:``), as its pipeline's deploy step would: locally an ``nb2pipe serve`` process
    per service (the MLflow store and endpoints of ``.nb2pipe/`` beside the notebook), on the
    cluster an InferenceService each. Nothing starts unless every champion exists."""

    if target not in TARGETS:
        raise Nb2PipeError(f"deploy target {target!r}: choose local or cluster")
    path = Path(notebook).resolve()
    plan = plan_source(read_notebook_text(path), str(path))
    wanted = [task for task in plan.lifecycle if task.deployment is not None]
    if not wanted:
        raise NothingToDeploy(
            f"{path.name} deploys no model: tag the step that trains it register:MODEL_NAME, "
            "and a cell of that step deploy:SERVICE"
        )
    store = path.parent / ".nb2pipe"
    models = {task.registration.model_name: f"models:/{task.registration.model_name}@champion" for task in wanted}

    with _MLFLOW_LOCK, tracking_env_kept():
        _require_champions(list(models), store, plan.mlflow_tracking_uri)
        deployed = []
        for task in wanted:
            assert task.deployment is not None
            service, settings = task.deployment.service, task.deployment.settings
            uri = models[task.registration.model_name]
            url: str | None
            if target == "local":
                from nb2pipe.lifecycle.endpoints import start_local

                url = start_local(service, uri, settings, store=store, notebook_uri=plan.mlflow_tracking_uri).url
            else:
                from nb2pipe.lifecycle.deploy import deploy_model

                result = deploy_model(uri, service, settings, store=store, notebook_uri=plan.mlflow_tracking_uri)
                url = result.applied.url if result.applied else None
            call = describe_calling(service, url, uri, store=store, notebook_uri=plan.mlflow_tracking_uri)
            deployed.append(Deployed(service, uri, target, url, call))
    return tuple(deployed)


def _require_champions(names: list[str], store: Path, notebook_uri: str | None) -> None:
    """Every model has a version with alias ``champion``. A local store that was never made
    means nothing was registered: said without importing MLflow (or creating the store)."""

    uri = tracking_uri(store, notebook_uri)
    hint = "run the notebook (its register task makes the first version champion), then deploy"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise NothingToDeploy(f"no model is registered yet ({uri} does not exist): {hint}")
    quiet_mlflow()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    prepare_store(uri)  # a run may still be creating this store's tables
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    missing = []
    for name in names:
        try:
            client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            missing.append(name)
    if missing:
        raise NothingToDeploy(f"no champion of {', '.join(missing)} is registered in {uri}: {hint}")


def deployments_json(deployed: tuple[Deployed, ...]) -> Mapping[str, Any]:
    return {"deployments": [d.to_json() for d in deployed]}
