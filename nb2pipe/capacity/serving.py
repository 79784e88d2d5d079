"""Serving one variant for ``nb2pipe profile``: ``nb2pipe serve`` in a process group of its
own on a free port of 127.0.0.1, stopped (the whole group) however the measurement ends."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from nb2pipe.lifecycle.endpoints import wait_until_ready
from nb2pipe.processes import free_port, spawn, stop_group
from nb2pipe.store.registry import QUIET_MLFLOW, TRACKING_ENV, tracking_uri

HOST = "127.0.0.1"


@contextlib.contextmanager
def serving(
    name: str, model_uri: str, store: str | Path | None, ready_seconds: float, progress: Callable[[str], None]
) -> Iterator[str]:
    """``nb2pipe serve`` on a free port of 127.0.0.1 until the block ends (yields its URL); then
    stopped by PID, whatever happened. A server that exits or is not ready in ``ready_seconds``
    raises :class:`~nb2pipe.lifecycle.endpoints.EndpointError` with the end of its log."""

    port = free_port(HOST)
    url = f"http://{HOST}:{port}"
    command = [sys.executable, "-m", "nb2pipe", "serve", model_uri, "--name", name, "--host", HOST, "--port", str(port)]
    environment = {**QUIET_MLFLOW, **os.environ, TRACKING_ENV: tracking_uri(store)}
    with tempfile.TemporaryDirectory(prefix="nb2pipe-profile-") as folder:
        log = Path(folder) / "serve.log"
        # a session of its own: the whole group is signalled, and ^C in a terminal reaches only us
        process = spawn(command, log=log, env=environment)
        try:
            progress(f"{name}: starting nb2pipe serve {model_uri} on {url} (pid {process.pid})")
            began = time.monotonic()
            wait_until_ready(process, url, name, log, ready_seconds)
            progress(f"{name}: ready after {time.monotonic() - began:.1f} s")
            yield url
        finally:
            stop_group(process)
            progress(f"{name}: server stopped (pid {process.pid})")
