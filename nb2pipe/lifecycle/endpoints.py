"""Local endpoints: ``nb2pipe serve`` processes started in the background by a pipeline's
deploy step on the embedded default, one per service, recorded in
``.nb2pipe/endpoints/SERVICE.json`` (pid, url, model) so later runs replace them and
``nb2pipe endpoints`` lists or stops them.

One state of truth per service: every deploy and stop of SERVICE holds ``SERVICE.lock``
(``flock``, so threads, pipeline steps and the CLI all take turns), and the record is
written atomically, under that lock, once the new server is ready. A redeploy stops the old
server (its whole process group) and starts the new one on the same port, so the URL stays;
between the two, callers of that URL are refused a connection for as long as the new server
takes to load its model. A server started but not yet recorded is named in ``SERVICE.pending``
so a deploy killed half-way leaves nothing the next deploy or stop cannot reach.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import exclusive_lock, write_all_or_nothing
from nb2pipe.ir import DeploySettings
from nb2pipe.processes import free_port, http_ready, is_alive, port_is_free, spawn, stop_group, wait_until
from nb2pipe.store.registry import QUIET_MLFLOW, STORE_ENV, TRACKING_ENV, local_store, tracking_uri

DEFAULT_PORT = 8080
#: seconds a deploy or stop waits for another one of the same service to finish
LOCK_WAIT_S = 900.0
#: seconds a stopped server's port has to become bindable again
PORT_RELEASE_S = 5.0
_POLL_S = 0.1


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

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


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
    """Serve ``model_uri`` as ``service`` in a background process, replacing an older one on
    the same port (``settings.port``, else the recorded one, else :data:`DEFAULT_PORT`; a
    free port only when something else holds that one). If the new server fails, the old one
    is gone too and the record is removed. The server reads the tracking store of
    :func:`~nb2pipe.store.registry.tracking_uri`."""
    folder = endpoints_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    with service_lock(service, store):
        previous = read_endpoint(service, store)
        wanted = settings.port or (previous.port if previous is not None else DEFAULT_PORT)
        _stop_unlocked(service, store)
        port = wanted if _wait_port_bindable(host, wanted, PORT_RELEASE_S) else free_port(host)
        # the server rotates its own log; the process's stdout/stderr (banner, a fatal error) stay small
        log, output = folder / f"{service}.log", folder / f"{service}.out"
        payloads = str(local_store(store) / "payloads" / service) if settings.monitor else None
        environment = {
            **QUIET_MLFLOW,
            **os.environ,
            TRACKING_ENV: tracking_uri(store, notebook_uri),
            STORE_ENV: str(local_store(store)),
        }
        command = serve_command(service, model_uri, host, port, payloads, settings.explainer, log)
        # a session of its own: the server outlives the pipeline step that started it
        process = spawn(command, log=output, env=environment, cwd=local_store(store).parent)
        pending = _pending_path(service, store)
        write_all_or_nothing({pending: str(process.pid)})
        url = f"http://{host}:{port}"
        try:
            # an explainer imports alibi and TensorFlow and is fitted before the server is ready
            wait_until_ready(process, url, service, output, wait_seconds or (240 if settings.explainer else 90))
        finally:
            pending.unlink(missing_ok=True)  # ready and recorded below, or stopped by the wait
        endpoint = Endpoint(service, url, process.pid, model_uri, str(log), payloads, time.time())
        write_all_or_nothing({_record_path(service, store): json.dumps(endpoint.to_json(), indent=2)})
        return endpoint


def serve_command(
    service: str,
    model_uri: str,
    host: str,
    port: int,
    payloads: str | None,
    explainer: str | None,
    log: Path | None = None,
) -> list[str]:
    """The ``nb2pipe serve`` command line of a local endpoint."""
    command = [sys.executable, "-m", "nb2pipe", "serve", model_uri, "--name", service]
    command += ["--host", host, "--port", str(port)]
    if log is not None:
        command += ["--log-file", str(log)]
    if payloads:
        command += ["--log-payloads", payloads]
    if explainer:
        command += ["--explainer", explainer]
    return command


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
    try:
        return Endpoint(**json.loads(_record_path(service, store).read_text(encoding="utf-8")))
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
    if not _record_path(service, store).exists() and not _pending_path(service, store).exists():
        return False  # nothing to stop: no lock file is made for a service never deployed
    with service_lock(service, store):
        return _stop_unlocked(service, store)


@contextlib.contextmanager
def service_lock(service: str, store: str | Path | None = None, seconds: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold ``SERVICE.lock`` (an exclusive ``flock``: released by the system if the holder dies)."""
    path = endpoints_dir(store) / f"{service}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(
        path, seconds, lambda: EndpointError(f"another deploy of {service!r} held {path} for {seconds:g} s")
    ):
        yield


def _stop_unlocked(service: str, store: str | Path | None) -> bool:
    """Stop the recorded and any pending server of ``service`` and remove both files; the
    caller holds the service's lock. True if the recorded server was running."""
    pending = _pending_path(service, store)
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = int(pending.read_text(encoding="utf-8"))
        if _is_our_server(pid):
            stop_group(pid)
    pending.unlink(missing_ok=True)
    endpoint = read_endpoint(service, store)
    running = endpoint is not None and endpoint.alive
    if endpoint is not None and running:
        stop_group(endpoint.pid)
    _record_path(service, store).unlink(missing_ok=True)
    return running


def _record_path(service: str, store: str | Path | None) -> Path:
    return endpoints_dir(store) / f"{service}.json"


def _pending_path(service: str, store: str | Path | None) -> Path:
    return endpoints_dir(store) / f"{service}.pending"


def _wait_port_bindable(host: str, port: int, seconds: float) -> bool:
    """Whether ``port`` can be bound for listening, waiting up to ``seconds`` for a stopped
    server's socket to be released."""
    deadline = time.monotonic() + seconds
    while not port_is_free(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _is_our_server(pid: int) -> bool:
    """The pid still runs ``nb2pipe serve`` (and was not reused by something else)."""
    if not is_alive(pid):
        return False
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the record
    return b"nb2pipe" in arguments and b"serve" in arguments
