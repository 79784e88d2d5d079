"""``nb2pipe serve``: an MLflow model behind KServe's own ``ModelServer``.

:class:`MlflowModel` is a small ``kserve.Model`` (load / predict) answering the v1 protocol
(``/v1/models/NAME:predict``) and the v2 Open Inference Protocol
(``/v2/models/NAME/infer``); with an explainer (Anchor or Integrated Gradients) it also answers
``/v1/models/NAME:explain``, fitted on the training data kept with the registered version and
warmed before the server reports ready. :func:`serve` starts KServe's REST server bound to the host
asked for (KServe itself always binds 0.0.0.0), without gRPC, with request bodies capped,
and with every malformed payload answered 400.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.lifecycle.calling import metadata_tensors, model_signature, output_tensors, signature_specs
from nb2pipe.lifecycle.explainer import MAX_EXPLAINED_ROWS, ExplainerBuilder, ServedExplainer
from nb2pipe.lifecycle.predictor import BadPayload, Predictor
from nb2pipe.store.payloads import PayloadLog
from nb2pipe.store.registry import input_columns, load_native, resolve_model

#: Largest request body accepted (bytes); bigger ones get 413 before they are read whole.
MAX_BODY_BYTES = 16 * 1024 * 1024

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ServeOptions:
    model_uri: str
    name: str
    host: str = "127.0.0.1"
    port: int = 8080
    log_payloads: str | None = None
    access_log: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    #: "anchor" or "ig": also answer :explain
    explainer: str | None = None
    #: the data the explainer is fitted on (default: the training data kept with the version)
    reference: str | None = None
    #: fits an explainer: ``(method, model, reference) -> Explainer``. The CLI passes
    #: nb2pipe.monitoring.explain.build_explainer; serving itself imports no explainer backend.
    build_explainer: ExplainerBuilder | None = None


def _kserve() -> Any:
    """Import kserve without letting its import-time argv parsing see nb2pipe's arguments."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve
    finally:
        sys.argv = saved
    return kserve


def model_class() -> type:
    """The ``kserve.Model`` subclass; built on first use so kserve loads only when serving."""
    kserve = _kserve()
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class MlflowModel(kserve.Model):  # type: ignore[name-defined]
        """Template method as KServe defines it: ``load`` once, ``predict`` per request."""

        def __init__(
            self,
            name: str,
            model_uri: str,
            payload_dir: str | None = None,
            explainer: str | None = None,
            reference: str | None = None,
            build_explainer: ExplainerBuilder | None = None,
        ) -> None:
            super().__init__(name)
            self.model_uri = model_uri
            self.payload_dir = payload_dir
            self.explainer_method = explainer
            self.reference_path = reference
            self.build_explainer = build_explainer
            self.predictor: Predictor | None = None
            self.payloads: PayloadLog | None = None
            self.version: str | None = None
            self.explainer: ServedExplainer | None = None
            self.input_types: list[dict[str, Any]] = []
            self.output_types: list[dict[str, Any]] = []

        def load(self) -> bool:
            source = resolve_model(self.model_uri)
            columns, types = input_columns(source)
            signature = model_signature(source)
            if signature is not None:
                self.input_types = metadata_tensors(signature_specs(signature.inputs))
                self.output_types = output_tensors(signature_specs(signature.outputs))
            self.predictor = Predictor.build(load_native(source), columns, types)
            self.version = source.version
            if self.explainer_method:
                self.explainer = ServedExplainer.build(
                    self.explainer_method, source, self.predictor.model, self.reference_path, self.build_explainer
                )
            if self.payload_dir:
                self.payloads = PayloadLog(self.payload_dir, self.name, source.version)
            self.ready = True
            return True

        def get_input_types(self) -> list[dict[str, Any]]:
            # KServe's dataplane answers GET /v2/models/NAME with these (Open Inference Protocol metadata)
            return self.input_types

        def get_output_types(self) -> list[dict[str, Any]]:
            return self.output_types

        def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            predictor = self.predictor
            assert predictor is not None, "load() runs before the server starts"
            try:
                if isinstance(payload, InferRequest):
                    return self._predict_v2(predictor, payload)
                rows = predictor.rows_from_v1(payload)
                predictions = predictor.predict(predictor.table(rows))
            except BadPayload as exc:
                raise InvalidInput(str(exc)) from None
            if self.payloads:
                self.payloads.append("v1", predictor.columns, rows, predictions)
            return {"predictions": predictions}

        async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            predictor, explainer = self.predictor, self.explainer
            assert predictor is not None, "load() runs before the server starts"
            if explainer is None:
                raise InvalidInput(f"{self.name} serves no explainer: start it with --explainer anchor or ig")
            try:
                rows = predictor.rows_from_v1(payload)
                if not rows:
                    raise BadPayload("no rows to explain")
                if len(rows) > MAX_EXPLAINED_ROWS:
                    raise BadPayload(f"{len(rows)} rows to explain; send at most {MAX_EXPLAINED_ROWS} per request")
                # an explanation takes a fraction of a second: keep the event loop answering :predict
                answer = await asyncio.to_thread(explainer.explain, predictor, rows)
            except BadPayload as exc:
                raise InvalidInput(str(exc)) from None
            return {"model_name": self.name, "model_version": self.version, **answer}

        def _predict_v2(self, predictor: Predictor, request: Any) -> Any:
            tensors = []
            for item in request.inputs:
                try:
                    data = item.as_numpy()
                except Exception as exc:  # kserve raises bare Exception/ValueError for bad tensors
                    raise BadPayload(f"input {item.name!r}: {exc}") from None
                tensors.append((item.name, list(item.shape), data))
            table = predictor.rows_from_tensors(tensors)
            predictions = predictor.predict(table)
            if self.payloads:
                rows = table.values.tolist() if hasattr(table, "values") else table.tolist()
                self.payloads.append("v2", predictor.columns, rows, predictions)
            output = InferOutput(name="predict", shape=[len(predictions)], datatype=_datatype(predictions))
            output.set_data_from_numpy(_as_array(predictions))
            return InferResponse(
                response_id=request.id or str(uuid.uuid4()),  # None makes KServe answer 500
                model_name=self.name,
                model_version=self.version,
                infer_outputs=[output],
            )

    return MlflowModel


def _datatype(values: list[Any]) -> str:
    sample = values[0] if values else 0.0
    if isinstance(sample, bool):
        return "BOOL"
    if isinstance(sample, int):
        return "INT64"
    if isinstance(sample, float):
        return "FP64"
    return "BYTES"


def _as_array(values: list[Any]) -> Any:
    import numpy as np

    kind = _datatype(values)
    if kind == "BYTES":
        return np.asarray([str(v) for v in values], dtype=object)
    return np.asarray(values, dtype={"BOOL": bool, "INT64": np.int64, "FP64": np.float64}[kind])


class BodyLimit:
    """ASGI middleware: 413 for bodies over the limit, counted as they stream in."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _reject(send, self.limit)
            return
        seen = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _reject(send, self.limit)


class _TooLarge(Exception):
    pass


async def _reject(send: Send, limit: int) -> None:
    body = f'{{"error": "request body larger than {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_server(options: ServeOptions) -> tuple[Any, Any]:
    """The loaded model and a KServe ``ModelServer`` ready to serve it on options.host."""
    _kserve()
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve import model_server

    model = model_class()(
        options.name,
        options.model_uri,
        options.log_payloads,
        options.explainer,
        options.reference,
        options.build_explainer,
    )
    model.load()

    async def validation_error(_: Any, exc: RequestValidationError) -> Any:
        # FastAPI answers 422 for a v2 body that is JSON but not an inference request
        return JSONResponse(status_code=400, content={"error": f"invalid inference request: {exc.errors()[:3]}"})

    app = model_server.app
    if not getattr(app.state, "nb2pipe_configured", False):
        app.add_exception_handler(RequestValidationError, validation_error)
        app.add_middleware(BodyLimit, limit=options.max_body_bytes)
        app.state.nb2pipe_configured = True
    server = _HostBoundModelServer(
        options.host,
        http_port=options.port,
        workers=1,
        enable_grpc=False,
        enable_docs_url=False,
        enable_latency_logging=False,
    )
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


def _host_bound_server_class() -> type:
    kserve = _kserve()
    from kserve.model_server import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.rest.server import RESTServer

    class HostBoundModelServer(kserve.ModelServer):  # type: ignore[name-defined]
        """KServe's ModelServer with the REST server bound to a chosen host."""

        def __init__(self, host: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.host = host

        def start(self, models: list[Any]) -> None:
            import asyncio

            self._register_and_check_atleast_one_model_is_ready(models)
            self._rest_server = RESTServer(
                FASTAPI_APP_IMPORT_STRING,
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                access_log_format=self.access_log_format,
                workers=1,
                grace_period=self.grace_period,
                event_loop=self.event_loop,
                timeout_keep_alive=self.timeout_keep_alive,
            )
            self._rest_server.config.host = self.host  # KServe hard-codes 0.0.0.0
            self.servers.append(self._rest_server.start())
            self.setup_event_loop()
            self.register_signal_handler()
            asyncio.run(self._serve())

    return HostBoundModelServer


def _HostBoundModelServer(host: str, **kwargs: Any) -> Any:
    return _host_bound_server_class()(host, **kwargs)
