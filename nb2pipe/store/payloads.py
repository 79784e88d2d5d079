"""The local payload store: every request and response a local server answered, one JSON
line each, in ``DIR/payloads-YYYYMMDD.jsonl`` (a file a day, appended, never rewritten).

A line: ``{"time": ISO, "model": NAME, "version": V, "protocol": "v1"|"v2", "columns": [...]|null,
"instances": [[...], ...], "predictions": [...]}``. Drift detection reads the instances back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

PREFIX = "payloads-"


class PayloadLog:
    """Appends one line per answered request; safe to call from the server's threads."""

    def __init__(self, directory: str | Path, model: str, version: str | None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model, self.version = model, version
        self._lock = threading.Lock()
        self._day = ""
        self._handle: IO[str] | None = None

    def append(self, protocol: str, columns: list[str] | None, instances: Any, predictions: list[Any]) -> None:
        now = datetime.now(UTC)
        record = {
            "time": now.isoformat(timespec="milliseconds"),
            "model": self.model,
            "version": self.version,
            "protocol": protocol,
            "columns": columns,
            "instances": instances,
            "predictions": predictions,
        }
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            handle = self._open(now.strftime("%Y%m%d"))
            handle.write(line)  # one write per line: readers never see half a record
            handle.flush()

    def _open(self, day: str) -> IO[str]:
        if self._handle is None or day != self._day:
            if self._handle is not None:
                self._handle.close()
            self._handle = (self.directory / f"{PREFIX}{day}.jsonl").open("a", encoding="utf-8")
            self._day = day
        return self._handle

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def read_payloads(directory: str | Path) -> Iterator[dict[str, Any]]:
    """Every stored record, oldest file first; a torn last line (a crash mid-write) is skipped."""
    for path in sorted(Path(directory).glob(f"{PREFIX}*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
