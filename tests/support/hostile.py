"""Hostile clients for ``nb2pipe serve``, over raw sockets.

:func:`run_storm` sends the jobs of :func:`tests.support.hostile_requests.hostile_jobs` from several
threads and records, per request, a status or ``closed`` / ``reset`` / ``timeout``: every socket
operation has a deadline, so a storm always ends. :func:`problems` names the broken promises;
:func:`group_rss`, :class:`RssPeak` and :func:`storm_against` measure the server's memory and log.
Standard library only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.hostile_requests import CLOSED, GARBLED, REFUSED, RESET, TIMEOUT, Job, Probe


@dataclass(frozen=True)
class Outcome:
    kind: str
    label: str  # "200", "404", ..., or closed / reset / timeout / refused / garbled
    seconds: float  # from the end of sending to the outcome
    complete: bool
    allowed: bool
    detail: str = ""  # the start of the response body, for readable failures


# --- talking to the server --------------------------------------------------------------------


class _Closed(Exception):
    pass


class Connection:
    """One client socket, reading HTTP/1.1 responses with a deadline on every wait."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes, deadline: float) -> None:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        self.sock.sendall(data)

    def _more(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed
        self.buffer += chunk

    def _line(self, deadline: float) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > 1 << 20:
                raise ValueError("a response line over 1 MB")
            self._more(deadline)
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def _exactly(self, size: int, deadline: float) -> bytes:
        while len(self.buffer) < size:
            self._more(deadline)
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def response(self, deadline: float, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        """The next final response (1xx interim responses are skipped): status, headers, body."""
        while True:
            version, status_text, *_ = [*self._line(deadline).split(b" ", 2), b""]
            if not version.startswith(b"HTTP/") or not status_text.isdigit():
                raise ValueError(f"not a status line: {version + b' ' + status_text!r:.80}")
            status, headers = int(status_text), {}
            while line := self._line(deadline):
                name, _, value = line.partition(b":")
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            if status >= 200:
                break
        if head or status in (204, 304):
            return status, headers, b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while size := int(self._line(deadline).split(b";")[0], 16):
                body += self._exactly(size + 2, deadline)[:-2]
            while self._line(deadline):  # trailers
                pass
            return status, headers, bytes(body)
        if "content-length" in headers:
            return status, headers, self._exactly(int(headers["content-length"]), deadline)
        try:  # no length: the body ends when the connection does
            while True:
                self._more(deadline)
        except _Closed:
            rest = bytes(self.buffer)
            self.buffer.clear()
            return status, headers, rest


def _failure(exc: BaseException) -> str:
    if isinstance(exc, _Closed):
        return CLOSED
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return RESET
    if isinstance(exc, ValueError):
        return GARBLED
    return f"error:{type(exc).__name__}"


def _outcome(probe: Probe, label: str, started: float, detail: bytes | str = b"") -> Outcome:
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
    return Outcome(probe.kind, label, time.monotonic() - started, probe.complete, probe.accepts(label), text[:200])


def exchange(connection: Connection, probe: Probe, timeout: float, stall_limit: float) -> tuple[Outcome, bool]:
    """Send ``probe`` and read its response: (outcome, whether the connection can carry another)."""
    deadline = time.monotonic() + (timeout if probe.complete else stall_limit)
    sent_error: BaseException | None = None
    started = time.monotonic()
    try:
        if probe.trickle:
            _trickle(connection, probe, deadline)
        elif probe.pause:
            connection.send(probe.data[: probe.split], deadline)
            time.sleep(probe.pause)
            connection.send(probe.data[probe.split :], deadline)
        else:
            connection.send(probe.data, deadline)
    except OSError as exc:  # the server stopped reading: it may still have answered
        sent_error = exc
    if not probe.trickle:
        started = time.monotonic()
    try:
        status, headers, body = connection.response(deadline, probe.head)
    except (OSError, ValueError, _Closed) as exc:
        label = _failure(exc)
        if label in (CLOSED, TIMEOUT) and sent_error is not None:
            label = _failure(sent_error)
        return _outcome(probe, label, started), False
    keep = sent_error is None and "close" not in headers.get("connection", "").lower()
    return _outcome(probe, str(status), started, body), keep


def _trickle(connection: Connection, probe: Probe, deadline: float) -> None:
    """The first ``split`` bytes at once, then one byte every ``trickle`` seconds until the data
    or the deadline ends (the send fails once the server has closed)."""
    connection.send(probe.data[: probe.split], deadline)
    for at in range(probe.split, len(probe.data)):
        if time.monotonic() + probe.trickle > deadline:
            return
        connection.send(probe.data[at : at + 1], deadline)
        time.sleep(probe.trickle)


def _run_job(host: str, port: int, job: Job, timeout: float, stall_limit: float) -> list[Outcome]:
    outcomes: list[Outcome] = []
    connection: Connection | None = None
    try:
        if job.mode == "pipeline":
            started = time.monotonic()
            try:
                connection = Connection(host, port, timeout)
                connection.send(b"".join(p.data for p in job.probes), started + timeout)
            except OSError as exc:
                return [_outcome(p, _failure(exc), started) for p in job.probes]
            for probe in job.probes:
                try:
                    status, _, body = connection.response(started + timeout, probe.head)
                    outcomes.append(_outcome(probe, str(status), started, body))
                except (OSError, ValueError, _Closed) as exc:
                    outcomes.append(_outcome(probe, _failure(exc), started))
            return outcomes
        for probe in job.probes:
            if connection is None:
                try:
                    connection = Connection(host, port, timeout)
                except OSError as exc:
                    outcomes.append(_outcome(probe, _failure(exc), time.monotonic()))
                    continue
            outcome, keep = exchange(connection, probe, timeout, stall_limit)
            outcomes.append(outcome)
            if not keep or job.mode == "alone":
                connection.close()
                connection = None
        return outcomes
    finally:
        if connection is not None:
            connection.close()


def run_storm(
    host: str,
    port: int,
    jobs: Iterable[Job],
    *,
    threads: int = 8,
    timeout: float = 15.0,
    stall_limit: float = 8.0,
    deadline_s: float = 300.0,
) -> list[Outcome]:
    """Run ``jobs`` from ``threads`` worker threads (slow jobs each in a thread of their own, so
    they wait in parallel); every request ends within ``timeout`` s (a stalled client's within
    ``stall_limit`` s). Jobs not started within ``deadline_s`` are recorded as ``skipped``."""
    slow: list[Job] = []
    fast: list[Job] = []
    for job in jobs:
        (slow if job.slow else fast).append(job)
    queue = iter(fast)
    lock = threading.Lock()
    outcomes: list[Outcome] = []
    stop_at = time.monotonic() + deadline_s

    def record(found: list[Outcome]) -> None:
        with lock:
            outcomes.extend(found)

    def worker() -> None:
        while True:
            with lock:
                job = next(queue, None)
            if job is None:
                return
            if time.monotonic() > stop_at:
                record([Outcome(p.kind, "skipped", 0.0, p.complete, False) for p in job.probes])
                continue
            record(_run_job(host, port, job, timeout, stall_limit))

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    workers += [
        threading.Thread(target=lambda j=job: record(_run_job(host, port, j, timeout, stall_limit)), daemon=True)
        for job in slow
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return outcomes


# --- reading the results ----------------------------------------------------------------------


def tally(outcomes: Iterable[Outcome]) -> Counter[tuple[str, str]]:
    """(class, outcome) -> how many."""
    return Counter((o.kind, o.label) for o in outcomes)


#: the promises a storm checks, as :func:`problems` names them
FIVE_XX = "5xx for client input"
UNANSWERED = "complete request without a response"
NOT_CUT_OFF = "stalled client not cut off in time"
NOT_ALLOWED = "outcome the class does not allow"


def broken_rule(outcome: Outcome, slow_bound: float) -> str | None:
    """The promise ``outcome`` breaks, if any."""
    answered = outcome.label[:1].isdigit()
    if outcome.label.startswith("5"):
        return FIVE_XX
    if outcome.complete and not answered:
        return UNANSWERED
    if not outcome.complete and (outcome.label == TIMEOUT or outcome.seconds > slow_bound):
        return NOT_CUT_OFF
    return None if outcome.allowed else NOT_ALLOWED


def problems(outcomes: Sequence[Outcome], slow_bound: float, *rules: str) -> list[str]:
    """Every broken promise (of ``rules``; all when none is given), one line per (rule, class,
    outcome) with a count and a sample: its time and the start of the answer."""
    found: dict[tuple[str, str, str], list[Outcome]] = {}
    for outcome in outcomes:
        rule = broken_rule(outcome, slow_bound)
        if rule is not None and (not rules or rule in rules):
            found.setdefault((rule, outcome.kind, outcome.label), []).append(outcome)
    return [
        f"{rule}: {kind} -> {label} x{len(items)} (e.g. {items[0].seconds:.2f} s, {items[0].detail!r:.160})"
        for (rule, kind, label), items in sorted(found.items())
    ]


def group_rss(leader: int) -> int:
    """Resident memory (bytes) of every process in ``leader``'s process group (/proc)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            group = int(stat[stat.rindex(")") + 2 :].split()[2])
            if group != leader:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total


class RssPeak:
    """The largest resident memory of a process group while the ``with`` block runs (sampled)."""

    def __init__(self, leader: int, every: float = 0.02) -> None:
        self.leader, self.every = leader, every
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssPeak:
        self.start = self.peak = group_rss(self.leader)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, group_rss(self.leader))

    @property
    def grown(self) -> int:
        return self.peak - self.start


def pipeline_flood(host: str, port: int, request: bytes, size: int, seconds: float) -> tuple[int, int]:
    """Send ``request`` back to back (``size`` bytes of them) in one write on one connection while
    a thread reads the answers: (requests sent, status lines read back) within ``seconds``."""
    count = size // len(request)
    answered = 0
    sock = socket.create_connection((host, port), timeout=seconds)
    deadline = time.monotonic() + seconds

    def read() -> None:
        nonlocal answered
        tail = b""
        try:
            while answered < count and time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return
                window = tail + chunk  # a status line may straddle two reads
                answered += window.count(b"HTTP/1.1 ")
                tail = window[-8:]
        except OSError:
            return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with contextlib.suppress(OSError):  # the server closed the connection: what it answered is counted
        sock.sendall(request * count)
    reader.join(max(0.0, deadline - time.monotonic()))
    sock.close()
    return count, answered


@dataclass(frozen=True)
class StormReport:
    outcomes: list[Outcome]
    seconds: float
    rss_before: int
    rss_after: int
    log_added: str  # what the server wrote to its log during the storm

    @property
    def rejected(self) -> int:
        """Requests the server turned down (a 4xx, or a connection it closed)."""
        return sum(o.label.startswith("4") or o.label in (CLOSED, RESET) for o in self.outcomes)


def storm_against(
    pid: int, log: Path, port: int, jobs: list[Job], *, threads: int = 8, stall_limit: float = 8.0
) -> StormReport:
    """Run ``jobs`` against the server on 127.0.0.1:``port`` (process group ``pid``, writing
    ``log``), measuring its memory and its log before and after."""
    rss_before, log_before, started = group_rss(pid), log.stat().st_size, time.monotonic()
    outcomes = run_storm("127.0.0.1", port, jobs, threads=threads, stall_limit=stall_limit)
    seconds = time.monotonic() - started
    with log.open("rb") as handle:
        handle.seek(log_before)
        added = handle.read().decode("utf-8", "replace")
    return StormReport(outcomes, seconds, rss_before, group_rss(pid), added)
