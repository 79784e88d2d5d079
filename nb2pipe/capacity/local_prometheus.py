"""A Prometheus on 127.0.0.1 for ``nb2pipe autoscale --local``, the tests and the bench: Debian's
``prometheus`` package (``apt-get install prometheus``, or ``make prometheus``), started with a
generated configuration that scrapes the given targets every second, its storage under a folder
of ours, stopped by PID (its process group). The loop then reads the rate from it exactly as it
reads a cluster's Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.processes import free_port, http_ready, spawn, stop_group, wait_until

#: where Debian's package puts the binary
DEBIAN_BINARY = "/usr/bin/prometheus"
#: seconds between two scrapes (and the evaluation interval)
SCRAPE_INTERVAL_S = 1
#: seconds Prometheus has to answer /-/ready after it was started
READY_S = 60.0
#: seconds it has to exit after SIGTERM (it flushes its head block) before SIGKILL
STOP_GRACE_S = 10.0


class LocalPrometheusError(Nb2PipeError):
    """The local Prometheus is missing, or did not start."""


def binary() -> Path | None:
    """The prometheus executable on PATH or where Debian puts it; None when it is not installed."""
    found = shutil.which("prometheus")
    if found:
        return Path(found)
    return Path(DEBIAN_BINARY) if Path(DEBIAN_BINARY).is_file() else None


def require_binary() -> Path:
    found = binary()
    if found is None:
        raise LocalPrometheusError(
            "no prometheus binary on PATH or at /usr/bin/prometheus: install Debian's package "
            "(`apt-get install prometheus`, or `make prometheus` in nb2pipe's checkout), or pass "
            "--prometheus-url of a Prometheus that scrapes the router"
        )
    return found


@dataclass
class LocalPrometheus:
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
        if answer.get("status") != "success":
            raise LocalPrometheusError(f"{self.url} refused {promql!r}: {answer}")
        return list(answer["data"]["result"])

    def targets_up(self) -> bool:
        """Whether every scrape target was scraped successfully at least once."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as response:
                targets = json.loads(response.read())["data"]["activeTargets"]
        except (OSError, ValueError, KeyError):
            return False
        return bool(targets) and all(target["health"] == "up" for target in targets)

    def wait_for_targets(self, seconds: float) -> None:
        """Until every target was scraped once (the first readings then come from real samples)."""
        deadline = time.monotonic() + seconds
        while not self.targets_up():
            if time.monotonic() > deadline:
                raise LocalPrometheusError(
                    f"Prometheus {self.url} scraped no target within {seconds:g} s; see {self.log}"
                )
            time.sleep(0.25)


def configuration(targets: Sequence[str], job: str) -> str:
    """Prometheus's YAML (JSON is YAML: no YAML writer needed)."""
    interval = f"{SCRAPE_INTERVAL_S}s"
    return json.dumps(
        {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
        }
    )


@contextmanager
def running_prometheus(
    targets: Sequence[str], folder: Path, job: str = "nb2pipe", ready_s: float = READY_S
) -> Iterator[LocalPrometheus]:
    """Prometheus scraping ``targets`` (``host:port``, their ``/metrics``) every second, its
    configuration, data and log under ``folder``, until the block ends (then stopped by PID)."""
    executable = require_binary()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(configuration(targets, job), encoding="utf-8")
    port = free_port()
    log = folder / "prometheus.log"
    command = [
        str(executable),
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    process = spawn(command, log=log, cwd=folder)
    try:
        wait_until(
            http_ready(f"http://127.0.0.1:{port}/-/ready"),
            process,
            ready_s,
            "prometheus",
            log=log,
            error=LocalPrometheusError,
        )
        yield LocalPrometheus(port, process, log)
    finally:
        stop_group(process, STOP_GRACE_S)
