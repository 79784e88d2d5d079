"""Starting ``nb2pipe serve`` as a real process on 127.0.0.1 and talking to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def stop(process: subprocess.Popen[bytes], grace: float = 20) -> None:
    """Stop a server the test started, by its PID: SIGTERM, then SIGKILL after ``grace`` s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def request(
        self, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            payload = body.encode() if isinstance(body, str) else body
            connection.request(method, path, body=payload, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw

    def post_json(self, path: str, value: Any) -> tuple[int, Any]:
        return self.request("POST", path, json.dumps(value), {"Content-Type": "application/json"})


@contextmanager
def serving(
    model_uri: str, name: str, tracking_uri: str, folder: Path, *extra: str, ready_seconds: float = 120
) -> Iterator[Server]:
    """Run ``nb2pipe serve`` until the block ends, then stop it by PID."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    command = [sys.executable, "-m", "nb2pipe", "serve", model_uri, "--name", name, "--port", str(port), *extra]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=folder)
    server = Server(port, process, log)
    try:
        deadline = time.monotonic() + ready_seconds
        while True:
            assert process.poll() is None, f"nb2pipe serve exited:\n{log.read_text()}"
            try:
                if server.request("GET", f"/v2/models/{name}/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"nb2pipe serve not ready:\n{log.read_text()}"
            time.sleep(0.2)
        yield server
    finally:
        stop(process)
