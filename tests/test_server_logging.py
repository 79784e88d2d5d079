"""Where nb2pipe serve logs: one handler for every server logger, a rotating file bounded in size."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from nb2pipe.lifecycle import server_logging
from nb2pipe.lifecycle.server_logging import configure_logging

NAMES = ("kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access", "nb2pipe", "py.warnings")


@pytest.fixture
def restored_loggers() -> Iterator[None]:
    """configure_logging changes process-wide loggers: put them back for the other tests."""
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate) for name in NAMES}
    levels = {name: logging.getLogger(name).level for name in NAMES}
    yield
    for name, (handlers, propagate) in saved.items():
        for handler in logging.getLogger(name).handlers:
            if handler not in handlers:
                handler.close()
        logging.getLogger(name).handlers, logging.getLogger(name).propagate = handlers, propagate
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def test_the_log_file_rotates_and_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored_loggers: None
):
    monkeypatch.setattr(server_logging, "LOG_FILE_BYTES", 4096)
    log = tmp_path / "logs" / "svc.log"
    configure_logging(log)
    line = "400 POST /v1/models/svc:predict - each row needs 30 values, got 2"
    for _ in range(2000):  # ~200 kB of log lines
        logging.getLogger("nb2pipe.serve").info(line)
        logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    files = sorted(log.parent.iterdir())
    assert [f.name for f in files] == ["svc.log", "svc.log.1", "svc.log.2"]
    assert sum(f.stat().st_size for f in files) <= 3 * (4096 + 200)
    assert line in log.read_text() or line in (tmp_path / "logs" / "svc.log.1").read_text()


def test_kserve_uvicorn_and_warnings_reach_the_same_handler_once(tmp_path: Path, restored_loggers: None):
    log = tmp_path / "svc.log"
    configure_logging(log)
    logging.getLogger("kserve").info("kserve line")
    logging.getLogger("uvicorn.error").info("uvicorn line")
    warnings.warn("a library warning", UserWarning, stacklevel=1)
    text = log.read_text()
    for expected in ("kserve INFO kserve line", "uvicorn.error INFO uvicorn line", "UserWarning: a library warning"):
        assert text.count(expected) == 1, text
