"""Local endpoints: ``nb2pipe serve`` processes started in the background by a pipeline's
deploy step on the embedded default, one per service, recorded in
``.nb2pipe/endpoints/SERVICE.json`` (pid, url, model) so later runs replace them and
``nb2pipe endpoints`` lists or stops them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DeploySettings
from nb2pipe.processes import free_port, http_ready, is_alive, port_is_free, spawn, stop_group, wait_until
from nb2pipe.store.registry import QUIET_MLFLOW, STORE_ENV, TRACKING_ENV, local_store, tracking_uri

DEFAULT_PORT = 8080


class EndpointError(Nb2PipeError):
    """A local endpoint did not start or could not be stopped."""


@dataclass(frozen=True)
class Endpoint:
    service: str
    url: str
    pid: int
    model_uri: str
    log: str
    payloads: str | None = None
    started: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def alive(self) -> bool:
        return _is_our_server(self.pid)


def endpoints_dir(store: str | Path | None = None) -> Path:
    return local_store(store) / "endpoints"


def start_local(
    service: str,
    model_uri: str,
    settings: DeploySettings,
    store: str | Path | None = None,
    host: str = "127.0.0.1",
    wait_seconds: float | None = None,
    notebook_uri: str | None = None,
) -> Endpoint:
    """Serve ``model_uri`` as ``service`` in a background process, replacing an older one.
    The server reads the tracking store of :func:`~nb2pipe.store.registry.tracking_uri`."""
    folder = endpoints_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    previous = read_endpoint(service, store)
    preferred = settings.port or DEFAULT_PORT
    if previous is not None:
        stop_endpoint(service, store)
        preferred = settings.port or int(previous.url.rsplit(":", 1)[1])
    port = preferred if port_is_free(host, preferred) else free_port(host)
    log = folder / f"{service}.log"
    payloads = str(local_store(store) / "payloads" / service) if settings.monitor else None
    command = [sys.executable, "-m", "nb2pipe", "serve", model_uri, "--name", service]
    command += ["--host", host, "--port", str(port)]
    if payloads:
        command += ["--log-payloads", payloads]
    if settings.explainer:
        command += ["--explainer", settings.explainer]
    environment = {
        **QUIET_MLFLOW,
        **os.environ,
        TRACKING_ENV: tracking_uri(store, notebook_uri),
        STORE_ENV: str(local_store(store)),
    }
    # a session of its own: the server outlives the pipeline step that started it
    process = spawn(command, log=log, env=environment, cwd=local_store(store).parent)
    url = f"http://{host}:{port}"
    # an explainer imports alibi and TensorFlow and is fitted before the server is ready
    wait_until_ready(process, url, service, log, wait_seconds or (240 if settings.explainer else 90))
    endpoint = Endpoint(service, url, process.pid, model_uri, str(log), payloads, time.time())
    record = folder / f"{service}.json"
    partial = record.with_suffix(".json.partial")
    partial.write_text(json.dumps(endpoint.to_json(), indent=2), encoding="utf-8")
    partial.replace(record)
    return endpoint


def wait_until_ready(process: subprocess.Popen[bytes], url: str, service: str, log: Path, seconds: float) -> None:
    """Poll ``url``'s v2 readiness of ``service`` until 200; an exit or a timeout (the server is
    then stopped) raises :class:`EndpointError` with the end of its log."""
    wait_until(
        http_ready(f"{url}/v2/models/{service}/ready"),
        process,
        seconds,
        f"the server for {service!r}",
        log=log,
        error=EndpointError,
    )


def read_endpoint(service: str, store: str | Path | None = None) -> Endpoint | None:
    path = endpoints_dir(store) / f"{service}.json"
    try:
        return Endpoint(**json.loads(path.read_text(encoding="utf-8")))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def list_endpoints(store: str | Path | None = None) -> list[Endpoint]:
    found = []
    for path in sorted(endpoints_dir(store).glob("*.json")):
        endpoint = read_endpoint(path.stem, store)
        if endpoint is not None:
            found.append(endpoint)
    return found


def stop_endpoint(service: str, store: str | Path | None = None) -> bool:
    """Stop the service's server (if it still runs) and forget it. True if one was running."""
    endpoint = read_endpoint(service, store)
    if endpoint is None:
        return False
    running = endpoint.alive
    if running:
        stop_group(endpoint.pid)
    (endpoints_dir(store) / f"{service}.json").unlink(missing_ok=True)
    return running


def _is_our_server(pid: int) -> bool:
    """The pid still runs ``nb2pipe serve`` (and was not reused by something else)."""
    if not is_alive(pid):
        return False
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the record
    return b"nb2pipe" in arguments and b"serve" in arguments
