"""What ``nb2pipe serve`` logs, and where: one line per client error, a traceback only for the
server's own faults, to stderr (as containers expect) or to a size-bounded rotating file.

KServe's handlers log a full traceback for every 4xx (2 kB each: 32 MB after ~22k bad
requests). :func:`install_error_handlers` replaces them with handlers giving the same status
codes (client mistakes never 5xx) and telling the payload log about rejected predictions.
"""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nb2pipe.lifecycle.request_guard import BODY_STATE_KEY

#: ``(protocol, reason, body) -> None``: records a prediction request the server refused
RejectionRecorder = Callable[[str, str, bytes | None], None]

#: a rotating log keeps at most LOG_FILE_BYTES * (LOG_BACKUPS + 1) bytes
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 2
_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
_LOGGERS = ("kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access", "nb2pipe", "py.warnings")
#: loggers given the handler; the others reach it through their parent
_ROOTS = ("kserve", "uvicorn", "uvicorn.access", "nb2pipe", "py.warnings")

logger = logging.getLogger("nb2pipe.serve")


def configure_logging(log_file: str | Path | None) -> None:
    """Every server logger to one handler: stderr, or LOG_FILE rotated at LOG_FILE_BYTES."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler()
    else:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    handler.setFormatter(logging.Formatter(_FORMAT))
    for name in _LOGGERS:
        named = logging.getLogger(name)
        named.handlers = [handler] if name in _ROOTS else []
        named.propagate = name not in _ROOTS
    for name in ("kserve", "uvicorn", "nb2pipe"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.captureWarnings(True)  # library warnings become one log line each, in the same place


def install_error_handlers(app: Any, model_name: str, record_rejection: RejectionRecorder | None) -> None:
    """Override KServe's exception handlers on its FastAPI app (after it registered its own)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve.errors import (
        InferenceError,
        InvalidInput,
        ModelNotFound,
        ModelNotReady,
        ServerNotLive,
        ServerNotReady,
        UnsupportedProtocol,
    )

    def answer(request: Any, status: int, message: str) -> Any:
        logger.info("%s %s %s - %s", status, request.method, request.url.path, _one_line(message))
        return JSONResponse(status_code=status, content={"error": message})

    def rejected(request: Any, message: str) -> Any:
        protocol = _prediction_protocol(request.url.path, model_name)
        if record_rejection is not None and protocol is not None:
            body = (request.scope.get("state") or {}).get(BODY_STATE_KEY)
            record_rejection(protocol, message, body)
        return answer(request, 400, message)

    async def invalid_input(request: Any, exc: Exception) -> Any:
        return rejected(request, str(exc))

    async def invalid_request(request: Any, exc: Any) -> Any:
        # FastAPI answers 422 for a v2 body that is JSON but not an inference request
        return rejected(request, f"invalid inference request: {_validation_summary(exc)}")

    def status_handler(status: int) -> Callable[[Any, Exception], Any]:
        async def handler(request: Any, exc: Exception) -> Any:
            return answer(request, status, str(exc))

        return handler

    async def server_fault(request: Any, exc: Exception) -> Any:
        # the server's own fault: the one case worth a traceback
        logger.error("500 %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(status_code=500, content={"error": f"{type(exc).__name__}: {exc}"})

    app.add_exception_handler(InvalidInput, invalid_input)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(UnsupportedProtocol, status_handler(400))
    app.add_exception_handler(ModelNotFound, status_handler(404))
    app.add_exception_handler(ModelNotReady, status_handler(503))
    app.add_exception_handler(ServerNotReady, status_handler(503))
    app.add_exception_handler(ServerNotLive, status_handler(503))
    app.add_exception_handler(NotImplementedError, status_handler(501))
    app.add_exception_handler(InferenceError, server_fault)
    app.add_exception_handler(Exception, server_fault)


def _prediction_protocol(path: str, model_name: str) -> str | None:
    if path == f"/v1/models/{model_name}:predict":
        return "v1"
    if path == f"/v2/models/{model_name}/infer":
        return "v2"
    return None


def _validation_summary(exc: Any) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 300 else flat[:297] + "..."
