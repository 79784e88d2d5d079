"""What a run shows in the panel: its HTML report (sandboxed), the failing cell, waiting
steps, a readable log and the notebook's run history. Run folders are made by hand (run.json
written as a run writes it) except in the one slow test that runs a pipeline."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fetch

import nb2pipe.editor.runs as runs_module
from nb2pipe.processes import spawn, stop_group
from nb2pipe.runners.state import RunState, StepState

NOTEBOOK = "parameters_metrics.ipynb"
Get = Callable[..., Awaitable[Any]]


@pytest.fixture
def get(http_server_client: Any, jp_base_url: str, jp_auth_header: dict[str, str]) -> Get:
    """``await get("nb2pipe/...")`` -> the tornado response (headers and bytes), never raising."""
    from jupyter_server.utils import url_path_join

    async def call(route: str, auth: bool = True) -> Any:
        return await http_server_client.fetch(
            url_path_join(jp_base_url, route),
            headers=dict(jp_auth_header) if auth else {},
            raise_error=False,
            follow_redirects=False,
        )

    return call


def _record(root: Path, run_id: str, status: str = "failed", started: float = 100.0, notebook: str = NOTEBOOK) -> Path:
    """A run folder as ``nb2pipe run`` leaves it: run.json, index.html, the steps' reports."""
    run_dir = root / ".nb2pipe" / "runs" / run_id
    run_dir.mkdir(parents=True)
    run = RunState(run_id, str(root / notebook), "parameters-metrics", {}, status=status)
    error = {"step": "fit", "message": "ValueError: bad", "traceback": "", "log": "fit/step.log", "cell": 5, "line": 3}
    run.steps = {
        "generate": StepState("generate", "generate", "succeeded", started=started, finished=started + 2),
        "fit": StepState("fit", "fit", status, started=started + 2, finished=started + 3, error=error),
    }
    run.save(run_dir)
    (run_dir / "index.html").write_text(f"<h1>{run_id}</h1><a href='generate/report.html'>report</a>", "utf-8")
    (run_dir / "generate").mkdir()
    (run_dir / "generate" / "report.html").write_text("<p>generate's outputs</p>", "utf-8")
    return run_dir


def _is_sandboxed_html(response: Any) -> bool:
    policy = response.headers["Content-Security-Policy"]
    return (
        response.headers["Content-Type"].startswith("text/html")
        and policy.split(";")[0].strip() == "sandbox"
        and "script-src" not in policy
        and response.headers["X-Content-Type-Options"] == "nosniff"
    )


async def test_the_report_of_a_kept_run_is_sandboxed_html(root: Path, get: Get) -> None:
    _record(root, "old-1")
    response = await get(f"nb2pipe/runs/old-1/report?path={NOTEBOOK}")
    assert response.code == 200 and response.body == b"<h1>old-1</h1><a href='generate/report.html'>report</a>"
    assert _is_sandboxed_html(response)
    step = await get(f"nb2pipe/runs/old-1/report?path={NOTEBOOK}&step=generate")
    assert step.code == 200 and step.body == b"<p>generate's outputs</p>" and _is_sandboxed_html(step)


async def test_no_report_yet_no_run_or_no_step_is_404_in_the_error_form(root: Path, fetch: Fetch) -> None:
    run_dir = _record(root, "old-1", status="running")
    (run_dir / "index.html").unlink()  # written when the run ends
    for route, message in [
        (f"nb2pipe/runs/old-1/report?path={NOTEBOOK}", "no report of run old-1 yet"),
        (f"nb2pipe/runs/old-1/report?path={NOTEBOOK}&step=fit", "no report of step 'fit'"),
        (f"nb2pipe/runs/old-1/report?path={NOTEBOOK}&step=nope", "has no step 'nope'"),
        (f"nb2pipe/runs/other/report?path={NOTEBOOK}", "no run 'other'"),
        ("nb2pipe/runs/old-1/report", "no run 'old-1' was started by this server"),
    ]:
        status, reply = await fetch("GET", route)
        assert status == 404 and message in reply["message"] and reply["diagnostics"] == [], route


async def test_a_report_never_leads_out_of_the_run_folder_or_the_root(root: Path, fetch: Fetch) -> None:
    run_dir = _record(root, "old-1")
    outside = root.parent / "outside"
    (outside / "secret.html").write_text("secret", "utf-8")
    (run_dir / "index.html").unlink()
    (run_dir / "index.html").symlink_to(outside / "secret.html")
    status, reply = await fetch("GET", f"nb2pipe/runs/old-1/report?path={NOTEBOOK}")
    assert status == 404 and "leads outside its run folder" in reply["message"]
    (root / "sub" / ".nb2pipe").symlink_to(outside, target_is_directory=True)
    status, reply = await fetch("GET", "nb2pipe/runs/old-1/report?path=sub/sklearn_train.ipynb")
    assert status == 403 and "secret" not in json.dumps(reply)
    for path in ("../x.ipynb", "linkdir/x.ipynb"):
        status, _ = await fetch("GET", f"nb2pipe/runs/old-1/report?path={path}")
        assert status == 403


async def test_the_new_routes_need_an_authenticated_user(root: Path, fetch: Fetch) -> None:
    _record(root, "old-1")
    for route in (f"nb2pipe/runs/old-1/report?path={NOTEBOOK}", f"nb2pipe/runs?path={NOTEBOOK}"):
        status, reply = await fetch("GET", route, auth=False)
        assert status in (401, 403) and set(reply) == {"message", "diagnostics"}
        status, _ = await fetch("GET", route, auth=False, headers={"Authorization": "token wrong"})
        assert status in (401, 403)


async def test_the_history_lists_the_notebooks_last_runs_newest_first(root: Path, fetch: Fetch) -> None:
    for index in range(22):
        _record(root, f"pm-{index:02}", status="succeeded", started=1000.0 + index)
    _record(root, "sklearn-1", started=5000.0, notebook="sklearn_train.ipynb")  # another notebook of the folder
    status, reply = await fetch("GET", f"nb2pipe/runs?path={NOTEBOOK}")
    assert status == 200 and len(reply["runs"]) == 20
    assert reply["runs"][0] == {"run_id": "pm-21", "status": "succeeded", "started": 1021.0, "finished": 1024.0}
    assert [run["run_id"] for run in reply["runs"]] == [f"pm-{index:02}" for index in range(21, 1, -1)]
    status, reply = await fetch("GET", "nb2pipe/runs?path=lifecycle.ipynb")
    assert status == 200 and reply == {"runs": []}
    for path, expected in [("", 404), ("nope.ipynb", 404), ("../x.ipynb", 403), ("linkdir/x.ipynb", 403)]:
        status, reply = await fetch("GET", f"nb2pipe/runs?path={path}")
        assert status == expected and set(reply) == {"message", "diagnostics"}, path


async def test_a_run_of_this_server_shows_waiting_steps_the_failing_cell_and_its_reports(
    root: Path, fetch: Fetch, get: Get, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[subprocess.Popen[bytes]] = []
    stop = tmp_path / "stop"

    def stand_in(command: list[str], *, log: Path, **_: object) -> subprocess.Popen[bytes]:
        """The run's process: lives until ``stop`` appears, writing a progress line."""
        wait = "import os, time\nprint('  generate: done', flush=True)\n"
        wait += f"while not os.path.exists({str(stop)!r}): time.sleep(0.05)"
        spawned.append(spawn([sys.executable, "-c", wait], log=log))
        return spawned[-1]

    monkeypatch.setattr(runs_module, "spawn", stand_in)
    try:
        status, started = await fetch("POST", "nb2pipe/runs", {"path": NOTEBOOK})
        assert status == 202 and started["failure"] is None
        run_id = started["run_id"]
        run_dir = root / ".nb2pipe" / "runs" / run_id
        run_dir.mkdir(parents=True)
        run = RunState(run_id, str(root / NOTEBOOK), "parameters-metrics", {})
        run.steps = {
            "generate": StepState("generate", "generate", "running", started=1.0),
            "fit": StepState("fit", "fit", "running", started=1.0, waiting=True),
        }
        run.save(run_dir)
        status, view = await fetch("GET", f"nb2pipe/runs/{run_id}")
        assert status == 200 and view["status"] == "running" and view["failure"] is None
        assert [(s["name"], s["status"], s["waiting"]) for s in view["steps"]] == [
            ("generate", "running", False),
            ("fit", "running", True),
        ]
        stop.touch()
        spawned[0].wait(10)
        _record(root / "again", run_id)  # the run's end as nb2pipe run records it, moved into place
        for name in ("run.json", "index.html"):
            (run_dir / name).write_bytes((root / "again" / ".nb2pipe" / "runs" / run_id / name).read_bytes())
        (run_dir / "generate").mkdir()
        (run_dir / "generate" / "report.html").write_text("<p>g</p>", "utf-8")
        status, view = await fetch("GET", f"nb2pipe/runs/{run_id}")
        assert view["status"] == "failed" and view["done"]
        assert view["failure"] == {"step": "fit", "cell": 5, "line": 3, "message": "ValueError: bad"}
        assert view["log"].rstrip().endswith("generate: done")
        # the overview, and a step's report by the relative link the overview holds
        for route, body in [(f"runs/{run_id}/report", b"<h1>"), (f"runs/{run_id}/generate/report.html", b"<p>g</p>")]:
            response = await get(f"nb2pipe/{route}")
            assert response.code == 200 and response.body.startswith(body) and _is_sandboxed_html(response)
        status, history = await fetch("GET", f"nb2pipe/runs?path={NOTEBOOK}")
        assert [(r["run_id"], r["status"]) for r in history["runs"]] == [(run_id, "failed")]
    finally:
        stop.touch()
        for process in spawned:
            stop_group(process)


@pytest.mark.slow
async def test_a_real_run_logs_progress_lines_and_keeps_a_report(root: Path, fetch: Fetch, get: Get) -> None:
    status, started = await fetch("POST", "nb2pipe/runs", {"path": NOTEBOOK, "parameters": {"noise": "not-a-number"}})
    assert status == 422  # refused before anything starts
    status, started = await fetch("POST", "nb2pipe/runs", {"path": NOTEBOOK})
    assert status == 202
    run_id = started["run_id"]
    deadline = time.monotonic() + 180
    view = started
    while not view["done"] and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        _, view = await fetch("GET", f"nb2pipe/runs/{run_id}")
    assert view["status"] == "succeeded", view["log"]
    log = (root / ".nb2pipe" / "logs" / f"{run_id}.log").read_text("utf-8")
    assert "  generate: done" in log and "  fit: done" in log and f"run {run_id} succeeded" in log
    assert not log.rstrip().endswith("}")  # readable text, not the JSON document of --json
    response = await get(f"nb2pipe/runs/{run_id}/report")
    assert response.code == 200 and run_id.encode() in response.body and _is_sandboxed_html(response)
    status, history = await fetch("GET", f"nb2pipe/runs?path={NOTEBOOK}")
    assert history["runs"][0]["run_id"] == run_id and history["runs"][0]["finished"] >= history["runs"][0]["started"]


async def test_hostile_paths_run_ids_and_steps_are_4xx_in_the_error_form(root: Path, fetch: Fetch) -> None:
    from urllib.parse import quote

    _record(root, "old-1")
    (root / "loop.ipynb").symlink_to("loop.ipynb")
    (root / "ping").symlink_to("pong")
    (root / "pong").symlink_to("ping")
    (root / "dir.ipynb").mkdir()
    paths = ["loop.ipynb", "ping/x.ipynb", "a" * 300 + ".ipynb", "/".join(["a" * 250] * 20) + ".ipynb", "\0"]
    paths += ["dir.ipynb", " ", ".ipynb", f"{NOTEBOOK}/x.ipynb", "~/x.ipynb", "ünï cødé 😀.ipynb", "/etc/passwd"]
    routes = [f"nb2pipe/runs?path={quote(path)}" for path in paths]
    routes += [f"nb2pipe/runs/old-1/report?path={quote(path)}" for path in paths]
    routes += [f"nb2pipe/runs/{run_id}/report?path={NOTEBOOK}" for run_id in ("a" * 300, "%00", "..%00", "%20", "..")]
    for step in ("../../../etc/passwd", "..", "", "\0", "fit/../generate"):
        routes.append(f"nb2pipe/runs/old-1/report?path={NOTEBOOK}&step={quote(step)}")
    routes += ["nb2pipe/runs/old-1/..%2F..%2Fx/report.html", "nb2pipe/runs/old-1/%00/report.html"]
    for route in routes:
        status, reply = await fetch("GET", route)
        assert 400 <= status < 500, (route[:120], status, reply)
        assert isinstance(reply, dict) and set(reply) == {"message", "diagnostics"}, (route[:120], reply)
