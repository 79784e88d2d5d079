"""One state of truth per local endpoint: deploys of one service take turns (a lock), keep
its port, stop the server they replace, and record the live one; a failed deploy leaves no
record of a dead server; a server left unrecorded by a killed deploy is still reached."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle import endpoints
from nb2pipe.lifecycle.endpoints import EndpointError, read_endpoint, start_local, stop_endpoint
from nb2pipe.processes import free_port, is_alive, spawn, stop_group
from tests.support.served import pids_with_arguments

# answers 200 to any GET once it listens; its command line says "nb2pipe serve" as a real one does
FAKE_SERVER = """
import http.server, sys, time
port, delay = int(sys.argv[-1]), float(sys.argv[-2])
time.sleep(delay)  # loading a model takes a while
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Ready).serve_forever()
"""


def _servers_of(script: Path, service: str) -> list[int]:
    """PIDs of live fake servers of ``service`` (from /proc)."""
    return [pid for pid in pids_with_arguments(str(script).encode(), service.encode()) if is_alive(pid)]


@pytest.fixture
def fake_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``start_local`` starts the fake server (ready after 0.3 s; "--fail" exits at once) on a
    default port nothing else uses."""
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER, encoding="utf-8")

    def command(service: str, model_uri: str, host: str, port: int, *_: object) -> list[str]:
        if model_uri == "--fail":
            return [sys.executable, "-c", "raise SystemExit('cannot load the model')", "nb2pipe", "serve"]
        return [sys.executable, str(script), "nb2pipe", "serve", service, "0.3", str(port)]

    monkeypatch.setattr(endpoints, "serve_command", command)
    monkeypatch.setattr(endpoints, "DEFAULT_PORT", free_port())
    return script


@pytest.fixture
def store(tmp_path: Path):
    where = tmp_path / ".nb2pipe"
    yield where
    for service in ("svc", "other"):
        stop_endpoint(service, where)


def test_concurrent_deploys_leave_one_recorded_server_on_the_first_port(fake_serve: Path, store: Path):
    first = start_local("svc", "models:/m/1", DeploySettings(), store=store)
    results: list[object] = []

    def deploy() -> None:
        try:
            results.append(start_local("svc", "models:/m/2", DeploySettings(), store=store))
        except Exception as exc:  # collected: the assertion below names it
            results.append(exc)

    threads = [threading.Thread(target=deploy) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 5 and all(isinstance(r, endpoints.Endpoint) for r in results), results
    assert {r.url for r in results} == {first.url}  # type: ignore[attr-defined]
    (live,) = _servers_of(fake_serve, "svc")
    record = read_endpoint("svc", store)
    assert record is not None and record.pid == live and record.url == first.url and record.alive
    assert not (store / "endpoints" / "svc.pending").exists()
    assert stop_endpoint("svc", store) and _servers_of(fake_serve, "svc") == []
    assert read_endpoint("svc", store) is None


def test_concurrent_deploys_from_processes_take_turns(fake_serve: Path, store: Path, tmp_path: Path):
    """The lock holds across processes too (pipeline steps deploy from processes of their own)."""
    first = start_local("svc", "models:/m/1", DeploySettings(), store=store)
    program = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from nb2pipe.lifecycle import endpoints; from nb2pipe.ir import DeploySettings;"
        f"endpoints.serve_command = lambda s, m, h, p, *a: [sys.executable, {str(fake_serve)!r},"
        " 'nb2pipe', 'serve', s, '0.3', str(p)];"
        "print(endpoints.start_local('svc', 'models:/m/3', DeploySettings(), store=sys.argv[2]).url)"
    )
    deployers = [
        spawn([sys.executable, "-c", program, str(Path.cwd()), str(store)], log=tmp_path / f"deploy{i}.log")
        for i in range(3)
    ]
    for deployer in deployers:
        assert deployer.wait(120) == 0, (tmp_path / "deploy0.log").read_text()
    for i in range(3):
        assert (tmp_path / f"deploy{i}.log").read_text().strip() == first.url
    (live,) = _servers_of(fake_serve, "svc")
    record = read_endpoint("svc", store)
    assert record is not None and record.pid == live and record.url == first.url


def test_a_failed_deploy_stops_the_old_server_and_clears_the_record(fake_serve: Path, store: Path):
    old = start_local("svc", "models:/m/1", DeploySettings(), store=store)
    with pytest.raises(EndpointError, match="cannot load the model"):
        start_local("svc", "--fail", DeploySettings(), store=store, wait_seconds=20)
    assert not old.alive and _servers_of(fake_serve, "svc") == []
    assert read_endpoint("svc", store) is None and not (store / "endpoints" / "svc.pending").exists()
    # the next deploy is served at the same port again (nothing holds it)
    assert start_local("svc", "models:/m/1", DeploySettings(), store=store).url == old.url


def test_a_server_a_killed_deploy_left_unrecorded_is_stopped_by_the_next(fake_serve: Path, store: Path, tmp_path: Path):
    (store / "endpoints").mkdir(parents=True)
    port = free_port()
    orphan = spawn(
        [sys.executable, str(fake_serve), "nb2pipe", "serve", "svc", "0", str(port)], log=tmp_path / "orphan.log"
    )
    try:
        (store / "endpoints" / "svc.pending").write_text(str(orphan.pid), encoding="utf-8")
        assert not stop_endpoint("svc", store)  # nothing was recorded as running
        assert orphan.poll() is not None and not (store / "endpoints" / "svc.pending").exists()
    finally:
        stop_group(orphan)


def test_a_port_someone_else_holds_is_left_to_them(fake_serve: Path, store: Path):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", endpoints.DEFAULT_PORT))
        holder.listen()
        endpoint = start_local("svc", "models:/m/1", DeploySettings(), store=store)
    assert endpoint.port != endpoints.DEFAULT_PORT and endpoint.alive
    record = json.loads((store / "endpoints" / "svc.json").read_text(encoding="utf-8"))
    assert record["pid"] == endpoint.pid


@pytest.mark.slow
def test_concurrent_real_deploys_leave_one_nb2pipe_serve(tmp_path: Path, registered_model, monkeypatch):
    """Three real ``nb2pipe serve`` deploys of one service at once: one survives, recorded, on
    the first deploy's port, and it answers."""
    import urllib.request

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(endpoints, "DEFAULT_PORT", free_port())
    store = tmp_path / ".nb2pipe"

    def deploy(results: list[object]) -> None:
        try:
            results.append(
                start_local(
                    "cancer",
                    registered_model.model_uri,
                    DeploySettings(),
                    store=store,
                    notebook_uri=registered_model.tracking_uri,
                )
            )
        except Exception as exc:  # collected: the assertion below names it
            results.append(exc)

    try:
        first: list[object] = []
        deploy(first)
        results: list[object] = []
        threads = [threading.Thread(target=deploy, args=(results,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        assert all(isinstance(r, endpoints.Endpoint) for r in first + results), first + results
        url = first[0].url  # type: ignore[attr-defined]
        assert {r.url for r in results} == {url}  # type: ignore[attr-defined]
        record = read_endpoint("cancer", store)
        assert record is not None and record.alive and record.url == url
        assert [r.pid for r in first + results if r.alive] == [record.pid]  # type: ignore[attr-defined]
        serving = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _serves(p, str(store.parent)) and is_alive(int(p.name))
        ]
        assert serving == [record.pid]
        with urllib.request.urlopen(f"{url}/v2/models/cancer/ready", timeout=10) as response:
            assert response.status == 200
    finally:
        stop_endpoint("cancer", store)


def _serves(process: Path, folder: str) -> bool:
    """``process`` runs ``nb2pipe serve`` from ``folder`` (the store's parent)."""
    try:
        arguments = (process / "cmdline").read_bytes().split(b"\0")
        return b"serve" in arguments and b"nb2pipe" in arguments and str((process / "cwd").readlink()) == folder
    except OSError:
        return False
