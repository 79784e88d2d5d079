"""The local serving group's router: one address on 127.0.0.1 in front of the ``nb2pipe serve``
replicas of every variant, as KServe's ingress and canary split are on a cluster.

- each request goes to a variant by the decision's percents (smooth weighted round-robin, so the
  split holds exactly over every 100 requests), then to that variant's ready replica with the
  fewest requests in flight;
- a replica that refuses the connection (stopped, crashed) is left for another one: a prediction
  is idempotent, and no request is lost to a replica going away;
- ``/metrics`` answers Prometheus text with KServe's ``request_predict_seconds`` histogram,
  labelled ``model_name`` (the service) and ``variant``, so the loop's rate query can be the one
  it uses on a cluster without its namespace matcher:
  ``sum(rate(request_predict_seconds_count{model_name="SERVICE"}[1m]))``;
  and with ``nb2pipe_router_requests_total`` (ARRIVALS_METRIC), counted as each request arrives.
  A histogram observes a request when it is answered, so an overloaded group shows its
  throughput, not its demand; the arrivals counter shows the demand (the local loop's default).

It runs uvicorn in a thread of the caller's process; :meth:`Router.set_routes` swaps the routing
table between requests. starlette, uvicorn, httpx and prometheus_client come with kserve.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.processes import free_port

#: seconds the router has to start listening, and to stop
ROUTER_START_S = 20.0
#: seconds a replica has to answer one forwarded request
UPSTREAM_TIMEOUT_S = 60.0
#: the headers not passed on (hop-by-hop, or recomputed by the HTTP client)
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade", "te"}
#: KServe's latency buckets are prometheus_client's defaults; these add the sub-5 ms range
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, float("inf"))


#: predict requests counted as they arrive, labelled ``model_name``
ARRIVALS_METRIC = "nb2pipe_router_requests_total"


class RouterError(Nb2PipeError):
    """The router did not start, or was given a split it cannot route."""


@dataclass
class _Routes:
    """What the router reads per request; replaced whole by :meth:`Router.set_routes`."""

    replicas: dict[str, tuple[str, ...]] = field(default_factory=dict)
    percents: dict[str, int] = field(default_factory=dict)
    #: smooth weighted round-robin credit per variant
    credit: dict[str, int] = field(default_factory=dict)


class Router:
    """A reverse proxy on ``host``:``port`` (a free port when 0) for ``service``'s replicas."""

    def __init__(self, service: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.service = service
        self.host = host
        self.port = port or free_port(host)
        self._routes = _Routes()
        self._lock = threading.Lock()
        #: requests in flight per replica URL (read by the group to drain a replica)
        self._in_flight: dict[str, int] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._metrics: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the group's side ------------------------------------------------------------------
    def set_routes(self, replicas: Mapping[str, Sequence[str]], percents: Mapping[str, int]) -> None:
        """Route to these replica base URLs per variant, split by these percents (adding up to
        100; a variant with a share needs a replica)."""
        if sum(percents.values()) != 100:
            raise RouterError(f"the variants' percents add up to {sum(percents.values())}, not 100")
        empty = [variant for variant, share in percents.items() if share > 0 and not replicas.get(variant)]
        if empty:
            raise RouterError(f"{', '.join(empty)} get traffic but have no replica")
        with self._lock:
            self._routes = _Routes(
                {variant: tuple(urls) for variant, urls in replicas.items()},
                {variant: share for variant, share in percents.items() if share > 0},
                {variant: 0 for variant, share in percents.items() if share > 0},
            )

    def in_flight(self, replica_url: str) -> int:
        """Requests forwarded to ``replica_url`` and not answered yet."""
        with self._lock:
            return self._in_flight.get(replica_url, 0)

    def start(self) -> None:
        """Listen, in a thread; returns once the port answers (:class:`RouterError` if it does not)."""
        import uvicorn

        config = uvicorn.Config(
            self._application(),
            host=self.host,
            port=self.port,
            # the caller's process: leave its logging as it is (uvicorn's defaults reconfigure
            # the uvicorn loggers process-wide, levels included)
            log_config=None,
            log_level=None,
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"router-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + ROUTER_START_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RouterError(f"the router did not start on {self.url} within {ROUTER_START_S:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop listening (requests in flight are answered first, as uvicorn shuts down)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(ROUTER_START_S)
            if self._thread.is_alive():
                raise RouterError(f"the router on {self.url} did not stop within {ROUTER_START_S:g} s")
        self._server = self._thread = None

    def __enter__(self) -> Router:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- per request -----------------------------------------------------------------------
    def _choose(self, tried: set[str]) -> tuple[str, str] | None:
        """(variant, replica URL) for the next request, avoiding replicas in ``tried``."""
        with self._lock:
            routes = self._routes
            candidates = [v for v in routes.percents if any(url not in tried for url in routes.replicas.get(v, ()))]
            if not candidates:
                # the split's variants have nothing left: any ready replica answers the same model name
                candidates = [v for v, urls in routes.replicas.items() if any(url not in tried for url in urls)]
                if not candidates:
                    return None
                variant = candidates[0]
            else:
                variant = self._next_variant(routes, candidates)
            urls = [url for url in routes.replicas[variant] if url not in tried]
            url = min(urls, key=lambda u: self._in_flight.get(u, 0))
            self._in_flight[url] = self._in_flight.get(url, 0) + 1
            return variant, url

    @staticmethod
    def _next_variant(routes: _Routes, candidates: list[str]) -> str:
        # nginx's smooth weighted round-robin: every variant gains its percent, the richest is
        # chosen and pays the total; over 100 picks each variant gets exactly its percent
        total = sum(routes.percents[v] for v in candidates)
        for variant in candidates:
            routes.credit[variant] = routes.credit.get(variant, 0) + routes.percents[variant]
        chosen = max(candidates, key=lambda v: routes.credit[v])
        routes.credit[chosen] -= total
        return chosen

    def _done(self, url: str) -> None:
        with self._lock:
            self._in_flight[url] -= 1

    def _application(self) -> Any:
        import contextlib

        import httpx
        from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
        from prometheus_client.exposition import CONTENT_TYPE_LATEST
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        registry = CollectorRegistry()
        latency = Histogram(
            "request_predict_seconds",
            "predict requests answered through the local router (KServe's name)",
            ["model_name", "variant", "code"],
            registry=registry,
            buckets=_BUCKETS,
        )
        # prometheus_client appends _total to a counter's name itself
        arrivals = Counter(
            ARRIVALS_METRIC.removesuffix("_total"),
            "predict requests received by the local router, counted on arrival",
            ["model_name"],
            registry=registry,
        )
        client: dict[str, httpx.AsyncClient] = {}

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> Any:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            client["http"] = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S, limits=limits)
            try:
                yield
            finally:
                await client["http"].aclose()

        async def metrics(request: Request) -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

        async def forward(request: Request) -> Response:
            if request.method == "POST":
                arrivals.labels(self.service).inc()
            body = await request.body()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            tried: set[str] = set()
            start = time.perf_counter()
            while (chosen := self._choose(tried)) is not None:
                variant, url = chosen
                tried.add(url)
                try:
                    answer = await client["http"].request(request.method, url + path, content=body, headers=headers)
                except (httpx.ConnectError, httpx.RemoteProtocolError):
                    continue  # the replica went away before answering: another one answers
                finally:
                    self._done(url)
                if request.method == "POST":
                    code = str(answer.status_code)
                    latency.labels(self.service, variant, code).observe(time.perf_counter() - start)
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
                return Response(answer.content, status_code=answer.status_code, headers=kept)
            return JSONResponse({"error": f"no replica of {self.service} is ready"}, status_code=503)

        routes = [
            Route("/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", forward, methods=["GET", "POST", "HEAD"]),
        ]
        return Starlette(routes=routes, lifespan=lifespan)
