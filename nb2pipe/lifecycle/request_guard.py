"""What ``nb2pipe serve`` checks before KServe's own routes see a request (ASGI middleware).

KServe's FastAPI app answers client mistakes with 5xx in places (a non-numeric
``inference-header-content-length`` is a 500, a versioned v2 path a 501) and exposes the model
repository extension (``/v2/repository/models/NAME/unload``) to anyone who reaches the port.
:class:`RequestGuard` sits in front of it:

- the body is read whole first, bounded in size (413) and in time (408), then replayed to the app;
- the repository routes answer 404 unless the server was started with ``--model-repository``;
- ``/v2/models/NAME/versions/V/...`` is the unversioned route when V is the served version, 404 otherwise;
- a bad ``inference-header-content-length`` is 400; a v2 body without it is read as JSON
  whatever its Content-Type (tritonclient's JSON mode sends none).

:func:`route` is pure (path, headers, body -> a rewritten path or a :class:`Refusal`), so the
rules are tested without a server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BINARY_HEADER = b"inference-header-content-length"
#: where the request body is kept for the error handlers (the payload log's rejected records)
BODY_STATE_KEY = "nb2pipe_request_body"


@dataclass(frozen=True)
class GuardPolicy:
    model_name: str
    #: the registered version served (None: an unregistered model, so no versioned path matches)
    model_version: str | None
    model_repository: bool
    max_body_bytes: int
    #: seconds a client has to send the whole body once its headers are in
    read_timeout: float


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    #: end the connection after the answer (a stalled client); a refusal without it leaves the
    #: rest of a body to be read and discarded by the connection (see connection_limits)
    close: bool = False


def route(policy: GuardPolicy, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]) -> str | Refusal:
    """The path KServe should see for this request, or why it is refused (before the body)."""
    if path.startswith("/v2/repository"):
        if not policy.model_repository:
            return Refusal(
                404,
                "the model repository extension is off: start nb2pipe serve with --model-repository "
                "to load and unload models over HTTP",
            )
        parts = path.split("/")  # ["", "v2", "repository", "models", NAME, "load"|"unload"]
        if len(parts) == 6 and parts[3] == "models" and parts[4] != policy.model_name:
            return Refusal(404, f"this server loads one model, {policy.model_name}, not {parts[4]!r}")
    declared = _header(headers, b"content-length")
    if declared is not None and (not _is_count(declared) or int(declared) > policy.max_body_bytes):
        return Refusal(413, f"request body larger than {policy.max_body_bytes} bytes")
    return _unversioned(policy, path)


def check_body(method: str, path: str, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> Refusal | None:
    """Checks that need the whole body: the binary extension's JSON-part length (on v2 inference
    only: elsewhere the header means nothing, and a readiness probe must not fail on it)."""
    declared = _header(headers, BINARY_HEADER)
    if declared is None or method != "POST" or not path.endswith("/infer"):
        return None
    declared = declared.strip(b" \t")  # optional whitespace around a field value is not part of it
    if not _is_count(declared):
        return Refusal(400, f"inference-header-content-length must be a byte count, not {_shown(declared)}")
    if int(declared) > len(body):
        return Refusal(
            400, f"inference-header-content-length is {int(declared)} but the body has only {len(body)} bytes"
        )
    return None


def with_json_default(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A v2 inference body without the binary extension's header can only be JSON: read it as
    JSON whatever the Content-Type says (tritonclient's JSON mode sends none, curl -d a form type)."""
    if method != "POST" or not path.endswith("/infer") or _header(headers, BINARY_HEADER) is not None:
        return headers
    declared = _header(headers, b"content-type")
    if declared is not None and declared.split(b";")[0].strip().lower() == b"application/json":
        return headers
    return [(key, value) for key, value in headers if key.lower() != b"content-type"] + [
        (b"content-type", b"application/json")
    ]


def _unversioned(policy: GuardPolicy, path: str) -> str | Refusal:
    parts = path.split("/")
    # ["", "v2", "models", NAME, "versions", V, *rest]
    if len(parts) < 6 or parts[1:3] != ["v2", "models"] or parts[4] != "versions":
        return path
    if parts[3] != policy.model_name:  # KServe itself answers 501 for any versioned path
        return Refusal(404, f"model {parts[3]!r} is not served here; this server serves {policy.model_name}")
    version, rest = parts[5], parts[6:]
    if policy.model_version is None or version != policy.model_version:
        served = f"version {policy.model_version}" if policy.model_version else "an unversioned model"
        return Refusal(404, f"model {policy.model_name} has no version {version!r} here; this server serves {served}")
    return "/".join(parts[:4] + rest)


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _is_count(value: bytes) -> bool:
    return value.isdigit() and len(value) <= 15  # bytes.isdigit is ASCII-only


def _shown(value: bytes) -> str:
    return repr(value[:40].decode("latin-1"))


class RequestGuard:
    """ASGI middleware applying :func:`route` and :func:`check_body` to every HTTP request."""

    def __init__(self, app: Any, policy: GuardPolicy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers") or [])
        routed = route(self.policy, scope["method"], scope["path"], headers)
        if isinstance(routed, Refusal):
            await refuse(send, routed)
            return
        body = await self._read_body(receive)
        if isinstance(body, Refusal):
            await refuse(send, body)
            return
        if body is None:  # the client went away mid-body: nobody to answer
            return
        refusal = check_body(scope["method"], routed, headers, body)
        if refusal is not None:
            await refuse(send, refusal)
            return
        scope = dict(scope)
        if routed != scope["path"]:
            scope["path"] = routed
            scope["raw_path"] = routed.encode()
        scope["headers"] = with_json_default(scope["method"], routed, headers)
        state = scope.get("state")
        if isinstance(state, dict):
            state[BODY_STATE_KEY] = body
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | Refusal | None:
        chunks: list[bytes] = []
        size = 0
        try:
            # one deadline for the whole body (wait_for per message costs a task and loop turns)
            async with asyncio.timeout(self.policy.read_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.policy.max_body_bytes:
                        return Refusal(413, f"request body larger than {self.policy.max_body_bytes} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            return Refusal(408, f"the request body did not arrive within {self.policy.read_timeout:g} s", True)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body in one message, then the real channel (for http.disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def refuse(send: Send, refusal: Refusal) -> None:
    body = json.dumps({"error": refusal.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refusal.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
