"""Per-connection limits uvicorn does not set: header size and the time to send the headers.

uvicorn's httptools protocol keeps a connection open while a client trickles header bytes
(no timeout until a first response) and buffers a header of any size. The protocol built by
:func:`limited_protocol` answers 431 and closes once the headers of one request pass
``max_header_bytes``, and 408 (or a plain close for a connection that never sent a byte) when
the headers are not complete ``read_timeout`` seconds after the connection opened or the
request began. The body's own deadline is :class:`nb2pipe.lifecycle.request_guard.RequestGuard`'s.
It also stops reading a connection while too many pipelined requests wait their turn.

A refused request may still be sending (a 100 MB header, a body over the limit): closing at once
would reset the connection before the client reads the answer. As nginx does ("lingering
close"), the rest is read and discarded for at most ``read_timeout`` seconds, then the
connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from nb2pipe.lifecycle.request_guard import Refusal, refuse

#: Default largest request head (request line and headers) accepted, in bytes.
MAX_HEADER_BYTES = 64 * 1024
#: Requests pipelined on one connection that may wait their turn before it stops reading
MAX_QUEUED_REQUESTS = 8

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}

logger = logging.getLogger("nb2pipe.serve")


def raw_refusal(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response, written straight to the socket (no request cycle exists)."""
    body = ('{"error": "' + message.replace('"', "'") + '"}').encode()
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (
        status,
        _REASONS.get(status, b"Error"),
        len(body),
    )
    return head + body


def limited_protocol(read_timeout: float, max_header_bytes: int) -> type:
    """uvicorn's httptools protocol with the two limits; uvicorn loads only when serving."""
    from uvicorn.protocols.http.flow_control import FlowControl
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class QueueBoundFlow(FlowControl):
        """uvicorn resumes reading after every response even while pipelined requests queue up,
        so a client writing requests back to back grows the queue without bound; this one stays
        paused while MAX_QUEUED_REQUESTS wait (the socket's buffer then pushes back on the client)."""

        def __init__(self, transport: Any, queued: Callable[[], int]) -> None:
            super().__init__(transport)
            self._queued = queued

        def resume_reading(self) -> None:
            if self._queued() < MAX_QUEUED_REQUESTS:
                super().resume_reading()

    too_large = Refusal(431, f"request headers larger than {max_header_bytes} bytes", close=True)

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.flow = QueueBoundFlow(transport, lambda: len(self.pipeline))
            self._head_bytes = 0
            self._reading_head = True
            self._began = False
            self._head_timer: asyncio.TimerHandle | None = None
            self._linger_timer: asyncio.TimerHandle | None = None
            self._message_open = False
            self._discarding = False
            self._arm_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_deadline()
            self._cancel_linger()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._discarding:
                return
            if self._reading_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._reading_head and self._head_bytes > max_header_bytes and not self.transport.is_closing():
                self._refuse_head(431, too_large.message, linger=True)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._began = True
            self._message_open = True
            self._arm_head_deadline()

        def on_headers_complete(self) -> None:
            self._reading_head = False
            self._cancel_head_deadline()
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            self._head_bytes = 0
            if size <= max_header_bytes:
                super().on_headers_complete()
                return
            # the request cycle answers 431 without reading the body, then closes
            app = self.app
            self.app = _refusing_app(too_large)
            try:
                super().on_headers_complete()
            finally:
                self.app = app

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading_head, self._began, self._head_bytes = True, False, 0
            self._message_open = False
            self._cancel_linger()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._message_open and not self._reading_head and not self.transport.is_closing():
                # answered before the body was all in (413): read the rest for a while, then close
                self._linger_timer = self.loop.call_later(read_timeout, self.transport.close)

        def _cancel_linger(self) -> None:
            if self._linger_timer is not None:
                self._linger_timer.cancel()
                self._linger_timer = None

        def _arm_head_deadline(self) -> None:
            self._cancel_head_deadline()
            self._head_timer = self.loop.call_later(read_timeout, self._head_deadline_passed)

        def _cancel_head_deadline(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_deadline_passed(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or not self._reading_head:
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self._arm_head_deadline()  # a pipelined request waits for the one before it
                return
            if self._began:
                self._refuse_head(408, f"the request headers did not arrive within {read_timeout:g} s", linger=False)
            else:
                self.transport.close()

        def _refuse_head(self, status: int, message: str, linger: bool) -> None:
            self._cancel_head_deadline()
            logger.info("%s %s - %s", status, _client(self.client), message)
            if self.cycle is not None and not self.cycle.response_complete:
                self.transport.close()  # an answer is being written: nothing else can be said
                return
            self.transport.write(raw_refusal(status, message))
            if not linger or not self.transport.can_write_eof():
                self.transport.close()
                return
            self._discarding = True
            self.transport.write_eof()
            self._linger_timer = self.loop.call_later(read_timeout, self.transport.close)

    return LimitedHttpToolsProtocol


def _refusing_app(
    refusal: Refusal,
) -> Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]:
    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        method, client = scope.get("method", "?"), _client(scope.get("client"))
        logger.info("%s %s %s - %s", refusal.status, method, client, refusal.message)
        await refuse(send, refusal)

    return app


def _client(address: Any) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"
