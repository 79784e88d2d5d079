"""Every route of API.md through a real Jupyter Server: answers, errors, authentication, XSRF
and paths that try to leave the root directory."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, Fetch
from jupyterlab_nb2pipe.routes import ROUTES, Nb2PipeHandler

#: (method, route pattern, a URL of it, a body that reaches the library)
TABLE: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("POST", "graph", "nb2pipe/graph", {"path": "sklearn_train.ipynb"}),
    ("POST", "compile", "nb2pipe/compile", {"path": "sklearn_train.ipynb"}),
    ("POST", "runs", "nb2pipe/runs", {"path": "parameters_metrics.ipynb"}),
    ("GET", "runs/([^/]+)", "nb2pipe/runs/no-such-run", None),
    ("GET", "runs/([^/]+)/report", "nb2pipe/runs/no-such-run/report", None),
    ("GET", "runs/([^/]+)/([^/]+)/report\\.html", "nb2pipe/runs/no-such-run/x/report.html", None),
    ("POST", "submit", "nb2pipe/submit", {"path": "sklearn_train.ipynb", "host": "http://127.0.0.1:9"}),
    ("POST", "deploy", "nb2pipe/deploy", {"path": "lifecycle.ipynb"}),
]
POSTS = [row for row in TABLE if row[0] == "POST"]
ESCAPES = ["../x.ipynb", "/etc/passwd", "a/../../x.ipynb", "link.ipynb", "linkdir/x.ipynb", "..\\x.ipynb", "x\0.ipynb"]


def _registered(app: Any) -> set[tuple[str, type]]:
    """The nb2pipe handlers the running server routes to, by their URL pattern."""
    found: set[tuple[str, type]] = set()

    def walk(router: Any) -> None:
        for rule in getattr(router, "rules", []):
            target = rule.target
            if isinstance(target, type) and issubclass(target, Nb2PipeHandler):
                found.add((rule.matcher.regex.pattern, target))
            elif hasattr(target, "rules"):
                walk(target)

    walk(app.default_router)
    walk(app.wildcard_router)
    return found


def test_the_table_covers_every_route(jp_web_app: Any) -> None:
    assert sorted(pattern for pattern, _ in ROUTES) == sorted(row[1] for row in TABLE)
    registered = _registered(jp_web_app)
    assert {handler for _, handler in registered} == {handler for _, handler in ROUTES}
    assert len(registered) == len(ROUTES)
    assert all("/nb2pipe/" in pattern for pattern, _ in registered)


# -- authentication, authorization, XSRF ------------------------------------------------------


async def _login(http_server_client: Any, jp_base_url: str, token: str) -> tuple[str, str]:
    """Log in the way a browser does: the token once in the URL, then cookies. Returns the
    Cookie header (login + _xsrf cookies) and the _xsrf value."""
    from jupyter_server.utils import url_path_join

    cookies: dict[str, str] = {}
    for url in (url_path_join(jp_base_url, "login"), url_path_join(jp_base_url, "api/status") + f"?token={token}"):
        response = await http_server_client.fetch(url, raise_error=False, follow_redirects=False)
        for header in response.headers.get_list("Set-Cookie"):
            name, _, rest = header.partition("=")
            cookies[name] = rest.split(";", 1)[0]
    assert "_xsrf" in cookies and any(name.startswith("username-") for name in cookies)
    return "; ".join(f"{k}={v}" for k, v in cookies.items()), cookies["_xsrf"]


@pytest.mark.parametrize(("method", "pattern", "url", "body"), TABLE, ids=[row[1] for row in TABLE])
async def test_unauthenticated_requests_are_refused(root: Path, fetch: Fetch, method, pattern, url, body) -> None:
    status, reply = await fetch(method, url, body, auth=False)
    assert status in (401, 403)
    assert set(reply) == {"message", "diagnostics"}
    status, _ = await fetch(method, url, body, auth=False, headers={"Authorization": "token wrong"})
    assert status in (401, 403)
    assert not (root / "sklearn_train.pipeline.yaml").exists() and not (root / ".nb2pipe").exists()


@pytest.mark.parametrize(("method", "pattern", "url", "body"), POSTS, ids=[row[1] for row in POSTS])
async def test_cookie_posts_need_the_xsrf_token(
    root: Path, fetch: Fetch, jp_serverapp: Any, http_server_client: Any, jp_base_url: str, method, pattern, url, body
) -> None:
    cookie, xsrf = await _login(http_server_client, jp_base_url, jp_serverapp.identity_provider.token)
    refused, reply = await fetch(method, url, {"path": "broken.ipynb"}, auth=False, headers={"Cookie": cookie})
    assert refused == 403 and "xsrf" in reply["message"].lower()
    # the same request with the token reaches nb2pipe, which refuses the notebook
    passed, reply = await fetch(
        method, url, {"path": "broken.ipynb"}, auth=False, headers={"Cookie": cookie, "X-XSRFToken": xsrf}
    )
    assert passed == 422 and reply["diagnostics"][0]["cell"] == 2
    # a valid XSRF pair without the login cookie is still not a user
    anonymous = f"_xsrf={xsrf}"
    status, _ = await fetch(method, url, body, auth=False, headers={"Cookie": anonymous, "X-XSRFToken": xsrf})
    assert status == 403


# -- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize(("method", "pattern", "url", "body"), POSTS, ids=[row[1] for row in POSTS])
async def test_paths_that_leave_the_root_are_refused(root: Path, fetch: Fetch, escape, method, pattern, url, body):
    status, reply = await fetch(method, url, {**(body or {}), "path": escape})
    assert status == 403, reply
    assert reply["diagnostics"] == []
    assert not (root.parent / "outside" / "x.pipeline.yaml").exists()


async def test_a_run_id_is_never_a_path(fetch: Fetch) -> None:
    for run_id in ("..%2F..%2Fetc", "..", "%2Fetc%2Fpasswd"):
        status, _ = await fetch("GET", f"nb2pipe/runs/{run_id}")
        assert status == 404


@pytest.mark.parametrize(("method", "pattern", "url", "body"), POSTS, ids=[row[1] for row in POSTS])
async def test_missing_notebooks_and_other_files_are_404(root: Path, fetch: Fetch, method, pattern, url, body):
    for path in ("nope.ipynb", "notes.txt", "sub"):
        status, reply = await fetch(method, url, {**(body or {}), "path": path})
        assert status == 404, (path, reply)


@pytest.mark.parametrize(("method", "pattern", "url", "body"), POSTS, ids=[row[1] for row in POSTS])
async def test_bad_bodies_are_400(root: Path, fetch: Fetch, method, pattern, url, body):
    for bad in (b"{not json", b"[1, 2]", {}, {"path": 3}, {"path": ["a.ipynb"]}):
        status, reply = await fetch(method, url, bad)
        assert status == 400, (bad, reply)
        assert reply["diagnostics"] == []


async def test_wrongly_typed_optional_fields_are_400(root: Path, fetch: Fetch) -> None:
    cases = [
        ("nb2pipe/graph", {"path": "sklearn_train.ipynb", "notebook": "text"}),
        ("nb2pipe/runs", {"path": "parameters_metrics.ipynb", "parameters": {"n_samples": 300}}),
        ("nb2pipe/runs", {"path": "parameters_metrics.ipynb", "parameters": ["n_samples=3"]}),
        ("nb2pipe/submit", {"path": "sklearn_train.ipynb", "host": 8080}),
        ("nb2pipe/deploy", {"path": "lifecycle.ipynb", "target": "moon"}),
    ]
    for url, body in cases:
        status, _ = await fetch("POST", url, body)
        assert status == 400, (url, body)


# -- compile errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "pattern", "url", "body"), POSTS, ids=[row[1] for row in POSTS])
async def test_compile_errors_are_422_with_the_cell(root: Path, fetch: Fetch, method, pattern, url, body):
    status, reply = await fetch(method, url, {**(body or {}), "path": "broken.ipynb"})
    assert status == 422
    (diagnostic,) = reply["diagnostics"]
    assert diagnostic["code"] == "bad-tag" and diagnostic["cell"] == 2 and diagnostic["severity"] == "error"
    assert "gpu:many" in diagnostic["message"]
    assert not (root / "broken.pipeline.yaml").exists()


async def test_posted_content_with_errors_is_422(root: Path, fetch: Fetch) -> None:
    from conftest import broken_notebook

    status, reply = await fetch("POST", "nb2pipe/graph", {"path": "sklearn_train.ipynb", "notebook": broken_notebook()})
    assert status == 422 and reply["diagnostics"][0]["cell"] == 2


# -- happy paths -------------------------------------------------------------------------------


async def test_graph_from_the_file(root: Path, fetch: Fetch) -> None:
    status, graph = await fetch("POST", "nb2pipe/graph", {"path": "sklearn_train.ipynb"})
    assert status == 200
    assert graph["notebook"] == "sklearn_train.ipynb" and graph["pipeline"] == "sklearn-train"
    assert [n["id"] for n in graph["nodes"]] == ["load_data", "preprocess", "train", "evaluate"]
    train = graph["nodes"][2]
    assert train["cells"] == [5] and train["resources"] == {"cpu": "1", "memory": "1Gi", "gpu": None, "gpu_type": None}
    edges = {(e["source"], e["target"]): (e["variables"], e["kind"]) for e in graph["edges"]}
    assert edges == {
        ("load_data", "preprocess"): (["df"], "data"),
        ("preprocess", "evaluate"): (["X_test", "y_test"], "data"),
        ("preprocess", "train"): (["X_train", "y_train"], "data"),
        ("train", "evaluate"): (["model"], "data"),
    }
    assert [p["name"] for p in graph["parameters"]] == ["n_estimators", "max_depth", "test_size", "seed"]
    assert set(graph["settings"]) == {"pipeline_name", "experiment", "image", "kfp_host", "mlflow_tracking_uri"}


async def test_graph_of_unsaved_content(root: Path, fetch: Fetch) -> None:
    content = json.loads((root / "sklearn_train.ipynb").read_text())
    content["cells"][5]["metadata"]["tags"] = ["step:fit", "gpu:2"]
    content["metadata"]["nb2pipe"] = {"kfp_host": "http://kfp.example:8080", "experiment_name": "nightly"}
    status, graph = await fetch("POST", "nb2pipe/graph", {"path": "sklearn_train.ipynb", "notebook": content})
    assert status == 200
    fit = next(n for n in graph["nodes"] if n["id"] == "fit")
    assert fit["resources"]["gpu"] == 2 and fit["resources"]["gpu_type"] == "nvidia.com/gpu"
    assert graph["settings"]["kfp_host"] == "http://kfp.example:8080" and graph["settings"]["experiment"] == "nightly"
    assert {"source": "fit", "target": "evaluate", "variables": ["model"], "kind": "data"} in graph["edges"]
    # a notebook not saved yet may name a path that does not exist (yet)
    status, _ = await fetch("POST", "nb2pipe/graph", {"path": "Untitled.ipynb", "notebook": content})
    assert status == 200


async def test_graph_of_the_lifecycle_tasks(root: Path, fetch: Fetch) -> None:
    status, graph = await fetch("POST", "nb2pipe/graph", {"path": "lifecycle.ipynb"})
    assert status == 200
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds["register-cancer-classifier"] == "register" and kinds["deploy-cancer"] == "deploy"
    assert {"source": "train", "target": "register-cancer-classifier", "variables": ["model"], "kind": "data"} in graph[
        "edges"
    ]


async def test_compile_writes_the_pipeline(root: Path, fetch: Fetch) -> None:
    from nb2pipe.compiler import compile_with_environment

    for path in ("sklearn_train.ipynb", "sub/sklearn_train.ipynb"):
        status, reply = await fetch("POST", "nb2pipe/compile", {"path": path})
        assert status == 200
        assert reply["output"] == path.replace(".ipynb", ".pipeline.yaml")
        written = (root / reply["output"]).read_text(encoding="utf-8")
        notebook = root / path
        expected = compile_with_environment(notebook.read_text(encoding="utf-8"), str(notebook)).yaml
        assert written == reply["yaml"] == expected
        assert [n["id"] for n in reply["graph"]["nodes"]] == ["load_data", "preprocess", "train", "evaluate"]
        assert reply["diagnostics"] == []


@pytest.mark.slow
async def test_a_background_run_succeeds(root: Path, fetch: Fetch) -> None:
    status, run = await fetch(
        "POST", "nb2pipe/runs", {"path": "parameters_metrics.ipynb", "parameters": {"n_samples": "300"}}
    )
    assert status == 202 and run["status"] == "starting" and run["done"] is False
    assert run["notebook"] == "parameters_metrics.ipynb"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, run = await fetch("GET", f"nb2pipe/runs/{run['run_id']}")
        assert status == 200
        if run["done"]:
            break
        await asyncio.sleep(0.5)
    assert run["status"] == "succeeded", run.get("log")
    assert [s["name"] for s in run["steps"]] == ["generate", "fit"]
    assert all(s["status"] == "succeeded" for s in run["steps"])
    assert set(run["metrics"]) >= {"mse", "r2"} and run["failures"] == [] and run["log"] is None
    state = json.loads((root / ".nb2pipe" / "runs" / run["run_id"] / "run.json").read_text())
    assert state["parameters"] == {"n_samples": 300}


async def test_a_run_with_a_bad_parameter_is_422(root: Path, fetch: Fetch) -> None:
    status, reply = await fetch("POST", "nb2pipe/runs", {"path": "parameters_metrics.ipynb", "parameters": {"x": "1"}})
    assert status == 422 and "no such parameter" in reply["message"]
    assert not (root / ".nb2pipe" / "runs").exists()


async def test_submit_to_the_recording_kfp_server(root: Path, fetch: Fetch) -> None:
    from tests.support.fake_kfp import FakeKfp
    from tests.support.loopback import LoopbackServer

    fake = FakeKfp()
    with LoopbackServer(fake) as server:
        status, reply = await fetch("POST", "nb2pipe/submit", {"path": "sklearn_train.ipynb", "host": server.url})
        assert status == 200, reply
        assert reply == {
            "run_id": "r-1",
            "run_url": f"{server.url}/#/runs/details/r-1",
            "pipeline_id": "p-1",
            "version_id": "p-1-v1",
            "experiment_id": "e-1",
        }
        # the notebook's own kfp_host, and its experiment when the request names none
        notebook = root / "lifecycle.ipynb"
        content = json.loads(notebook.read_text())
        content["metadata"]["nb2pipe"] = {"kfp_host": server.url, "experiment_name": "from-metadata"}
        notebook.write_text(json.dumps(content))
        status, reply = await fetch("POST", "nb2pipe/submit", {"path": "lifecycle.ipynb"})
        assert status == 200 and reply["run_id"] == "r-2"
    assert fake.experiments["e-1"]["display_name"] == "Default"
    assert fake.experiments["e-2"]["display_name"] == "from-metadata"
    assert [run["display_name"].split()[0] for run in fake.runs] == ["sklearn-train", "lifecycle"]


async def test_submit_without_any_host_is_422(root: Path, fetch: Fetch) -> None:
    status, reply = await fetch("POST", "nb2pipe/submit", {"path": "sklearn_train.ipynb"})
    assert status == 422 and "kfp_host" in reply["message"] and reply["diagnostics"] == []


async def test_deploy_needs_a_deploy_tag_and_a_champion(root: Path, fetch: Fetch) -> None:
    status, reply = await fetch("POST", "nb2pipe/deploy", {"path": "sklearn_train.ipynb"})
    assert status == 422 and "deploys no model" in reply["message"]
    for target in ("local", "cluster"):
        status, reply = await fetch("POST", "nb2pipe/deploy", {"path": "lifecycle.ipynb", "target": target})
        assert status == 422 and "no model is registered" in reply["message"]
    assert not (root / ".nb2pipe").exists()  # asking made no MLflow store


def test_examples_are_where_the_tests_expect_them() -> None:
    assert (EXAMPLES / "sklearn_train.ipynb").is_file()


async def test_submit_sends_the_parameters_typed_and_refuses_a_bad_one(root: Path, fetch: Fetch) -> None:
    from tests.support.fake_kfp import FakeKfp
    from tests.support.loopback import LoopbackServer

    fake = FakeKfp()
    with LoopbackServer(fake) as server:
        body = {"path": "sklearn_train.ipynb", "host": server.url, "parameters": {"n_estimators": "200"}}
        status, reply = await fetch("POST", "nb2pipe/submit", body)
        assert status == 200, reply
        bad = {**body, "parameters": {"n_estimators": "many"}}
        status, reply = await fetch("POST", "nb2pipe/submit", bad)
        assert status == 422 and "n_estimators" in reply["message"]
        status, reply = await fetch("POST", "nb2pipe/submit", {**body, "parameters": {"n_estimators": 200}})
        assert status == 400
    (run,) = fake.runs
    assert run["runtime_config"]["parameters"] == {"n_estimators": 200}
