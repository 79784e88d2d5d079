"""A real Prometheus on 127.0.0.1 for tests and benchmarks: Debian's ``prometheus`` package
(``make prometheus`` installs it), started with a generated configuration that scrapes the given
targets every second, its storage in a temporary folder, stopped by PID."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.processes import free_port, http_ready, spawn, stop_group, wait_until

#: where Debian's package puts the binary
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
#: seconds between two scrapes (and the evaluation interval)
SCRAPE_INTERVAL_S = 1
READY_S = 60.0


@dataclass
class Prometheus:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (``/api/v1/query``)."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(address, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def targets_up(self) -> bool:
        """Whether every scrape target was scraped successfully at least once."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as response:
            targets = json.loads(response.read())["data"]["activeTargets"]
        return bool(targets) and all(target["health"] == "up" for target in targets)


def available() -> bool:
    return Path(PROMETHEUS).is_file()


@contextmanager
def running_prometheus(targets: Sequence[str], folder: Path, job: str = "nb2pipe") -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (``host:port``, their ``/metrics``) every second, until the
    block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    # JSON is YAML: no YAML writer needed
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
                "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
            }
        )
    )
    port = free_port()
    log = folder / "prometheus.log"
    command = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    process = spawn(command, log=log, cwd=folder)
    try:
        wait_until(http_ready(f"http://127.0.0.1:{port}/-/ready"), process, READY_S, "prometheus", log=log)
        yield Prometheus(port, process, log)
    finally:
        stop_group(process, 10.0)
