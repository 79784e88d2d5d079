"""The request rules nb2pipe serve applies before KServe's routes (pure functions and the ASGI
middleware driven in-process, no server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nb2pipe.lifecycle.connection_limits import raw_refusal
from nb2pipe.lifecycle.request_guard import (
    BODY_STATE_KEY,
    GuardPolicy,
    Refusal,
    RequestGuard,
    check_body,
    route,
    with_json_default,
)

POLICY = GuardPolicy("cancer", "3", model_repository=False, max_body_bytes=1000, read_timeout=0.2)
WITH_REPOSITORY = GuardPolicy("cancer", "3", model_repository=True, max_body_bytes=1000, read_timeout=0.2)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/models/cancer/versions/3/infer", "/v2/models/cancer/infer"),
        ("/v2/models/cancer/versions/3/ready", "/v2/models/cancer/ready"),
        ("/v2/models/cancer/versions/3", "/v2/models/cancer"),
        ("/v2/models/cancer/infer", "/v2/models/cancer/infer"),
        ("/v1/models/cancer:predict", "/v1/models/cancer:predict"),
    ],
)
def test_the_served_version_is_the_unversioned_route(path: str, expected: str):
    assert route(POLICY, "POST", path, []) == expected


@pytest.mark.parametrize("version", ["2", "03", "", "latest", "3.0"])
def test_any_other_version_is_404_naming_the_served_one(version: str):
    refusal = route(POLICY, "POST", f"/v2/models/cancer/versions/{version}/infer", [])
    assert isinstance(refusal, Refusal) and refusal.status == 404
    assert "serves version 3" in refusal.message


@pytest.mark.parametrize("path", ["/v2/models/other/versions/3/infer", "/v2/models/other/versions/1"])
def test_another_models_versions_are_404_not_kserves_501(path: str):
    refusal = route(POLICY, "GET", path, [])
    assert isinstance(refusal, Refusal) and refusal.status == 404 and "'other' is not served" in refusal.message


def test_an_unregistered_model_has_no_versioned_route():
    unversioned = GuardPolicy("cancer", None, False, 1000, 1.0)
    refusal = route(unversioned, "GET", "/v2/models/cancer/versions/1", [])
    assert isinstance(refusal, Refusal) and refusal.status == 404


@pytest.mark.parametrize("action", ["load", "unload"])
def test_repository_routes_are_off_unless_asked_for(action: str):
    path = f"/v2/repository/models/cancer/{action}"
    refusal = route(POLICY, "POST", path, [])
    assert isinstance(refusal, Refusal) and refusal.status == 404 and "--model-repository" in refusal.message
    assert route(WITH_REPOSITORY, "POST", path, []) == path
    other = route(WITH_REPOSITORY, "POST", f"/v2/repository/models/other/{action}", [])
    assert isinstance(other, Refusal) and other.status == 404


@pytest.mark.parametrize("length", [b"1001", b"abc", b"-1", b"1e3", b"99999999999999999999"])
def test_a_declared_body_too_big_or_not_a_count_is_413(length: bytes):
    refusal = route(POLICY, "POST", "/v1/models/cancer:predict", [(b"content-length", length)])
    assert isinstance(refusal, Refusal) and refusal.status == 413


INFER = ("POST", "/v2/models/cancer/infer")


@pytest.mark.parametrize("value", [b"abc", b"", b"1e3", b"-5", b"4 4", "٣".encode()])
def test_a_binary_header_that_is_not_a_byte_count_is_400(value: bytes):
    refusal = check_body(*INFER, [(b"inference-header-content-length", value)], b"{}")
    assert isinstance(refusal, Refusal) and refusal.status == 400 and "byte count" in refusal.message


def test_a_binary_header_longer_than_the_body_is_400():
    refusal = check_body(*INFER, [(b"Inference-Header-Content-Length", b"50")], b"{}")
    assert isinstance(refusal, Refusal) and refusal.status == 400 and "only 2 bytes" in refusal.message
    assert check_body(*INFER, [(b"inference-header-content-length", b" 2\t")], b"{}") is None
    assert check_body(*INFER, [], b"anything") is None


def test_the_binary_header_means_nothing_outside_v2_inference():
    odd = [(b"inference-header-content-length", b"abc")]
    assert check_body("GET", "/v2/health/ready", odd, b"") is None
    assert check_body("POST", "/v1/models/cancer:predict", odd, b"{}") is None


@pytest.mark.parametrize(
    "headers",
    [[], [(b"content-type", b"application/x-www-form-urlencoded")], [(b"Content-Type", b"text/plain")]],
)
def test_a_v2_body_without_the_binary_header_is_read_as_json(headers: list[tuple[bytes, bytes]]):
    fixed = with_json_default("POST", "/v2/models/cancer/infer", headers)
    assert [value for key, value in fixed if key.lower() == b"content-type"] == [b"application/json"]


def test_json_content_types_and_binary_requests_are_left_alone():
    json_type = [(b"content-type", b"application/json; charset=utf-8")]
    assert with_json_default("POST", "/v2/models/cancer/infer", json_type) == json_type
    binary = [(b"inference-header-content-length", b"10"), (b"content-type", b"application/octet-stream")]
    assert with_json_default("POST", "/v2/models/cancer/infer", binary) == binary
    assert with_json_default("POST", "/v1/models/cancer:predict", []) == []


def test_a_raw_refusal_is_a_whole_http_response():
    response = raw_refusal(431, 'headers "too" large')
    head, body = response.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431 ") and b"connection: close" in head
    assert int(head.split(b"content-length: ")[1].split(b"\r\n")[0]) == len(body)


# --- the middleware, driven in-process --------------------------------------------------------


class Recorder:
    """A downstream app recording what reached it."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] | None = None
        self.body: bytes | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        self.body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def drive(path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None, stall: bool = False):
    app = Recorder()
    sent: list[dict[str, Any]] = []
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or stall}
        await asyncio.sleep(10)  # a client that stopped sending
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers or [], "state": {}}
    asyncio.run(asyncio.wait_for(RequestGuard(app, POLICY)(scope, receive, send), 5))
    return app, sent, scope


def test_the_body_is_read_whole_then_replayed_and_kept_for_the_error_handlers():
    app, sent, scope = drive("/v2/models/cancer/versions/3/infer", [b'{"in', b'puts": []}'])
    assert app.body == b'{"inputs": []}' and sent[0]["status"] == 200
    assert app.scope is not None and app.scope["path"] == "/v2/models/cancer/infer"
    assert scope["state"][BODY_STATE_KEY] == b'{"inputs": []}'


def test_a_body_over_the_limit_while_streaming_is_413():
    app, sent, _ = drive("/v1/models/cancer:predict", [b"x" * 600, b"x" * 600])
    assert app.scope is None and sent[0]["status"] == 413


def test_a_stalled_body_is_408_after_the_read_timeout():
    app, sent, _ = drive("/v1/models/cancer:predict", [b'{"instances"'], stall=True)
    assert app.scope is None and sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
