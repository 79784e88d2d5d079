"""Starting ``nb2pipe serve`` as a real process on 127.0.0.1 and talking to it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.processes import free_port, http_ready, spawn, stop_group, wait_until

#: seconds a server has to exit after SIGTERM before its process group gets SIGKILL
STOP_GRACE_S = 20.0


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
    """Run ``nb2pipe serve`` until the block ends, then stop its process group by PID."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    command = [sys.executable, "-m", "nb2pipe", "serve", model_uri, "--name", name, "--port", str(port), *extra]
    process = spawn(command, log=log, env=environment, cwd=folder)
    try:
        ready = http_ready(f"http://127.0.0.1:{port}/v2/models/{name}/ready")
        wait_until(ready, process, ready_seconds, "nb2pipe serve", log=log, log_lines=200)
        yield Server(port, process, log)
    finally:
        stop_group(process, STOP_GRACE_S)


def pids_with_arguments(*words: bytes) -> list[int]:
    """PIDs of processes on this machine whose command line holds every one of ``words`` (/proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(word in arguments for word in words):
            found.append(int(entry.name))
    return found
