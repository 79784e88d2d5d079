"""Hostile requests for ``nb2pipe serve``, as raw bytes.

:func:`hostile_jobs` is a seeded generator of requests an attacker (or a broken client) sends:
malformed HTTP, odd header bytes, absurd lengths, hostile JSON and binary bodies, unknown routes,
wrong methods, pipelined requests, clients that stall mid-header or mid-body. Every request has a
class name (``kind``) and the outcomes it may get (``allowed``); tests/support/hostile.py sends them.
Standard library only.
"""

from __future__ import annotations

import gzip
import json
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

CLOSED, RESET, TIMEOUT, REFUSED, GARBLED = "closed", "reset", "timeout", "refused", "garbled"
OK = frozenset({"200"})
CLIENT_ERROR = frozenset({"4xx"})
ANSWERED = frozenset({"2xx", "4xx"})  # either is fine, as long as it is not a 5xx
NOT_FOUND = frozenset({"404"})
BAD_REQUEST = frozenset({"400"})
WRONG_METHOD = frozenset({"405"})
#: malformed framing or an over-limit head: a 4xx, or the connection closed (a reset is tolerated:
#: the server may close with bytes of ours still unread)
REFUSED_OR_CLOSED = frozenset({"4xx", CLOSED, RESET})
#: a client that stopped sending: a 408 (or other 4xx) or the connection closed
CUT_OFF = frozenset({"4xx", CLOSED, RESET})


@dataclass(frozen=True)
class Served:
    """What the generator knows of the served model."""

    name: str
    version: str
    columns: tuple[str, ...]
    row: tuple[float, ...]  # one valid row, in column order


@dataclass(frozen=True)
class Probe:
    """One request (or request fragment) as the bytes sent, and the outcomes allowed for it."""

    kind: str
    data: bytes
    allowed: frozenset[str]
    #: the bytes are one well-framed request: a response is owed, never a close or a reset
    complete: bool = True
    head: bool = False  # a HEAD request: its response has no body
    #: a slow but live client: the first ``split`` bytes, ``pause`` seconds, then the rest
    pause: float = 0.0
    split: int = 0
    #: a slowloris: one byte every ``trickle`` seconds (its time counts from the first byte)
    trickle: float = 0.0

    def accepts(self, label: str) -> bool:
        return label in self.allowed or (label[:1].isdigit() and f"{label[0]}xx" in self.allowed)


@dataclass(frozen=True)
class Job:
    """Probes sent over one connection: ``keepalive`` one after the other (reconnecting when the
    server closes), ``pipeline`` all in one write, ``alone`` one probe on a connection of its own."""

    mode: str
    probes: tuple[Probe, ...]

    @property
    def slow(self) -> bool:
        return any(not p.complete or p.pause or p.trickle for p in self.probes)


# --- building requests ------------------------------------------------------------------------


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def http(
    method: str | bytes,
    path: str | bytes,
    body: bytes = b"",
    headers: Sequence[str | bytes] = (),
    *,
    version: str = "HTTP/1.1",
    length: bool = True,
    host: bool = True,
) -> bytes:
    """The raw bytes of one request; Content-Length is added for a body unless ``length`` is False."""
    lines = [_b(method) + b" " + _b(path) + b" " + _b(version)]
    if host:
        lines.append(b"Host: 127.0.0.1")
    lines += [_b(h) for h in headers]
    if length and (body or _b(method) in (b"POST", b"PUT")):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body: bytes, pieces: int = 3) -> bytes:
    size = max(1, -(-len(body) // pieces))
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


JSON = "Content-Type: application/json"
FORM = "Content-Type: application/x-www-form-urlencoded"
MULTIPART = "Content-Type: multipart/form-data; boundary=b"
GZIP = "Content-Encoding: gzip"
#: inference-header-content-length values a binary v2 request may carry by mistake (all must be 400)
BAD_HEADER_LENGTHS = {
    "abc": "abc",
    "empty": "",
    "1e3": "1e3",
    "negative": "-5",
    "past-body": "100000",
    "huge": "9" * 40,
    "zero": "0",
    "short": "10",
}


Body = bytes | Callable[[], bytes]
RAW = "RAW"  # a spec whose body makes the whole request
#: kind -> (weight, allowed, method, path, body, headers); paths and bodies are filled per model
Spec = tuple[int, frozenset[str], str, str | Callable[[], str], Body, tuple[str | bytes, ...]]


class RequestBook:
    """The request classes, seeded: ``framed()`` (well-framed requests a keep-alive connection can
    carry), ``broken()`` (malformed HTTP, each on a connection of its own) and ``stalls()``."""

    def __init__(self, served: Served, rng: random.Random) -> None:
        self.served, self.rng = served, rng
        name = served.name
        self.v1, self.v2 = f"/v1/models/{name}:predict", f"/v2/models/{name}/infer"
        self.framed_specs = {**self._valid(), **self._v1_bodies(), **self._v2_bodies(), **self._routes()}
        self.broken_specs = self._broken()

    # -- bodies
    def rows(self, count: int | None = None) -> list[list[float]]:
        count = count or self.rng.randint(1, 5)
        return [[v * self.rng.uniform(0.9, 1.1) for v in self.served.row] for _ in range(count)]

    def v1_body(self, rows: list[list[float]] | None = None) -> bytes:
        return json.dumps({"instances": rows or self.rows()}).encode()

    def v2_body(self, datatype: str = "FP64") -> bytes:
        rows = self.rows()
        data = [v for row in rows for v in row]
        tensor = {"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": datatype, "data": data}
        return json.dumps({"id": f"r{self.rng.randrange(10**6)}", "inputs": [tensor]}).encode()

    def v2_binary(self, size: int | None = None) -> tuple[bytes, int]:
        """A binary-mode v2 body (JSON header, then the raw FP64 tensor) and the JSON header's length;
        ``size`` overrides the binary_data_size the header declares."""
        rows = self.rows()
        values = [v for row in rows for v in row]
        raw = struct.pack(f"<{len(values)}d", *values)
        tensor = {"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64"}
        parameters = {"binary_data_size": len(raw) if size is None else size}
        header = json.dumps({"inputs": [{**tensor, "parameters": parameters}]}).encode()
        return header + raw, len(header)

    def binary(self, path: str, header_length: str | None = None, size: int | None = None) -> bytes:
        body, length = self.v2_binary(size)
        value = str(length) if header_length is None else header_length
        headers = ["Content-Type: application/octet-stream", f"Inference-Header-Content-Length: {value}"]
        return http("POST", path, body, headers)

    def _binary_maker(self, path: str, header_length: str) -> Callable[[], bytes]:
        return lambda: self.binary(path, header_length)

    def tensor(self, first: str | None = None, **fields: object) -> bytes:
        """A one-row v2 JSON body with ``fields`` replaced; ``first`` is written as the first value
        verbatim (NaN, Infinity: not JSON)."""
        width = len(self.served.row)
        tensor = {"name": "x", "shape": [1, width], "datatype": "FP64", "data": list(self.served.row), **fields}
        text = json.dumps({"inputs": [tensor]})
        if first is not None:
            text = text.replace('"data": [' + repr(self.served.row[0]), '"data": [' + first, 1)
        return text.encode()

    def row_with(self, first: str) -> bytes:
        values = ", ".join([first, *(repr(v) for v in self.served.row[1:])])
        return b'{"instances": [[' + values.encode() + b"]]}"

    # -- the classes
    def _valid(self) -> dict[str, Spec]:
        """What clients mean to send: the answers must stay right through the storm."""
        name, at = self.served.name, f"/v2/models/{self.served.name}/versions/{self.served.version}"
        v1, v2, v2_body = self.v1, self.v2, self.v2_body
        return {
            "v1-predict": (30, OK, "POST", v1, self.v1_body, (JSON,)),
            "v2-infer-json": (20, OK, "POST", v2, v2_body, (JSON,)),
            "v2-infer-fp32": (6, OK, "POST", v2, lambda: v2_body("FP32"), (JSON,)),
            "v2-infer-json-no-content-type": (6, OK, "POST", v2, v2_body, ()),
            "v2-version-infer": (6, OK, "POST", at + "/infer", v2_body, (JSON,)),
            "v2-version-ready": (3, OK, "GET", at + "/ready", b"", ()),
            "v2-version-metadata": (3, OK, "GET", at, b"", ()),
            "v1-predict-expect-continue": (3, OK, "POST", v1, self.v1_body, (JSON, "Expect: 100-continue")),
            "v1-predict-form-content-type": (2, OK, "POST", v1, self.v1_body, (FORM,)),
            "v1-predict-32k-header": (2, OK, "POST", v1, self.v1_body, (JSON, "X-Padding: " + "p" * 32000)),
            "v1-predict-100-headers": (2, OK, "POST", v1, self.v1_body, (JSON, *[f"X-H{i}: {i}" for i in range(100)])),
            "v1-predict-query-string": (2, OK, "POST", v1 + "?debug=1&x=%00", self.v1_body, (JSON,)),
            "v1-predict-spoofed-headers": (1, OK, "POST", v1, self.v1_body, (JSON, "X-Forwarded-For: <script>")),
            "health-live": (4, OK, "GET", "/v2/health/live", b"", ()),
            "health-ready": (4, OK, "GET", "/v2/health/ready", b"", ()),
            "v2-model-ready": (3, OK, "GET", f"/v2/models/{name}/ready", b"", ()),
            "v1-model-ready": (3, OK, "GET", f"/v1/models/{name}", b"", ()),
            "v2-metadata": (3, OK, "GET", f"/v2/models/{name}", b"", ()),
            "v2-server-metadata": (1, OK, "GET", "/v2", b"", ()),
            "v1-model-list": (1, OK, "GET", "/v1/models", b"", ()),
            "head-health": (1, frozenset({"200", "405"}), "HEAD", "/v2/health/live", b"", ()),
        }

    def _v1_bodies(self) -> dict[str, Spec]:
        """Hostile v1 bodies (and headers about them), POSTed to :predict."""
        rng, row, width, v1 = self.rng, list(self.served.row), len(self.served.row), self.v1
        deep = 100_000
        bodies: dict[str, tuple[int, frozenset[str], Body]] = {
            "v1-malformed-json": (3, CLIENT_ERROR, b'{"instances": [[1, 2,'),
            "v1-empty-body": (3, CLIENT_ERROR, b""),
            "v1-json-array": (2, CLIENT_ERROR, b"[1, 2, 3]"),
            "v1-json-null": (2, CLIENT_ERROR, b"null"),
            "v1-json-string": (2, CLIENT_ERROR, b'"instances"'),
            "v1-no-instances": (2, CLIENT_ERROR, b'{"rows": [[1.0]]}'),
            "v1-instances-string": (2, CLIENT_ERROR, b'{"instances": "all of them"}'),
            "v1-instances-empty": (2, CLIENT_ERROR, b'{"instances": []}'),
            "v1-wrong-width": (3, CLIENT_ERROR, lambda: self.v1_body([row[: rng.randint(1, width - 1)]])),
            "v1-ragged-rows": (2, CLIENT_ERROR, self.v1_body([row, [*row, 1.0]])),
            "v1-strings": (2, CLIENT_ERROR, json.dumps({"instances": [["a"] * width]}).encode()),
            "v1-nulls": (2, CLIENT_ERROR, json.dumps({"instances": [[None] * width]}).encode()),
            "v1-booleans": (2, ANSWERED, json.dumps({"instances": [[True] * width]}).encode()),
            "v1-nested-rows": (2, CLIENT_ERROR, json.dumps({"instances": [[[1.0]] * width]}).encode()),
            "v1-unknown-column": (2, CLIENT_ERROR, b'{"instances": [{"no such column": 1}]}'),
            "v1-nan": (2, ANSWERED, self.row_with("NaN")),
            "v1-infinity": (2, ANSWERED, self.row_with("-Infinity")),
            "v1-1e999": (2, ANSWERED, self.row_with("1e999")),
            "v1-huge-integer": (2, ANSWERED, self.row_with("9" * 400)),
            "v1-1e300": (2, ANSWERED, self.v1_body([[1e300] * width])),
            "v1-deep-array": (2, CLIENT_ERROR, b'{"instances": ' + b"[" * deep + b"]" * deep + b"}"),
            "v1-deep-object": (2, CLIENT_ERROR, b'{"a": ' * deep + b"1" + b"}" * deep),
            "v1-long-strings": (1, CLIENT_ERROR, json.dumps({"instances": [["x" * 20000] * width]}).encode()),
            "v1-many-keys": (1, CLIENT_ERROR, json.dumps({"instances": [{f"k{i}": i for i in range(20000)}]}).encode()),
            "v1-1000-rows-one-bad": (1, CLIENT_ERROR, self.v1_body([row] * 999 + [row[:3]])),
            "v1-random-bytes": (2, CLIENT_ERROR, lambda: rng.randbytes(rng.randint(1, 300))),
            "v1-invalid-utf8": (1, CLIENT_ERROR, b'{"instances": [["\xff\xfe\xc3\x28"]]}'),
            "v1-utf16-body": (1, ANSWERED, lambda: self.v1_body().decode().encode("utf-16")),
        }
        specs: dict[str, Spec] = {
            kind: (w, allowed, "POST", v1, body, (JSON,)) for kind, (w, allowed, body) in bodies.items()
        }
        return specs | {
            "v1-xml": (1, CLIENT_ERROR, "POST", v1, b"<instances/>", ("Content-Type: application/xml",)),
            "v1-multipart": (1, CLIENT_ERROR, "POST", v1, b"--b\r\n\r\nx\r\n--b--", (MULTIPART,)),
            "v1-charset-bogus": (1, ANSWERED, "POST", v1, self.v1_body, (JSON + "; charset=klingon",)),
            "v1-long-content-type": (1, ANSWERED, "POST", v1, self.v1_body, (JSON + "; a=b" * 2000,)),
            "v1-duplicate-content-type": (1, ANSWERED, "POST", v1, self.v1_body, (JSON, "Content-Type: text/plain")),
            "v1-obs-text-header": (1, ANSWERED, "POST", v1, self.v1_body, (JSON, b"X-Odd: caf\xe9 \xff\xfe")),
            "v1-gzip-body": (1, ANSWERED, "POST", v1, lambda: gzip.compress(self.v1_body()), (JSON, GZIP)),
            "v1-gzip-garbage": (1, CLIENT_ERROR, "POST", v1, b"\x1f\x8b\x08garbage", (JSON, GZIP)),
            "v1-explain-without-explainer": (
                2,
                CLIENT_ERROR,
                "POST",
                v1[: -len("predict")] + "explain",
                self.v1_body,
                (JSON,),
            ),
        }

    def _v2_bodies(self) -> dict[str, Spec]:
        """Hostile v2 bodies, JSON and binary, POSTed to /infer."""
        width, v2, tensor = len(self.served.row), self.v2, self.tensor
        bodies: dict[str, tuple[int, frozenset[str], Body]] = {
            "v2-malformed-json": (2, CLIENT_ERROR, b"{broken"),
            "v2-empty-body": (2, CLIENT_ERROR, b""),
            "v2-inputs-string": (1, CLIENT_ERROR, b'{"inputs": "x"}'),
            "v2-inputs-empty": (1, CLIENT_ERROR, b'{"inputs": []}'),
            "v2-top-level-array": (1, CLIENT_ERROR, b"[1, 2]"),
            "v2-id-number": (1, CLIENT_ERROR, b'{"id": 5, "inputs": [{"name": "x"}]}'),
            "v2-shape-mismatch": (2, CLIENT_ERROR, tensor(shape=[2, width])),
            "v2-wrong-width": (2, CLIENT_ERROR, tensor(shape=[1, 3], data=[1.0, 2.0, 3.0])),
            "v2-negative-shape": (1, CLIENT_ERROR, tensor(shape=[-1], data=[])),
            "v2-huge-shape": (1, CLIENT_ERROR, tensor(shape=[10**12, width])),
            "v2-overflowing-shape": (1, CLIENT_ERROR, tensor(shape=[10**30, width])),
            "v2-bogus-datatype": (1, CLIENT_ERROR, tensor(datatype="BOGUS")),
            "v2-bytes-datatype": (1, CLIENT_ERROR, tensor(datatype="BYTES", data=["a"] * width)),
            "v2-int8-overflow": (1, ANSWERED, tensor(datatype="INT8", data=[10**6] * width)),
            "v2-data-strings": (1, CLIENT_ERROR, tensor(data=["x"] * width)),
            "v2-data-nested-deep": (1, CLIENT_ERROR, tensor(data=json.loads("[" * 200 + "]" * 200))),
            "v2-nan": (1, ANSWERED, tensor(first="NaN")),
            "v2-infinity": (1, ANSWERED, tensor(first="Infinity")),
            "v2-unknown-output": (1, ANSWERED, tensor()[:-1] + b', "outputs": [{"name": "nope"}]}'),
        }
        specs: dict[str, Spec] = {
            kind: (w, allowed, "POST", v2, body, (JSON,)) for kind, (w, allowed, body) in bodies.items()
        }
        octets = "Content-Type: application/octet-stream"
        # a bad inference-header-content-length: 400, never 500
        header_lengths: dict[str, Spec] = {
            f"v2-binary-header-length-{label}": (2, BAD_REQUEST, RAW, v2, self._binary_maker(v2, value), ())
            for label, value in BAD_HEADER_LENGTHS.items()
        }
        return (
            specs
            | header_lengths
            | {
                "v2-infer-binary": (8, OK, RAW, v2, lambda: self.binary(v2), ()),
                "v2-empty-body-no-content-type": (2, CLIENT_ERROR, "POST", v2, b"", ()),
                "v2-text-content-type": (1, ANSWERED, "POST", v2, self.v2_body, ("Content-Type: text/plain",)),
                "v2-binary-no-header-length": (1, CLIENT_ERROR, "POST", v2, lambda: self.v2_binary()[0], (octets,)),
                "v2-binary-size-past-body": (1, ANSWERED, RAW, v2, lambda: self.binary(v2, size=10**6), ()),
            }
        )

    def _routes(self) -> dict[str, Spec]:
        """Versions, unknown models and paths, the repository extension (off), wrong methods."""
        name, rng, v1, v2, body = self.served.name, self.rng, self.v1, self.v2, self.v2_body
        version = self.served.version
        other = f"/v2/models/{name}/versions/{int(version) + 1 if version.isdigit() else version + 'x'}"
        stranger = f"/v2/models/other/versions/{version}"  # the served version of a model not served
        odd_path = lambda: rng.choice(["/nope", "/v3/models", "/v2/models/x/y/z/w", "/.env", "/metrics/x"])  # noqa: E731
        traversal = lambda: rng.choice(["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/v2/models/..%2f..%2f"])  # noqa: E731
        either = frozenset({"404", "405"})
        return {
            "v2-other-version-infer": (2, NOT_FOUND, "POST", other + "/infer", body, (JSON,)),
            "v2-other-version-ready": (2, NOT_FOUND, "GET", other + "/ready", b"", ()),
            "v2-other-version-metadata": (2, NOT_FOUND, "GET", other, b"", ()),
            "v2-word-version-infer": (1, NOT_FOUND, "POST", f"/v2/models/{name}/versions/latest/infer", body, (JSON,)),
            "v2-unknown-model-version-infer": (1, NOT_FOUND, "POST", stranger + "/infer", body, (JSON,)),
            "v2-unknown-model-version-ready": (1, NOT_FOUND, "GET", stranger + "/ready", b"", ()),
            "v2-unknown-model-version-metadata": (1, NOT_FOUND, "GET", stranger, b"", ()),
            "v1-unknown-model": (2, NOT_FOUND, "POST", "/v1/models/other:predict", self.v1_body, (JSON,)),
            "v1-unknown-model-explain": (1, NOT_FOUND, "POST", "/v1/models/other:explain", self.v1_body, (JSON,)),
            "v2-unknown-model": (2, NOT_FOUND, "POST", "/v2/models/other/infer", body, (JSON,)),
            "v2-unknown-model-ready": (1, NOT_FOUND, "GET", "/v2/models/other/ready", b"", ()),
            "v2-unknown-model-metadata": (1, NOT_FOUND, "GET", "/v2/models/other", b"", ()),
            "unknown-path": (2, NOT_FOUND, "GET", odd_path, b"", ()),
            "unknown-path-post": (1, NOT_FOUND, "POST", v2 + "/extra", body, (JSON,)),
            "traversal-path": (1, CLIENT_ERROR, "GET", traversal, b"", ()),
            "long-path": (1, CLIENT_ERROR, "GET", "/v2/" + "a" * 8000, b"", ()),
            "repository-unload": (1, NOT_FOUND, "POST", f"/v2/repository/models/{name}/unload", b"", ()),
            "repository-load": (1, NOT_FOUND, "POST", f"/v2/repository/models/{name}/load", b"", ()),
            "repository-index": (1, either, "POST", "/v2/repository/index", b"{}", (JSON,)),
            "get-infer": (2, WRONG_METHOD, "GET", v2, b"", ()),
            "delete-infer": (1, WRONG_METHOD, "DELETE", v2, b"", ()),
            "put-health": (1, WRONG_METHOD, "PUT", "/v2/health/ready", b"{}", (JSON,)),
            "post-health": (1, WRONG_METHOD, "POST", "/v2/health/live", b"{}", (JSON,)),
            "delete-v1-model": (1, WRONG_METHOD, "DELETE", f"/v1/models/{name}", b"", ()),
            "patch-metadata": (1, WRONG_METHOD, "PATCH", f"/v2/models/{name}", b"{}", (JSON,)),
            "get-predict": (1, either, "GET", v1, b"", ()),
            "options-infer": (1, frozenset({"200", "204", "405"}), "OPTIONS", v2, b"", ()),
        }

    def _broken(self) -> dict[str, tuple[frozenset[str], Callable[[], bytes]]]:
        """Malformed HTTP, each on a connection of its own (the server may answer 4xx or close it),
        and a few oddities a server may accept."""
        rng, v1, body, live = self.rng, self.v1, self.v1_body, "/v2/health/live"
        chunks = "Transfer-Encoding: chunked"

        def post(*headers: str | bytes, data: bytes | None = None, length: bool = False) -> bytes:
            return http("POST", v1, body() if data is None else data, [JSON, *headers], length=length)

        refused: dict[str, Callable[[], bytes]] = {
            "garbage-request-line": lambda: b"GARBAGE\r\n\r\n",
            "binary-junk": lambda: rng.randbytes(rng.randint(1, 2000)) + b"\r\n\r\n",
            "http-version-bogus": lambda: http("GET", live, version="HTTP/9.9"),
            "http2-preface": lambda: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "unknown-method": lambda: http("BREW", live),
            "header-without-colon": lambda: post("NoColon", length=True),
            "header-name-with-space": lambda: post("Bad Name: x", length=True),
            "header-nul-byte": lambda: post(b"X-Nul: a\x00b", length=True),
            "header-control-bytes": lambda: post(b"X-C: \x01\x1b[31m", length=True),
            "header-obs-fold": lambda: post("X-Fold: a", " more", length=True),
            "content-length-negative": lambda: post("Content-Length: -1"),
            "content-length-letters": lambda: post("Content-Length: abc"),
            "content-length-plus": lambda: post("Content-Length: +2", data=b"{}"),
            "content-length-absurd": lambda: post("Content-Length: " + "9" * 30),
            "content-length-conflicting": lambda: post("Content-Length: 2", "Content-Length: 3", data=b"{}"),
            "content-length-and-chunked": lambda: post("Content-Length: 5", chunks, data=chunked(body())),
            "content-length-short": lambda: post("Content-Length: 10"),
            "transfer-encoding-gzip": lambda: post("Transfer-Encoding: gzip", data=gzip.compress(body())),
            "transfer-encoding-bogus": lambda: post("Transfer-Encoding: banana"),
            "chunk-size-garbage": lambda: post(chunks, data=b"zz\r\n{}\r\n0\r\n\r\n"),
            "chunk-size-overflow": lambda: post(chunks, data=b"f" * 40 + b"\r\n{}\r\n0\r\n\r\n"),
            "header-over-limit": lambda: post("X-Big: " + "b" * 80_000, length=True),
            "many-headers-over-limit": lambda: http("GET", live, b"", [f"X-M{i}: {'m' * 30}" for i in range(3000)]),
            "url-over-limit": lambda: http("GET", live + "?" + "q" * 100_000),
        }
        anything = frozenset({"2xx", "4xx", CLOSED, RESET})
        websocket = (
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: a2V5",
        )
        h2c = ("Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c")
        return {kind: (REFUSED_OR_CLOSED, make) for kind, make in refused.items()} | {
            "bare-lf-lines": (anything, lambda: post(length=True).replace(b"\r\n", b"\n")),
            "no-host-http11": (anything, lambda: http("POST", v1, body(), [JSON], host=False)),
            "websocket-upgrade": (anything, lambda: http("GET", live, b"", websocket)),
            "h2c-upgrade": (anything, lambda: http("GET", live, b"", h2c)),
            "http10-predict": (OK, lambda: http("POST", v1, body(), [JSON], version="HTTP/1.0")),
            "chunked-valid": (OK, lambda: post(chunks, data=chunked(body()))),
        }

    def framed(self) -> Probe:
        specs = self.framed_specs
        return self.probe(self.rng.choices(list(specs), weights=[spec[0] for spec in specs.values()])[0])

    def probe(self, kind: str) -> Probe:
        """One request of the well-framed class ``kind``."""
        _, allowed, method, path, body, headers = self.framed_specs[kind]
        path = path() if callable(path) else path
        data = body() if callable(body) else body
        if method == RAW:
            return Probe(kind, data, allowed)
        return Probe(kind, http(method, path, data, headers), allowed, head=method == "HEAD")

    def broken(self) -> Probe:
        kind = self.rng.choice(list(self.broken_specs))
        allowed, make = self.broken_specs[kind]
        return Probe(kind, make(), allowed, complete=allowed == OK)

    def stalls(self) -> list[Job]:
        """Clients that stop sending part-way or trickle (the server must cut them off within its
        read timeout), and one that is slow but finishes in time (it must get its answer)."""
        full = http("POST", self.v1, self.v1_body(), [JSON])
        head_end = full.index(b"\r\n\r\n") + 4
        chunks = http("POST", self.v1, b"", [JSON, "Transfer-Encoding: chunked"], length=False)
        beyond = http("POST", self.v1, self.v1_body(), [JSON, "Content-Length: 100000"], length=False)
        stalled = {
            "stall-silent": b"",
            "stall-request-line": full[:12],
            "stall-mid-header": full[: head_end - 12],
            "stall-before-body": full[:head_end],
            "stall-mid-body": full[: head_end + (len(full) - head_end) // 2],
            "stall-mid-chunked-body": chunks + b'10\r\n{"instances": ',
            "stall-content-length-past-body": beyond,
        }
        jobs = [Job("alone", (Probe(kind, data, CUT_OFF, complete=False),)) for kind, data in stalled.items()]
        return [
            *jobs,
            Job("alone", (Probe("trickle-header", full, CUT_OFF, complete=False, trickle=0.25),)),
            Job("alone", (Probe("trickle-body", beyond, CUT_OFF, complete=False, trickle=0.25, split=head_end),)),
            Job(
                "keepalive",
                (
                    Probe("keepalive-before-stall", full, OK),
                    Probe("stall-after-keepalive", full[:30], CUT_OFF, complete=False),
                ),
            ),
            Job("alone", (Probe("slow-but-complete", full, OK, pause=0.5, split=head_end),)),
        ]


def hostile_jobs(served: Served, seed: int, requests: int, *, stalls: int = 2) -> list[Job]:
    """Jobs holding at least ``requests`` probes, reproducible from ``seed``: mostly keep-alive
    connections carrying many requests, some pipelined, some malformed HTTP each on its own
    connection, and ``stalls`` rounds of stalled clients."""
    rng = random.Random(seed)
    book = RequestBook(served, rng)
    jobs = [job for _ in range(stalls) for job in book.stalls()]
    count = sum(len(job.probes) for job in jobs)
    while count < requests:
        roll = rng.random()
        if roll < 0.45:  # one request per connection: about 4% of the requests
            job = Job("alone", (book.broken(),))
        elif roll < 0.53:
            job = Job("pipeline", tuple(book.framed() for _ in range(rng.randint(2, 8))))
        else:
            job = Job("keepalive", tuple(book.framed() for _ in range(rng.randint(5, 40))))
        jobs.append(job)
        count += len(job.probes)
    return jobs
