"""An in-memory stand-in for the Kubeflow Pipelines v2beta1 REST API, enough for what
`nb2pipe submit` sends through kfp.Client. It records every request for the tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.loopback import LoopbackServer, Recorded

API = "/apis/v2beta1"


def _name_filter(request: Recorded) -> str | None:
    raw = request.query.get("filter", [None])[0]
    if not raw:
        return None
    for predicate in json.loads(raw).get("predicates", []):
        if predicate.get("key") in ("display_name", "name"):
            return predicate.get("string_value") or predicate.get("stringValue")
    return None


@dataclass
class FakeKfp:
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    recurring: list[dict[str, Any]] = field(default_factory=list)
    fail_runs_with: tuple[int, str] | None = None

    def __call__(self, request: Recorded) -> tuple[int, Any]:
        path, method = request.path, request.method
        if path == f"{API}/healthz":
            return 200, {"multi_user": False}
        if path == f"{API}/pipelines" and method == "GET":
            name = _name_filter(request)
            found = [p for p in self.pipelines.values() if name is None or p["display_name"] == name]
            return 200, {"pipelines": found or None, "total_size": len(found)}
        if path == f"{API}/pipelines/upload" and method == "POST":
            name = request.query["name"][0]
            pipeline = {
                "pipeline_id": f"p-{len(self.pipelines) + 1}",
                "display_name": name,
                "created_at": "2026-11-23T00:00:00Z",
            }
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            self._add_version(pipeline["pipeline_id"], name)
            return 200, pipeline
        if path == f"{API}/pipelines/upload_version" and method == "POST":
            pipeline_id = request.query["pipelineid"][0]
            return 200, self._add_version(pipeline_id, request.query["name"][0])
        if path.startswith(f"{API}/pipelines/") and path.endswith("/versions") and method == "GET":
            pipeline_id = path.split("/")[4]
            newest = sorted(self.versions.get(pipeline_id, []), key=lambda v: v["created_at"], reverse=True)
            return 200, {"pipeline_versions": newest, "total_size": len(newest)}
        if path == f"{API}/experiments" and method == "GET":
            name = _name_filter(request)
            found = [e for e in self.experiments.values() if e["display_name"] == name]
            return 200, {"experiments": found or None, "total_size": len(found)}
        if path == f"{API}/experiments" and method == "POST":
            experiment = {**request.json(), "experiment_id": f"e-{len(self.experiments) + 1}"}
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if path == f"{API}/runs" and method == "POST":
            if self.fail_runs_with:
                status, message = self.fail_runs_with
                return status, {"error": message, "message": message, "code": 13}
            run = {**request.json(), "run_id": f"r-{len(self.runs) + 1}", "state": "PENDING"}
            self.runs.append(run)
            return 200, run
        if path == f"{API}/recurringruns" and method == "POST":
            job = {**request.json(), "recurring_run_id": f"rr-{len(self.recurring) + 1}"}
            self.recurring.append(job)
            return 200, job
        return 404, {"error": f"no route {method} {path}", "code": 5}

    def _add_version(self, pipeline_id: str, name: str) -> dict[str, Any]:
        versions = self.versions.setdefault(pipeline_id, [])
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": f"{pipeline_id}-v{len(versions) + 1}",
            "display_name": name,
            "created_at": f"2026-11-23T00:00:{len(versions):02d}Z",
        }
        versions.append(version)
        return version


@pytest.fixture
def kfp_server() -> Any:
    """A recording KFP API server on 127.0.0.1; ``kfp_server.fake`` holds what it was sent."""
    fake = FakeKfp()
    with LoopbackServer(fake) as server:
        server.fake = fake
        yield server
