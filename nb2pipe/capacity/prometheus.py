"""The request rate from a Prometheus HTTP API (``/api/v1/query``, ``/api/v1/query_range``).

The same code reads a cluster's Prometheus and the one the local bench starts on 127.0.0.1.
Which query, by how the service runs:

- Standard (RawDeployment) mode, and anywhere the model server's own ``/metrics`` are scraped:
  KServe's servers export ``request_predict_seconds`` labelled ``model_name``; the default is
  the query nb2pipe's KEDA trigger uses,
  ``sum(rate(request_predict_seconds_count{namespace="NS",model_name="SERVICE"}[1m]))`` (several
  variants: ``model_name=~"SERVICE-A|SERVICE-B"``), with the rate window the loop asks for. The
  namespace matcher keeps a same-named service of another namespace out (its label:
  :data:`~nb2pipe.lifecycle.standard_scaling.NAMESPACE_LABEL`, or as the Prometheus names it).
- nb2pipe's local router (``--local``): :func:`arrivals_query`; one machine, no namespace.
- Knative (Serverless) mode: Knative's queue-proxy counts every request a revision gets,
  :func:`knative_query` (``revision_request_count`` of the predictor's Knative services).

A query may hold ``{window}``: it becomes the window the loop asks for (``60s``).
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nb2pipe.capacity.local_router import ARRIVALS_METRIC
from nb2pipe.errors import Nb2PipeError
from nb2pipe.lifecycle.standard_scaling import NAMESPACE_LABEL, POD_METRIC, pod_selector

#: seconds to wait for Prometheus's answer (connect and read together, per request)
DEFAULT_TIMEOUT_S = 5.0
#: the most points one query_range may ask for (Prometheus refuses more than 11,000)
MAX_POINTS = 11_000


class PrometheusError(Nb2PipeError):
    """Prometheus refused the query: a mistake in it or in the URL, not a passing outage."""


def default_query(
    model_names: Sequence[str], namespace: str | None = None, namespace_label: str = NAMESPACE_LABEL
) -> str:
    """Predict calls per second to these models in ``namespace``, all replicas together (KServe's server
    metric); ``namespace_label`` "" (or no namespace) selects every namespace."""
    return f"sum(rate({POD_METRIC}_count{{{pod_selector(model_names, namespace, namespace_label)}}}[{{window}}]))"


def arrivals_query(model_names: Sequence[str]) -> str:
    """Predict requests per second received by nb2pipe's local router, counted on arrival: the
    demand even while the replicas are overloaded (KServe's counters count answered requests)."""
    return f"sum(rate({ARRIVALS_METRIC}{{{pod_selector(model_names, None)}}}[{{window}}]))"


def knative_query(predictor_services: Sequence[str], namespace: str) -> str:
    """Requests per second Knative's queue-proxy counted for these Knative services (Serverless mode;
    KServe names a predictor's Knative service ``SERVICE-predictor``)."""
    names = "|".join(predictor_services)
    return f'sum(rate(revision_request_count{{namespace_name="{namespace}",service_name=~"{names}"}}[{{window}}]))'


@dataclass
class PrometheusRateSource:
    """A :class:`~nb2pipe.capacity.control.RateSource` over Prometheus. A passing outage (no answer,
    a timeout, a 5xx) reads as no rate (None) with the cause in ``last_error``; a refused query
    (4xx, ``bad_data``) raises :class:`PrometheusError` naming the URL."""

    url: str
    query: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: the rate window of each point of ``recent_rates`` (at least its step): what the loop reads live
    history_window_s: float = 60.0
    clock: Any = time.time
    last_error: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PrometheusError(f"--prometheus-url {self.url!r} is not an http(s) URL (e.g. http://prometheus:9090)")
        if not self.timeout_s > 0:
            raise PrometheusError(f"the Prometheus timeout ({self.timeout_s:g} s) must be positive")
        self.url = self.url.rstrip("/")

    def request_rate(self, window_s: float) -> float | None:
        data = self._get("/api/v1/query", {"query": self._query(window_s), "time": _number(self.clock())})
        if data is None:
            return None
        result = data.get("result") or []
        if data.get("resultType") == "scalar":
            return _value(result)
        values = [_value(r.get("value")) for r in result]
        known = [v for v in values if v is not None]
        if not known:
            self.last_error = f"{self.url}: the query returned no samples"
            return None
        return sum(known)

    def recent_rates(self, seconds: float, step_s: float) -> list[float | None]:
        count = max(1, int(seconds // step_s) + 1)
        if count > MAX_POINTS:
            raise PrometheusError(f"{count} points of {step_s:g} s are more than Prometheus answers in one query")
        end = self.clock()
        grid = [end - (count - 1 - i) * step_s for i in range(count)]
        window = max(step_s, self.history_window_s)
        params = {"query": self._query(window), "start": _number(grid[0]), "end": _number(end), "step": _number(step_s)}
        data = self._get("/api/v1/query_range", params)
        rates: list[float | None] = [None] * count
        if data is None:
            return rates
        for series in data.get("result") or []:
            for point in series.get("values") or []:
                value = _value(point)
                slot = round((float(point[0]) - grid[0]) / step_s)
                if value is not None and 0 <= slot < count:
                    rates[slot] = (rates[slot] or 0.0) + value
        return rates

    def _query(self, window_s: float) -> str:
        return self.query.replace("{window}", f"{max(1, math.ceil(window_s))}s")

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        address = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(address, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            message = _error_message(exc.read())
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise PrometheusError(f"Prometheus at {self.url} refused {params['query']!r}: {message}") from None
            self.last_error = f"{self.url}{path}: HTTP {exc.code} {message}"
            return None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            self.last_error = f"{self.url}{path} did not answer within {self.timeout_s:g} s: {reason}"
            return None
        try:
            answer = json.loads(body)
        except ValueError:
            self.last_error = f"{self.url}{path} answered something that is not JSON"
            return None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            said = answer.get("error") if isinstance(answer, dict) else None
            raise PrometheusError(f"Prometheus at {self.url} refused {params['query']!r}: {said or answer}")
        self.last_error = None
        data = answer.get("data")
        return data if isinstance(data, dict) else {}


def _value(sample: Any) -> float | None:
    """A ``[time, "value"]`` pair's value; None for NaN/Inf (a rate of no samples) or a malformed pair."""
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _error_message(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace") or "no body"
    if isinstance(answer, dict) and answer.get("error"):
        return f"{answer.get('errorType', 'error')}: {answer['error']}"
    return str(answer)[:200]


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")
