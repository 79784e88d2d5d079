"""A local serving group: what ``nb2pipe autoscale`` scales on this machine (first increment).

Each variant runs as ``replicas`` ``nb2pipe serve`` processes on loopback ports, each with
KServe's batcher at the decision's ``--max-batch-size`` / ``--max-latency-ms`` and a log file of
its own, behind one :class:`~nb2pipe.capacity.local_router.Router` that splits the traffic by the
decision's percents and exports ``request_predict_seconds`` for Prometheus.

:class:`LocalGroup` is the loop's :class:`~nb2pipe.capacity.control.Actuator` here. ``apply``
changes what runs without losing a request:

1. the replicas that are missing (or whose batcher flags changed) start, and are waited for
   until ``/v2/health/ready`` answers (a bounded wait; on failure the old set keeps serving);
2. the router switches to the new set and split in one step;
3. the replicas no longer wanted are drained (the router sends them nothing more and their
   requests in flight are answered) and only then stopped, by process group.

Leaving the ``with`` block stops the router and every replica.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from types import TracebackType

from nb2pipe.capacity.control import Decision, VariantSetting
from nb2pipe.capacity.local_router import Router
from nb2pipe.errors import Nb2PipeError
from nb2pipe.processes import free_port, http_ready, spawn, stop_group, wait_until

#: seconds a replica has to answer /v2/health/ready after it was started (kserve loads in seconds)
REPLICA_READY_S = 120.0
#: seconds a replica no longer routed to has to answer its requests in flight before it is stopped
DRAIN_S = 30.0
#: seconds a stopped replica has to exit after SIGTERM before its group gets SIGKILL
STOP_GRACE_S = 15.0


class LocalGroupError(Nb2PipeError):
    """The local serving group could not apply a decision."""


@dataclass(frozen=True)
class Replica:
    variant: str
    port: int
    batch_size: int
    max_latency_ms: int
    process: Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serves(self, setting: VariantSetting) -> bool:
        return (self.batch_size, self.max_latency_ms) == (setting.batch_size, setting.max_latency_ms)


class LocalGroup:
    """``service``'s variants (name -> model URI) served on 127.0.0.1, logs under ``folder``."""

    def __init__(
        self,
        service: str,
        variants: Mapping[str, str],
        folder: Path,
        *,
        environment: Mapping[str, str] | None = None,
        router_port: int = 0,
        ready_s: float = REPLICA_READY_S,
        drain_s: float = DRAIN_S,
    ) -> None:
        if not variants:
            raise LocalGroupError("a serving group needs at least one variant")
        self.service = service
        self.variants = dict(variants)
        self.folder = folder
        self.environment = dict(os.environ if environment is None else environment)
        self.ready_s = ready_s
        self.drain_s = drain_s
        self.router = Router(service, port=router_port)
        self._replicas: list[Replica] = []
        self._percents: dict[str, int] = {}

    @property
    def url(self) -> str:
        """The router's address: where clients (and Prometheus, ``/metrics``) connect."""
        return self.router.url

    @property
    def replicas(self) -> tuple[Replica, ...]:
        return tuple(self._replicas)

    # -- the Actuator protocol -------------------------------------------------------------
    def current(self) -> tuple[VariantSetting, ...] | None:
        """The running variants (those without a replica are left out), or None before the first apply."""
        if not self._replicas:
            return None
        settings = []
        for variant in self.variants:
            running = [replica for replica in self._replicas if replica.variant == variant]
            if running:
                first = running[0]
                count = len(running)
                settings.append(
                    VariantSetting(
                        variant, count, count, first.batch_size, first.max_latency_ms, self._percents.get(variant, 0)
                    )
                )
        return tuple(settings)

    def apply(self, decision: Decision) -> None:
        if not self.router.running:
            raise LocalGroupError("the group is not running: apply decisions inside `with LocalGroup(...)`")
        wanted = {setting.variant: setting for setting in decision.settings}
        self._check(wanted)
        keep: list[Replica] = []
        for replica in self._replicas:
            setting = wanted.get(replica.variant)
            kept_of_variant = sum(1 for kept in keep if kept.variant == replica.variant)
            if setting is not None and replica.serves(setting) and kept_of_variant < setting.replicas:
                keep.append(replica)
        started = self._start_missing(wanted, keep)
        leaving = [replica for replica in self._replicas if replica not in keep]
        running = keep + started
        self.router.set_routes(
            {variant: [r.url for r in running if r.variant == variant] for variant in self.variants},
            {variant: setting.percent for variant, setting in wanted.items()},
        )
        self._replicas = running
        self._percents = {variant: setting.percent for variant, setting in wanted.items()}
        self._drain_and_stop(leaving)

    # -- lifetime ----------------------------------------------------------------------------
    def __enter__(self) -> LocalGroup:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.router.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every replica and the router (nothing of the group runs afterwards)."""
        replicas, self._replicas = self._replicas, []
        try:
            for replica in replicas:
                stop_group(replica.process, STOP_GRACE_S)
        finally:
            self.router.stop()

    # -- steps -------------------------------------------------------------------------------
    def _check(self, wanted: Mapping[str, VariantSetting]) -> None:
        unknown = sorted(set(wanted) - set(self.variants))
        if unknown:
            raise LocalGroupError(
                f"unknown variant(s) {', '.join(unknown)}: this group serves {', '.join(self.variants)}"
            )
        if sum(setting.percent for setting in wanted.values()) != 100:
            raise LocalGroupError("the decision's percents do not add up to 100")
        for setting in wanted.values():
            if setting.replicas < 0 or (setting.percent > 0 and setting.replicas < 1):
                raise LocalGroupError(f"{setting.variant} gets {setting.percent}% with {setting.replicas} replicas")

    def _start_missing(self, wanted: Mapping[str, VariantSetting], keep: list[Replica]) -> list[Replica]:
        """Start what ``keep`` lacks, all at once, and wait until each is ready; if one fails,
        stop those started and raise (the running set is untouched)."""
        started: list[Replica] = []
        try:
            for variant, setting in wanted.items():
                missing = setting.replicas - sum(1 for replica in keep if replica.variant == variant)
                started.extend(self._spawn(setting) for _ in range(max(missing, 0)))
            deadline = time.monotonic() + self.ready_s
            for replica in started:
                ready = http_ready(f"{replica.url}/v2/health/ready")
                what = f"replica {replica.variant} on port {replica.port}"
                wait_until(ready, replica.process, max(deadline - time.monotonic(), 1.0), what, log=replica.log)
        except BaseException:
            for replica in started:
                stop_group(replica.process, STOP_GRACE_S)
            raise
        return started

    def _spawn(self, setting: VariantSetting) -> Replica:
        port = free_port()
        log = self.folder / f"{self.service}-{setting.variant}-{port}.log"
        command = [
            sys.executable,
            "-m",
            "nb2pipe",
            "serve",
            self.variants[setting.variant],
            "--name",
            self.service,
            "--port",
            str(port),
            "--max-batch-size",
            str(setting.batch_size),
            "--max-latency-ms",
            str(setting.max_latency_ms),
        ]
        process = spawn(command, log=log, env=self.environment, cwd=self.folder)
        return Replica(setting.variant, port, setting.batch_size, setting.max_latency_ms, process, log)

    def _drain_and_stop(self, leaving: list[Replica]) -> None:
        """The router sends ``leaving`` nothing more: wait for their requests in flight (at
        most ``drain_s``), then stop them."""
        deadline = time.monotonic() + self.drain_s
        while any(self.router.in_flight(r.url) for r in leaving) and time.monotonic() < deadline:
            time.sleep(0.05)
        for replica in leaving:
            stop_group(replica.process, STOP_GRACE_S)
