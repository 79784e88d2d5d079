"""The local payload store: every request a local server was sent for its model, one JSON line
each, in ``DIR/payloads-YYYYMMDD.jsonl`` (a file a UTC day, appended, never rewritten; one
server per folder).

An answered request: ``{"time": ISO, "model": NAME, "version": V, "protocol": "v1"|"v2",
"columns": [...]|null, "instances": [[...], ...], "predictions": [...]}``. Drift detection
reads the instances back.

A rejected request (answered 4xx: a payload the model cannot take): ``{"time", "model",
"version", "protocol", "rejected": REASON, "body": BODY}``, no instances or predictions. BODY
is the request's JSON (parsed) when its JSON text is at most :data:`BODY_LIMIT` bytes, else,
and for a body that is not JSON, text: at most that many bytes of it; when cut, the record
also has ``"body_size"``, the whole body's size in bytes. Answered records have no
``rejected`` key, so logs written before rejected requests were kept read the same.
:func:`read_payloads` yields only answered records (what drift tests and retraining read)
unless ``include_rejected``.

Crashes. Each line is one ``write`` ending in ``\\n``; power loss mid-write can leave a line
cut short at the end of the file (or zeros, on some file systems). So the writer, opening a
file whose last byte is not ``\\n``, writes ``\\n`` first: the next record starts a line of its
own instead of sticking to the fragment. Readers skip and count what is not a whole record:

- a *torn* line, one that is not a JSON record but is followed by more data, is skipped and
  counted, with one :class:`PayloadLogWarning` per file (the count and the file). A record an
  older nb2pipe appended to a fragment (same line) is recovered.
- the file's last line without its ``\\n`` is *incomplete*: a live server may be writing it at
  this moment, so it is only counted (:attr:`PayloadCounts.incomplete`), never warned about.
  Once anything is appended after it, it is a torn line.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from io import FileIO
from pathlib import Path
from typing import Any

PREFIX = "payloads-"
#: the most bytes of a rejected request's body (and of its reason) a record keeps
BODY_LIMIT = 4096
REASON_LIMIT = 1024
#: how every record's JSON text starts (``json.dumps`` keeps the key order): finds a record
#: stuck to a torn line
_RECORD_START = '{"time":'
_DECODER = json.JSONDecoder()


class PayloadLogWarning(UserWarning):
    """A payload log has torn lines (cut short by a crash mid-write, or edited); they were skipped."""


@dataclass
class PayloadCounts:
    """What a reader of payload logs left out; pass one to :func:`read_payloads` to learn it."""

    #: rejected requests left out (by :func:`read_payloads` unless ``include_rejected``)
    rejected: int = 0
    #: lines that are not a whole record, followed by more data: skipped, and warned about
    torn: int = 0
    #: last lines of a file without their newline: being written now, or cut by a crash
    incomplete: int = 0
    #: KServe logger records (:mod:`nb2pipe.store.logged_payloads`) of a request without its
    #: response (KServe logs only status 200 answers) or a response without its request
    unpaired: int = 0
    #: KServe logger objects or records that are not a JSON log record with a JSON body
    undecodable: int = 0
    #: KServe logger objects left unread: past the object limit or the time limit
    unread: int = 0


class PayloadLog:
    """Appends one line per request; safe to call from the server's threads."""

    def __init__(self, directory: str | Path, model: str, version: str | None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model, self.version = model, version
        self._lock = threading.Lock()
        self._day = ""
        self._handle: FileIO | None = None

    def append(self, protocol: str, columns: list[str] | None, instances: Any, predictions: list[Any]) -> None:
        """Log an answered request."""
        now = datetime.now(UTC)
        record = self._header(now, protocol)
        record.update(columns=columns, instances=instances, predictions=predictions)
        self._write(now, record)

    def append_rejected(self, protocol: str, reason: str, body: Any | None = None) -> None:
        """Log a rejected request: why, and its body (parsed JSON, or the raw bytes or text;
        None when it was not read), bounded to :data:`BODY_LIMIT`."""
        now = datetime.now(UTC)
        record = self._header(now, protocol)
        reason_text, cut = _excerpt(reason.encode("utf-8", errors="replace"), REASON_LIMIT)
        record["rejected"] = reason_text + " ..." if cut else reason_text
        record.update(_body_fields(body))
        self._write(now, record)

    def _header(self, now: datetime, protocol: str) -> dict[str, Any]:
        time = now.isoformat(timespec="milliseconds")
        return {"time": time, "model": self.model, "version": self.version, "protocol": protocol}

    def _write(self, now: datetime, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        with self._lock:
            handle = self._open(now.strftime("%Y%m%d"))
            try:
                _write_all(handle, line)  # one unbuffered write, appended whole, per record
            except OSError:
                self._close()  # reopening checks the end: the next record starts on a line of its own
                raise

    def _open(self, day: str) -> FileIO:
        if self._handle is None or day != self._day:
            self._close()
            path = self.directory / f"{PREFIX}{day}.jsonl"
            handle = path.open("ab", buffering=0)
            try:
                if _ends_mid_line(path):
                    _write_all(handle, b"\n")
            except OSError:
                handle.close()
                raise
            self._handle, self._day = handle, day
        return self._handle

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        with self._lock:
            self._close()


def is_rejected(record: dict[str, Any]) -> bool:
    """Whether a record is of a rejected request (and has no instances)."""
    return record.get("rejected") is not None


def read_payloads(
    directory: str | Path, *, include_rejected: bool = False, counts: PayloadCounts | None = None
) -> Iterator[dict[str, Any]]:
    """Every answered request's record (rejected ones too when ``include_rejected``), oldest
    file first. Torn and incomplete lines are skipped and counted in ``counts`` (see the
    module's notes); torn ones are warned about, once per file."""
    counts = counts if counts is not None else PayloadCounts()
    for path in sorted(Path(directory).glob(f"{PREFIX}*.jsonl")):
        torn = recovered = 0
        with path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    counts.incomplete += 1
                    break
                record = _record(line)
                if record is None:
                    if not line.strip():
                        continue
                    torn += 1
                    record = _stuck_record(line.decode("utf-8", errors="replace").rstrip("\r\n"))
                    if record is None:
                        continue
                    recovered += 1
                if is_rejected(record) and not include_rejected:
                    counts.rejected += 1
                    continue
                yield record
        counts.torn += torn
        if torn:
            warnings.warn(_torn_message(path, torn, recovered), PayloadLogWarning, stacklevel=2)


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return record if isinstance(record, dict) else None


def _stuck_record(text: str) -> dict[str, Any] | None:
    """A whole record after a fragment on one line (written before appends started a fresh
    line). Tried from the end: a start inside the record (a row with a column ``time``) fails
    after that row, so the scan stays linear."""
    start = text.rfind(_RECORD_START, 1)
    while start > 0:
        try:
            record, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            record, end = None, -1
        if end == len(text) and isinstance(record, dict):
            return record
        start = text.rfind(_RECORD_START, 1, start)
    return None


def _torn_message(path: Path, torn: int, recovered: int) -> str:
    lines = "1 torn line" if torn == 1 else f"{torn} torn lines"
    message = f"payload log {path}: skipped {lines} (cut short by a crash mid-write, or edited)"
    if recovered:
        records = "1 record" if recovered == 1 else f"{recovered} records"
        message += f"; kept {records} appended to {'it' if torn == 1 else 'them'}"
    return message


def _body_fields(body: Any) -> dict[str, Any]:
    """``body`` as JSON when it is small and JSON (raw bytes or text are parsed), else a text
    excerpt and the whole size."""
    if body is None:
        return {"body": None}
    if isinstance(body, bytes | bytearray | memoryview | str):
        data = body.encode("utf-8", errors="replace") if isinstance(body, str) else bytes(body)
        if len(data) > BODY_LIMIT:
            return _excerpt_fields(data)
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):  # not JSON: kept as text
            return _excerpt_fields(data)
    text = _json_text(body)
    if text is not None and len(text) <= BODY_LIMIT:
        return {"body": body}
    return _excerpt_fields((text if text is not None else str(body)).encode("utf-8", errors="replace"))


def _excerpt_fields(data: bytes) -> dict[str, Any]:
    excerpt, cut = _excerpt(data, BODY_LIMIT)
    return {"body": excerpt, "body_size": len(data)} if cut else {"body": excerpt}


def _json_text(value: Any) -> str | None:
    """``value`` as compact JSON; None when it nests too deep to write."""
    try:
        return json.dumps(value, separators=(",", ":"), default=str)
    except (ValueError, RecursionError):  # ValueError: a circular reference
        return None


def _excerpt(data: bytes, limit: int) -> tuple[str, bool]:
    """At most ``limit`` bytes of ``data`` as text (bytes that are not UTF-8 replaced), and
    whether it was cut."""
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit


def _write_all(handle: FileIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = handle.write(view)
        if not written:  # a regular file takes at least a byte, or raises (a full disk: ENOSPC)
            raise OSError(f"{handle.name}: nothing written")
        view = view[written:]


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as handle:
        if handle.seek(0, 2) == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"
