"""The local serving group ``nb2pipe autoscale`` scales on this machine: a router on 127.0.0.1
splitting requests between variants and replicas and exporting KServe's request metric, and
``nb2pipe serve`` replicas started, replaced and drained under the Actuator protocol without a
request lost; a real Prometheus scraping the router reads the rate that was sent."""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.capacity.control import Actuator, Decision, VariantSetting
from nb2pipe.capacity.local_group import LocalGroup, LocalGroupError
from nb2pipe.capacity.local_router import Router, RouterError
from nb2pipe.capacity.prometheus import arrivals_query
from nb2pipe.errors import Nb2PipeError
from nb2pipe.processes import free_port, is_alive, log_tail
from tests.support import prometheus
from tests.support.loopback import LoopbackServer, Recorded
from tests.support.registered import RegisteredModel


def post(base_url: str, path: str, body: Any, timeout: float = 30) -> tuple[int, Any]:
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, json.loads(raw) if raw else None


def get_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def counts_by_variant(metrics: str, service: str) -> dict[str, float]:
    pattern = rf'request_predict_seconds_count\{{code="200",model_name="{service}",variant="([^"]+)"\}} (\S+)'
    found = {variant: float(value) for variant, value in re.findall(pattern, metrics)}
    if not found:  # label order is prometheus_client's (sorted by declaration); accept either
        pattern = rf'request_predict_seconds_count\{{model_name="{service}",variant="([^"]+)",code="200"\}} (\S+)'
        found = {variant: float(value) for variant, value in re.findall(pattern, metrics)}
    return found


def answering(name: str) -> LoopbackServer:
    return LoopbackServer(lambda request: (200, {"predictions": [name]}))


# -- the router -----------------------------------------------------------------------------


def test_router_splits_by_percent_and_exports_the_request_metric():
    with answering("a") as first, answering("b") as second, Router("svc") as router:
        router.set_routes({"small": [first.url], "large": [second.url]}, {"small": 70, "large": 30})
        answers = Counter(
            post(router.url, "/v1/models/svc:predict", {"instances": [[1]]})[1]["predictions"][0] for _ in range(100)
        )
        metrics = get_text(f"{router.url}/metrics")
    assert answers == {"a": 70, "b": 30}  # smooth weighted round-robin: exact over 100 requests
    assert [r.path for r in first.requests][:1] == ["/v1/models/svc:predict"]
    assert first.requests[0].json() == {"instances": [[1]]}
    assert counts_by_variant(metrics, "svc") == {"small": 70.0, "large": 30.0}


def test_router_sends_to_the_least_busy_replica():
    release = threading.Event()

    def slow(request: Recorded) -> tuple[int, Any]:
        release.wait(10)
        return 200, {"predictions": [1]}

    with LoopbackServer(slow) as first, LoopbackServer(slow) as second, Router("svc") as router:
        router.set_routes({"only": [first.url, second.url]}, {"only": 100})
        senders = [
            threading.Thread(target=post, args=(router.url, "/v1/models/svc:predict", {"instances": [[i]]}))
            for i in range(4)
        ]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 5
        while router.in_flight(first.url) + router.in_flight(second.url) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (router.in_flight(first.url), router.in_flight(second.url)) == (2, 2)
        release.set()
        for sender in senders:
            sender.join(10)
    assert (len(first.requests), len(second.requests)) == (2, 2)


def test_router_passes_a_replicas_error_status_through():
    with LoopbackServer(lambda request: (400, {"error": "bad row"})) as replica, Router("svc") as router:
        router.set_routes({"only": [replica.url]}, {"only": 100})
        assert post(router.url, "/v1/models/svc:predict", {"instances": [[1]]}) == (400, {"error": "bad row"})


def test_router_skips_a_replica_that_went_away():
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with answering("a") as alive, Router("svc") as router:
        router.set_routes({"only": [gone, alive.url]}, {"only": 100})
        statuses = [post(router.url, "/v1/models/svc:predict", {"instances": [[1]]})[0] for _ in range(10)]
        assert statuses == [200] * 10 and len(alive.requests) == 10
        router.set_routes({"only": [gone]}, {"only": 100})
        status, body = post(router.url, "/v1/models/svc:predict", {"instances": [[1]]})
    assert status == 503 and "no replica" in body["error"]


def test_router_refuses_a_split_it_cannot_route():
    router = Router("svc")
    with pytest.raises(RouterError, match="add up to 90"):
        router.set_routes({"a": ["http://127.0.0.1:1"]}, {"a": 90})
    with pytest.raises(RouterError, match="b get traffic but have no replica"):
        router.set_routes({"a": ["http://127.0.0.1:1"], "b": []}, {"a": 50, "b": 50})


def test_router_counts_requests_in_flight():
    release = threading.Event()

    def slow(request: Recorded) -> tuple[int, Any]:
        release.wait(10)
        return 200, {"predictions": [1]}

    with LoopbackServer(slow) as replica, Router("svc") as router:
        router.set_routes({"only": [replica.url]}, {"only": 100})
        sender = threading.Thread(target=post, args=(router.url, "/v1/models/svc:predict", {"instances": [[1]]}))
        sender.start()
        deadline = time.monotonic() + 5
        while router.in_flight(replica.url) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert router.in_flight(replica.url) == 1
        # the arrival is counted at once; the latency histogram only once the request is answered
        waiting = get_text(f"{router.url}/metrics")
        release.set()
        sender.join(10)
        assert router.in_flight(replica.url) == 0
        answered = get_text(f"{router.url}/metrics")
    assert 'nb2pipe_router_requests_total{model_name="svc"} 1.0' in waiting
    assert "request_predict_seconds_count{" not in waiting
    assert 'nb2pipe_router_requests_total{model_name="svc"} 1.0' in answered
    assert counts_by_variant(answered, "svc") == {"only": 1.0}


def test_group_refuses_decisions_it_cannot_serve(tmp_path: Path):
    group = LocalGroup("svc", {"small": "models:/x/1"}, tmp_path)
    with pytest.raises(LocalGroupError, match="not running"):
        group.apply(decision(VariantSetting("small", 1, 1, 1, 0, 100)))
    with group:
        with pytest.raises(LocalGroupError, match="unknown variant"):
            group.apply(decision(VariantSetting("huge", 1, 1, 1, 0, 100)))
        with pytest.raises(LocalGroupError, match="add up to 100"):
            group.apply(decision(VariantSetting("small", 1, 1, 1, 0, 60)))
        with pytest.raises(LocalGroupError, match="0 replicas"):
            group.apply(decision(VariantSetting("small", 0, 0, 1, 0, 100)))
        assert group.current() is None
    assert not group.router.running


@pytest.mark.slow  # a real nb2pipe serve that fails to load
def test_a_replica_that_cannot_start_leaves_the_running_set_alone(tmp_path: Path):
    with LocalGroup("svc", {"small": str(tmp_path / "no-such-model")}, tmp_path, ready_s=60) as group:
        with pytest.raises(Nb2PipeError, match="replica small"):
            group.apply(decision(VariantSetting("small", 1, 1, 1, 0, 100)))
        assert group.current() is None and group.replicas == ()


# -- the group, with real replicas ----------------------------------------------------------


def decision(*settings: VariantSetting) -> Decision:
    return Decision(time.time(), None, 0.0, tuple(settings), "test")


class RequestStream:
    """Requests sent one after another from a thread at about ``rps``, every answer kept."""

    def __init__(self, url: str, rows: list[list[float]], rps: float) -> None:
        self.url, self.rows, self.interval = url, rows, 1.0 / rps
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        index = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            body = {"instances": [self.rows[index % len(self.rows)]]}
            try:
                self.statuses.append(post(self.url, "/v1/models/cancer:predict", body)[0])
            except OSError:
                self.statuses.append(-1)  # the connection failed: a lost request
            index += 1
            next_at += self.interval
            self._stop.wait(max(next_at - time.monotonic(), 0))

    def __enter__(self) -> RequestStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


@pytest.fixture(scope="module")
def group(registered_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGroup]:
    environment = {**os.environ, "MLFLOW_TRACKING_URI": registered_model.tracking_uri}
    variants = {"small": "models:/cancer@champion", "large": registered_model.model_uri}
    with LocalGroup("cancer", variants, tmp_path_factory.mktemp("group"), environment=environment) as running:
        yield running
        last = running.replicas
    assert last and not any(is_alive(replica.process.pid) for replica in last)  # nothing left behind


@pytest.mark.slow
def test_group_scales_up_and_down_without_losing_a_request(group: LocalGroup, registered_model: RegisteredModel):
    actuator: Actuator = group  # the protocol the loop drives
    rows = registered_model.features.iloc[:20].values.tolist()
    actuator.apply(decision(VariantSetting("small", 1, 1, 4, 20, 100)))
    assert actuator.current() == (VariantSetting("small", 1, 1, 4, 20, 100),)
    first = group.replicas[0]
    with RequestStream(group.url, rows, rps=15) as stream:
        time.sleep(1)
        actuator.apply(decision(VariantSetting("small", 3, 3, 4, 20, 100)))
        assert actuator.current() == (VariantSetting("small", 3, 3, 4, 20, 100),)
        assert first in group.replicas  # kept, not restarted
        time.sleep(2)
        actuator.apply(decision(VariantSetting("small", 3, 3, 4, 20, 100)))  # the same again: nothing changes
        assert len(group.replicas) == 3 and first in group.replicas
        removed = [replica for replica in group.replicas if replica != first][:2]
        actuator.apply(decision(VariantSetting("small", 1, 1, 4, 20, 100)))
        assert actuator.current() == (VariantSetting("small", 1, 1, 4, 20, 100),)
        time.sleep(1)
        # other batcher flags: the replica is replaced, the new one up before the old one stops
        actuator.apply(decision(VariantSetting("small", 1, 1, 8, 50, 100)))
        assert actuator.current() == (VariantSetting("small", 1, 1, 8, 50, 100),)
        time.sleep(1)
    assert len(stream.statuses) > 50
    assert Counter(stream.statuses) == {200: len(stream.statuses)}  # none lost, no 5xx
    assert not any(is_alive(replica.process.pid) for replica in [*removed, first])
    assert "--max-batch-size" in group.replicas[0].process.args and "8" in group.replicas[0].process.args


@pytest.mark.slow
def test_group_splits_between_variants(group: LocalGroup, registered_model: RegisteredModel):
    group.apply(decision(VariantSetting("small", 1, 1, 8, 50, 75), VariantSetting("large", 1, 1, 8, 50, 25)))
    assert {s.variant: s.percent for s in group.current() or ()} == {"small": 75, "large": 25}
    before = counts_by_variant(get_text(f"{group.url}/metrics"), "cancer")
    row = registered_model.features.iloc[:1].values.tolist()
    statuses = [post(group.url, "/v1/models/cancer:predict", {"instances": row})[0] for _ in range(40)]
    after = counts_by_variant(get_text(f"{group.url}/metrics"), "cancer")
    assert statuses == [200] * 40
    sent = {variant: after.get(variant, 0) - before.get(variant, 0) for variant in ("small", "large")}
    assert sent == {"small": 30, "large": 10}


@pytest.mark.slow
def test_prometheus_reads_the_rate_sent_through_the_router(
    group: LocalGroup, registered_model: RegisteredModel, tmp_path: Path
):
    if not prometheus.available():
        pytest.fail(f"no Prometheus at {prometheus.PROMETHEUS}: run `make prometheus` (Debian's package)")
    group.apply(decision(VariantSetting("small", 1, 1, 8, 50, 100)))
    target = group.url.removeprefix("http://")
    rows = registered_model.features.iloc[:10].values.tolist()
    with prometheus.running_prometheus([target], tmp_path / "prometheus") as server:
        deadline = time.monotonic() + 30
        while not server.targets_up():
            assert time.monotonic() < deadline, log_tail(server.log)
            time.sleep(0.5)
        with RequestStream(group.url, rows, rps=10) as stream:
            time.sleep(16)
            answered = server.query('sum(rate(request_predict_seconds_count{model_name="cancer"}[10s]))')
            arrived = server.query(arrivals_query(["cancer"]).replace("{window}", "10s"))
        sent_rps = len(stream.statuses) / 16
    assert answered, "Prometheus has no request_predict_seconds samples of the router"
    assert arrived, "Prometheus has no nb2pipe_router_requests_total samples of the router"
    assert set(stream.statuses) == {200}
    for answer in (answered, arrived):
        measured = float(answer[0]["value"][1])
        assert abs(measured - sent_rps) <= 0.25 * sent_rps, (measured, sent_rps)
