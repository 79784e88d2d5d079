"""An in-memory stand-in for the Kubernetes API server's InferenceService endpoints (KServe's
serving.kserve.io/v1beta1), enough for what `nb2pipe deploy` sends through the kubernetes
client. It keeps the services per namespace and name, answers as the API server does (Status
bodies, 404, 409, RFC 7386 merge patches) and reports readiness by a policy the test sets.
Served by LoopbackServer, which records every request for the tests. Also: a model that
``render`` resolves without MLflow (:func:`offline_model`)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.loopback import LoopbackServer, Recorded

API = "/apis/serving.kserve.io/v1beta1"
RESOURCE = "inferenceservices.serving.kserve.io"
MERGE_PATCH = "application/merge-patch+json"
_ROUTE = re.compile(rf"^{re.escape(API)}/namespaces/(?P<namespace>[^/]+)/inferenceservices(?:/(?P<name>[^/]+))?$")
GRAPH_API = "/apis/serving.kserve.io/v1alpha1"
_GRAPH_ROUTE = re.compile(rf"^{re.escape(GRAPH_API)}/namespaces/(?P<namespace>[^/]+)/inferencegraphs/(?P<name>[^/]+)$")

Key = tuple[str, str]  # (namespace, name)


def status_body(code: int, message: str, reason: str | None = None) -> dict[str, Any]:
    """A Kubernetes ``Status`` failure, as the API server answers any refused request."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or HTTPStatus(code).phrase.replace(" ", ""),
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies application/merge-patch+json: null deletes a key."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def service_url(namespace: str, name: str) -> str:
    return f"http://{name}.{namespace}.example.com"


@dataclass
class FakeKServe:
    """``ready_after_reads``: how many reads of a stored service say it is not Ready (with
    ``not_ready_message``) before reads say it is; None: it never gets Ready.
    ``refuse_create_with`` / ``fail_reads_with``: (status code, message) the API server answers
    every create / every read with instead."""

    services: dict[Key, dict[str, Any]] = field(default_factory=dict)
    ready_after_reads: int | None = 0
    not_ready_message: str = ""
    refuse_create_with: tuple[int, str] | None = None
    fail_reads_with: tuple[int, str] | None = None
    reads: dict[Key, int] = field(default_factory=dict)
    #: the mode each service was created in, as KServe records it in status.deploymentMode
    modes: dict[Key, str] = field(default_factory=dict)
    #: InferenceGraphs (read and merge-patched only: nb2pipe autoscale re-weights a Splitter)
    graphs: dict[Key, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def store(self, resource: dict[str, Any], namespace: str) -> dict[str, Any]:
        """Put a service in place, as an earlier deployment left it."""
        stored = {**resource, "metadata": {**resource["metadata"], "namespace": namespace}}
        self.services[namespace, stored["metadata"]["name"]] = stored
        self.modes.setdefault((namespace, stored["metadata"]["name"]), _mode_of(stored) or "Knative")
        return stored

    def service(self, namespace: str, name: str) -> dict[str, Any]:
        return self.services[namespace, name]

    def __call__(self, request: Recorded) -> tuple[int, Any]:
        graph = _GRAPH_ROUTE.match(request.path)
        if graph:
            with self._lock:
                return self._graph(graph["namespace"], graph["name"], request)
        route = _ROUTE.match(request.path)
        if not route:
            return 404, status_body(404, "the server could not find the requested resource")
        namespace, name = route["namespace"], route["name"]
        with self._lock:
            if name is None and request.method == "POST":
                return self._create(namespace, request.json())
            if name is not None and request.method == "GET":
                return self._read(namespace, name)
            if name is not None and request.method == "PATCH":
                return self._patch(namespace, name, request)
            if name is not None and request.method == "PUT":
                return self._replace(namespace, name, request.json())
        return 405, status_body(405, f"the server does not allow {request.method} on {request.path}")

    def _create(self, namespace: str, body: dict[str, Any]) -> tuple[int, Any]:
        if self.refuse_create_with:
            code, message = self.refuse_create_with
            return code, status_body(code, message)
        metadata = body.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            return 422, status_body(422, f"{RESOURCE} is invalid: metadata.name: Required value", "Invalid")
        if metadata.get("namespace", namespace) != namespace:
            return 400, status_body(400, "the namespace of the provided object does not match the request")
        if (namespace, name) in self.services:
            return 409, status_body(409, f'{RESOURCE} "{name}" already exists', "AlreadyExists")
        stored = self.store(body, namespace)
        return 201, stored

    def _read(self, namespace: str, name: str) -> tuple[int, Any]:
        if self.fail_reads_with:
            code, message = self.fail_reads_with
            return code, status_body(code, message)
        if (namespace, name) not in self.services:
            return self._missing(name)
        reads = self.reads[namespace, name] = self.reads.get((namespace, name), 0) + 1
        ready = self.ready_after_reads is not None and reads > self.ready_after_reads
        condition = {"type": "Ready", "status": "True" if ready else "False"}
        if not ready and self.not_ready_message:
            condition["message"] = self.not_ready_message
        status = {
            "url": service_url(namespace, name),
            "conditions": [condition],
            "deploymentMode": self.modes[namespace, name],
        }
        return 200, {**self.services[namespace, name], "status": status}

    def _patch(self, namespace: str, name: str, request: Recorded) -> tuple[int, Any]:
        content_type = request.headers.get("content-type", "")
        if content_type != MERGE_PATCH:
            # strategic merge patches do not apply to custom resources; JSON patches are not faked
            return 415, status_body(415, f"the body of the request was in an unknown format - {content_type}")
        if (namespace, name) not in self.services:
            return self._missing(name)
        patched = merge_patch(self.services[namespace, name], request.json())
        wanted, recorded = _mode_of(patched), self.modes[namespace, name]
        if wanted is not None and wanted != recorded:  # KServe's validating webhook, ValidateUpdate
            message = f"update rejected: deploymentMode cannot be changed from '{recorded}' to '{wanted}'"
            return 400, status_body(
                400,
                f'admission webhook "inferenceservice.kserve-webhook-server.validator" denied the request: {message}',
            )
        self.services[namespace, name] = patched
        return 200, patched

    def _replace(self, namespace: str, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        if (namespace, name) not in self.services:
            return self._missing(name)
        return 200, self.store(body, namespace)

    def _graph(self, namespace: str, name: str, request: Recorded) -> tuple[int, Any]:
        if (namespace, name) not in self.graphs:
            return 404, status_body(404, f'inferencegraphs.serving.kserve.io "{name}" not found')
        if request.method == "GET":
            return 200, self.graphs[namespace, name]
        if request.method == "PATCH" and request.headers.get("content-type", "") == MERGE_PATCH:
            self.graphs[namespace, name] = merge_patch(self.graphs[namespace, name], request.json())
            return 200, self.graphs[namespace, name]
        return 405, status_body(405, f"the fake does not allow {request.method} on {request.path}")

    @staticmethod
    def _missing(name: str) -> tuple[int, Any]:
        return 404, status_body(404, f'{RESOURCE} "{name}" not found')


def _mode_of(resource: dict[str, Any]) -> str | None:
    mode = (resource.get("metadata", {}).get("annotations") or {}).get("serving.kserve.io/deploymentMode")
    return {"Serverless": "Knative", "RawDeployment": "Standard"}.get(mode, mode)


@pytest.fixture
def kserve_server() -> Any:
    """A recording Kubernetes API server for InferenceServices on 127.0.0.1; ``kserve_server.fake``
    holds the services and the readiness and refusal settings."""
    fake = FakeKServe()
    with LoopbackServer(fake) as server:
        server.fake = fake
        yield server


def use_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Point both KUBECONFIG and the kubernetes client at ``path`` (and not at a pod's service
    account): the client reads KUBECONFIG once, when ``kubernetes.config`` is first imported."""
    from kubernetes.config import kube_config

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def point_kubeconfig_at(monkeypatch: pytest.MonkeyPatch, path: Path, server_url: str, token: str) -> Path:
    """Write a kubeconfig at ``path`` whose context (namespace ``models``) is the server at
    ``server_url`` with a bearer ``token``, and use it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "loop", "cluster": {"server": server_url}}],
        "users": [{"name": "tester", "user": {"token": token}}],
        "contexts": [{"name": "loop", "context": {"cluster": "loop", "user": "tester", "namespace": "models"}}],
        "current-context": "loop",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    use_kubeconfig(monkeypatch, path)
    return path


def sklearn_model_folder(folder: Path) -> Path:
    """A folder as KServe's sklearn server loads it: one fitted model in ``model.joblib``."""
    import joblib
    from sklearn.dummy import DummyClassifier

    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(DummyClassifier().fit([[0.0], [1.0]], [0, 1]), folder / "model.joblib")
    return folder


def offline_model(monkeypatch: pytest.MonkeyPatch, folder: Path, version: str = "1") -> None:
    """``render`` without MLflow: every model URI resolves to version ``version`` of the registered
    sklearn model ``cancer`` (files in ``folder``, a cluster fetches them from S3)."""
    from nb2pipe.lifecycle import deploy
    from nb2pipe.store.registry import ModelSource

    def resolve(uri: str, store: Any, notebook: Any) -> ModelSource:
        storage = f"s3://models/cancer/{version}"
        return ModelSource(uri, folder, ("python_function", "sklearn"), storage, "cancer", version)

    monkeypatch.setattr(deploy, "resolve_model", resolve)
    monkeypatch.setattr(deploy, "tracking_uri", lambda store, notebook: "http://mlflow.example")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sklearn_model_folder(tmp_path_factory.mktemp("model"))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, model_folder: Path, tmp_path: Path) -> None:
    """render() without MLflow and without a cluster (no kubeconfig)."""
    offline_model(monkeypatch, model_folder)
    use_kubeconfig(monkeypatch, tmp_path / "missing" / "config")
    monkeypatch.setenv("HOME", str(tmp_path))
