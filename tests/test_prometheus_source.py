"""The autoscaler's rate source against a loopback Prometheus HTTP API: the exact queries and
parameters sent, what comes back, timeouts and error bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from nb2pipe.capacity.prometheus import (
    PrometheusError,
    PrometheusRateSource,
    arrivals_query,
    default_query,
    knative_query,
)
from nb2pipe.lifecycle.standard_scaling import request_query
from tests.support.loopback import LoopbackServer, Recorded

NOW = 1_700_000_000.0


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {}, "value": [NOW, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


class Prometheus:
    """Answers every request with the next of ``answers`` (status, body), after ``delay_s``."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any]] = []
        self.delay_s = 0.0

    def __call__(self, request: Recorded) -> tuple[int, Any]:
        time.sleep(self.delay_s)
        return self.answers.pop(0)


@pytest.fixture
def prometheus() -> Iterator[LoopbackServer]:
    fake = Prometheus()
    with LoopbackServer(fake) as server:
        server.fake = fake  # type: ignore[attr-defined]
        yield server


def source(server: LoopbackServer, query: str = default_query(["digits"]), **kw: Any) -> PrometheusRateSource:
    return PrometheusRateSource(server.url + "/", query, clock=lambda: NOW, **kw)


def test_the_default_query_is_kedas_with_the_loops_window() -> None:
    assert default_query(["digits"]).replace("{window}", "1m") == request_query("digits", "rps")
    assert default_query(["digits-a", "digits-b"]) == (
        'sum(rate(request_predict_seconds_count{model_name=~"digits-a|digits-b"}[{window}]))'
    )
    # the local router's arrivals counter, the local loop's default
    assert arrivals_query(["digits"]) == 'sum(rate(nb2pipe_router_requests_total{model_name="digits"}[{window}]))'
    # the service's namespace, by the label Prometheus gives it; "" (or no namespace) for every namespace
    assert default_query(["digits"], "prod").replace("{window}", "1m") == request_query("digits", "rps", "prod")
    assert default_query(["digits-a", "digits-b"], "prod", "kubernetes_namespace") == (
        'sum(rate(request_predict_seconds_count{kubernetes_namespace="prod",model_name=~"digits-a|digits-b"}[{window}]))'
    )
    assert default_query(["digits"], "prod", "") == default_query(["digits"])
    assert knative_query(["digits-predictor"], "models") == (
        'sum(rate(revision_request_count{namespace_name="models",service_name=~"digits-predictor"}[{window}]))'
    )


def test_an_instant_query_sends_the_query_and_time_and_sums_the_series(prometheus: LoopbackServer) -> None:
    prometheus.fake.answers.append((200, vector("12.5", "3.5")))  # type: ignore[attr-defined]
    assert source(prometheus).request_rate(60) == 16.0
    [request] = prometheus.requests
    assert (request.method, request.path) == ("GET", "/api/v1/query")
    assert request.query == {
        "query": ['sum(rate(request_predict_seconds_count{model_name="digits"}[60s]))'],
        "time": ["1700000000"],
    }
    assert request.headers["accept"] == "application/json"


def test_same_named_services_of_two_namespaces_are_asked_apart(prometheus: LoopbackServer) -> None:
    prometheus.fake.answers.extend([(200, vector("3")), (200, vector("40"))])  # type: ignore[attr-defined]
    rates = [source(prometheus, default_query(["digits"], ns)).request_rate(60) for ns in ("staging", "prod")]
    assert rates == [3.0, 40.0]
    assert [request.query["query"] for request in prometheus.requests] == [
        [f'sum(rate(request_predict_seconds_count{{namespace="{ns}",model_name="digits"}}[60s]))']
        for ns in ("staging", "prod")
    ]


def test_no_samples_or_nan_is_no_rate_never_zero(prometheus: LoopbackServer) -> None:
    prometheus.fake.answers.extend([(200, vector()), (200, vector("NaN"))])  # type: ignore[attr-defined]
    rates = source(prometheus)
    assert rates.request_rate(60) is None
    assert "returned no samples" in (rates.last_error or "")
    assert rates.request_rate(60) is None


def test_a_range_query_fills_a_grid_with_none_where_no_sample(prometheus: LoopbackServer) -> None:
    values = [[NOW - 30, "4"], [NOW - 15, "NaN"]]  # NOW - 45 absent, NOW - 15 not a number
    answer = {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}}
    prometheus.fake.answers.append((200, answer))  # type: ignore[attr-defined]
    assert source(prometheus, history_window_s=60).recent_rates(45, 15) == [None, 4.0, None, None]
    [request] = prometheus.requests
    assert request.path == "/api/v1/query_range"
    assert request.query == {
        "query": ['sum(rate(request_predict_seconds_count{model_name="digits"}[60s]))'],
        "start": ["1699999955"],
        "end": ["1700000000"],
        "step": ["15"],
    }


def test_a_refused_query_raises_naming_the_url_and_prometheus_message(prometheus: LoopbackServer) -> None:
    body = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    prometheus.fake.answers.append((400, body))  # type: ignore[attr-defined]
    with pytest.raises(PrometheusError) as raised:
        source(prometheus, query="sum(rate(x}[{window}]))").request_rate(60)
    message = str(raised.value)
    assert prometheus.url in message and 'bad_data: parse error: unexpected "}"' in message
    assert "sum(rate(x}[60s]))" in message


def test_an_outage_reads_as_no_rate_with_the_cause(prometheus: LoopbackServer) -> None:
    body = {"status": "error", "errorType": "unavailable", "error": "TSDB not ready"}
    prometheus.fake.answers.append((503, body))  # type: ignore[attr-defined]
    rates = source(prometheus)
    assert rates.request_rate(60) is None
    assert rates.last_error == f"{prometheus.url}/api/v1/query: HTTP 503 unavailable: TSDB not ready"
    # the next good answer clears it
    prometheus.fake.answers.append((200, vector("2")))  # type: ignore[attr-defined]
    assert rates.request_rate(60) == 2.0 and rates.last_error is None


def test_a_slow_prometheus_is_given_up_on_after_the_timeout(prometheus: LoopbackServer) -> None:
    prometheus.fake.delay_s = 1.0  # type: ignore[attr-defined]
    prometheus.fake.answers.append((200, vector("2")))  # type: ignore[attr-defined]
    rates = source(prometheus, timeout_s=0.2)
    started = time.monotonic()
    assert rates.request_rate(60) is None
    assert time.monotonic() - started < 0.9
    assert f"{prometheus.url}/api/v1/query did not answer within 0.2 s" in (rates.last_error or "")


def test_nothing_listening_reads_as_no_rate() -> None:
    with LoopbackServer(lambda r: (200, {})) as gone:
        url = gone.url
    rates = PrometheusRateSource(url, default_query(["digits"]), timeout_s=1.0)
    assert rates.recent_rates(30, 15) == [None, None, None]
    assert url in (rates.last_error or "")


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://prom", "http://"])
def test_a_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(PrometheusError, match="is not an http"):
        PrometheusRateSource(url, "up")
