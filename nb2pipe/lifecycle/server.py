"""``nb2pipe serve``: an MLflow model behind KServe's own ``ModelServer``, hardened for a port
anyone may reach.

KServe's REST server (FastAPI on uvicorn) answers the v1 and v2 protocols for
:mod:`nb2pipe.lifecycle.served_model`'s model. :func:`build_server` adds what a production
server needs and KServe leaves out:

- bound to the host asked for (KServe itself always binds 0.0.0.0), without gRPC;
- the model repository extension (``/v2/repository/models/NAME/load|unload``) off unless asked
  for, and readiness false whenever the model is not loaded;
- request heads bounded in size and time (:mod:`connection_limits`), bodies in size and time,
  versioned v2 paths and the binary extension's header checked (:mod:`request_guard`);
- client mistakes answered 4xx and logged in one line (:mod:`server_logging`), the log on stderr
  or in a rotating file; rejected predictions kept in the payload log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.lifecycle.batcher import BatchPolicy
from nb2pipe.lifecycle.connection_limits import MAX_HEADER_BYTES, limited_protocol
from nb2pipe.lifecycle.explainer import ExplainerBuilder
from nb2pipe.lifecycle.request_guard import GuardPolicy, RequestGuard
from nb2pipe.lifecycle.served_model import kserve_module, model_class
from nb2pipe.lifecycle.server_logging import configure_logging, install_error_handlers

#: Largest request body accepted (bytes); bigger ones get 413 before they are read whole.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Seconds a client has to send a request's head, and then its body, before 408.
READ_TIMEOUT_S = 30.0
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_S = 65


@dataclass(frozen=True)
class ServeOptions:
    model_uri: str
    name: str
    host: str = "127.0.0.1"
    port: int = 8080
    log_payloads: str | None = None
    access_log: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    max_header_bytes: int = MAX_HEADER_BYTES
    read_timeout: float = READ_TIMEOUT_S
    #: rotating log file (None: stderr, as containers expect)
    log_file: str | None = None
    #: answer the v2 model repository extension (load/unload over HTTP: anyone reaching the port may)
    model_repository: bool = False
    #: "anchor" or "ig": also answer :explain
    explainer: str | None = None
    #: the data the explainer is fitted on (default: the training data kept with the version)
    reference: str | None = None
    #: fits an explainer: ``(method, model, reference) -> Explainer``. The CLI passes
    #: nb2pipe.monitoring.explain.build_explainer; serving itself imports no explainer backend.
    build_explainer: ExplainerBuilder | None = None
    #: KServe's batcher (:mod:`nb2pipe.lifecycle.batcher`): None serves each request alone
    batching: BatchPolicy | None = None


def build_server(options: ServeOptions) -> tuple[Any, Any]:
    """The loaded model and a KServe ``ModelServer`` ready to serve it on options.host."""
    configure_logging(options.log_file)
    models = _served_models_class()(lambda: _load_model(options))
    model = models.load_served(options.name)
    server = _hardened_server_class()(
        options,
        model,
        registered_models=models,
        http_port=options.port,
        workers=1,
        enable_grpc=False,
        enable_docs_url=False,
        enable_latency_logging=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    configure_logging(options.log_file)  # KServe's ModelServer configured its own handlers
    _quiet_kserve_deprecations()
    logging.getLogger("uvicorn.access").disabled = not options.access_log
    return model, server


def serve(options: ServeOptions) -> None:
    """Load the model and serve it until SIGINT/SIGTERM."""
    if options.log_payloads:
        Path(options.log_payloads).mkdir(parents=True, exist_ok=True)
    model, server = build_server(options)
    print(
        f"nb2pipe: serving {options.model_uri} as {options.name!r} on http://{options.host}:{options.port} "
        f"(v1 /v1/models/{options.name}:predict, v2 /v2/models/{options.name}/infer"
        + (f", {options.explainer} /v1/models/{options.name}:explain)" if options.explainer else ")"),
        flush=True,
    )
    server.start([model])


def _quiet_kserve_deprecations() -> None:
    """KServe's routes use FastAPI's deprecated ORJSONResponse: the warning says nothing to a user,
    and every ``warnings.catch_warnings`` (scikit-learn's predict has some) makes it show again,
    3 log lines a request."""
    import warnings

    from fastapi.exceptions import FastAPIDeprecationWarning

    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)


def _load_model(options: ServeOptions) -> Any:
    model = model_class()(
        options.name,
        options.model_uri,
        options.log_payloads,
        options.explainer,
        options.reference,
        options.build_explainer,
        options.batching,
    )
    model.load()
    return model


def _served_models_class() -> type:
    """KServe's model repository holding the one model this server loads (again, on ``load``)."""
    kserve_module()
    from kserve.model_repository import ModelRepository

    class ServedModels(ModelRepository):
        def __init__(self, load: Any) -> None:
            super().__init__()
            self._load = load

        def load_served(self, name: str) -> Any:
            model = self._load()
            self.update(model, name)
            return model

        def load(self, name: str) -> bool:
            # the request guard answers 404 for any other name before this is reached
            self.load_served(name)
            return True

    return ServedModels


def _hardened_server_class() -> type:
    kserve = kserve_module()
    from kserve.model_server import FASTAPI_APP_IMPORT_STRING, app as kserve_app
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.rest.server import RESTServer

    class TruthfulDataPlane(DataPlane):
        """Ready only while the model is loaded; undecodable requests are the client's fault."""

        def __init__(self, served_name: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.served_name = served_name

        async def ready(self) -> bool:
            return await self.model_ready(self.served_name)

        async def model_ready(self, model_name: str, disable_predictor_health_check: bool = False) -> bool:
            if model_name == self.served_name and self.model_registry.get_model(model_name) is None:
                return False  # unloaded through the repository extension
            return bool(await super().model_ready(model_name, disable_predictor_health_check))

        async def model_metadata(self, model_name: str) -> dict[str, Any]:
            metadata: dict[str, Any] = await super().model_metadata(model_name)
            version = getattr(self.model_registry.get_model(model_name), "version", None)
            return {**metadata, "versions": [version]} if version else metadata

        def decode(self, body: Any, headers: Any, *args: Any, **kwargs: Any) -> Any:
            from kserve.errors import InvalidInput

            try:
                return super().decode(body, headers, *args, **kwargs)
            except InvalidInput:
                raise
            except Exception as exc:  # decoding reads only the client's bytes: its failures are 400s
                raise InvalidInput(f"the request cannot be decoded: {exc}") from None

    class HardenedRESTServer(RESTServer):
        def __init__(self, options: ServeOptions, model: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.options, self.model = options, model
            self.config.host = options.host  # KServe hard-codes 0.0.0.0
            self.config.http = limited_protocol(options.read_timeout, options.max_header_bytes)

        def _add_middlewares(self, app: Any) -> None:
            # KServe's timing middleware logs a line per request and matches every route again
            if getattr(app.state, "nb2pipe_configured", False):
                raise RuntimeError("nb2pipe serves one model per process")
            app.state.nb2pipe_configured = True
            policy = GuardPolicy(
                self.options.name,
                self.model.version,
                self.options.model_repository,
                self.options.max_body_bytes,
                self.options.read_timeout,
            )
            app.add_middleware(RequestGuard, policy=policy)

        def create_application(self) -> None:
            super().create_application()
            install_error_handlers(kserve_app, self.options.name, self._record_rejection)

        def _record_rejection(self, protocol: str, reason: str, body: bytes | None) -> None:
            # the model held now: the repository extension may have loaded a new one
            current = self.dataplane.model_registry.get_model(self.options.name) or self.model
            current.record_rejection(protocol, reason, body)

    class HardenedModelServer(kserve.ModelServer):  # type: ignore[name-defined]
        def __init__(self, options: ServeOptions, model: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.options, self.model = options, model
            self.dataplane = TruthfulDataPlane(options.name, model_registry=self.registered_models)

        def start(self, models: list[Any]) -> None:
            import asyncio

            self._register_and_check_atleast_one_model_is_ready(models)
            self._rest_server = HardenedRESTServer(
                self.options,
                self.model,
                FASTAPI_APP_IMPORT_STRING,
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                workers=1,
                grace_period=self.grace_period,
                event_loop=self.event_loop,
                timeout_keep_alive=self.timeout_keep_alive,
            )
            self.servers.append(self._rest_server.start())
            # uvicorn's loop (uvloop when installed): KServe's asyncio.run ignores it, and its
            # setup_event_loop configures a loop other than the one that then runs
            with asyncio.Runner(loop_factory=self._rest_server.config.get_loop_factory()) as runner:
                runner.get_loop()
                self.setup_event_loop()
                self.register_signal_handler()
                runner.run(self._serve())

    return HardenedModelServer
