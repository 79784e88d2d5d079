"""The payload log's promises (nb2pipe/store/payloads.py): rejected requests are kept and
marked, drift reads only answered ones, a crash mid-write never costs the next record, and
torn lines are counted and warned about. Fast: files only, no server."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nb2pipe.monitoring import drift
from nb2pipe.monitoring.drift import DriftResult, DriftSettings, FeatureScores
from nb2pipe.monitoring.drift_files import drift_of_files
from nb2pipe.monitoring.drift_report import drift_report_html, drift_summary
from nb2pipe.store import payloads
from nb2pipe.store.payloads import (
    BODY_LIMIT,
    REASON_LIMIT,
    PayloadCounts,
    PayloadLog,
    PayloadLogWarning,
    is_rejected,
    read_payloads,
)
from nb2pipe.store.tables import TableError, load_table, payload_table

ROWS = [[1.0, 2.0], [3.0, 4.0]]


def logged(folder: Path, version: str | None = "1") -> PayloadLog:
    return PayloadLog(folder, "cancer", version)


def only_file(folder: Path) -> Path:
    (path,) = folder.glob("payloads-*.jsonl")
    return path


def read_quietly(folder: Path, **options: Any) -> list[dict[str, Any]]:
    """The records, failing the test on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return list(read_payloads(folder, **options))


# --- rejected requests --------------------------------------------------------------------


def test_a_rejected_request_is_kept_marked_and_left_out_by_default(tmp_path: Path) -> None:
    log = logged(tmp_path)
    log.append("v1", ["a", "b"], ROWS, [0, 1])
    log.append_rejected("v2", "expected 2 values per row, got 3", {"inputs": [{"name": "x", "data": [1, 2, 3]}]})
    log.append_rejected("v1", "the body is not JSON", b"{not json")
    log.append_rejected("v2", "bad inference-header-content-length: 'abc'")
    log.append_rejected("v1", "expected 2 values per row, got 1", b'{"instances": [[1.0]]}')  # raw bytes, parsed
    log.close()

    answered = read_quietly(tmp_path)
    assert len(answered) == 1 and answered[0]["instances"] == ROWS
    assert "rejected" not in answered[0]  # answered records are as they always were

    counts = PayloadCounts()
    assert read_quietly(tmp_path, counts=counts) == answered and counts.rejected == 4

    everything = read_quietly(tmp_path, include_rejected=True)
    assert [is_rejected(record) for record in everything] == [False, True, True, True, True]
    bad_width, not_json, no_body, raw = everything[1:]
    assert bad_width["rejected"] == "expected 2 values per row, got 3" and bad_width["protocol"] == "v2"
    assert bad_width["body"] == {"inputs": [{"name": "x", "data": [1, 2, 3]}]}
    assert (bad_width["model"], bad_width["version"]) == ("cancer", "1") and bad_width["time"]
    assert not_json["body"] == "{not json" and "body_size" not in not_json
    assert no_body["body"] is None
    assert raw["body"] == {"instances": [[1.0]]}
    assert all("instances" not in record and "predictions" not in record for record in everything[1:])


def test_a_rejected_requests_body_and_reason_are_bounded(tmp_path: Path) -> None:
    log = logged(tmp_path)
    big = {"instances": [[0.5] * 10] * 1000}
    log.append_rejected("v1", "x" * 100_000, big)
    log.append_rejected("v2", "binary", b"\xff\xfe" + bytes(range(256)) * 100)
    log.append_rejected("v1", "text", "é" * 10_000)
    deep = b"[" * 2000 + b"]" * 2000  # small, but nested deeper than Python's JSON parser goes
    log.append_rejected("v1", "deep", deep)
    log.close()
    lines = only_file(tmp_path).read_bytes().splitlines()
    assert len(lines) == 4 and all(len(line) < 8 * BODY_LIMIT for line in lines)
    json_body, binary, text, nested = read_quietly(tmp_path, include_rejected=True)
    assert nested["body"] == deep.decode() and "body_size" not in nested
    assert json_body["rejected"].startswith("x" * REASON_LIMIT) and len(json_body["rejected"]) <= REASON_LIMIT + 4
    assert json_body["body"] == json.dumps(big, separators=(",", ":"))[:BODY_LIMIT]
    assert json_body["body_size"] == len(json.dumps(big, separators=(",", ":")))
    assert isinstance(binary["body"], str) and binary["body_size"] == 2 + 256 * 100
    assert text["body"].startswith("éé") and text["body_size"] == 20_000
    assert len(text["body"].encode()) <= BODY_LIMIT + 3  # a character cut in two becomes one replacement


def test_drift_tables_leave_rejected_requests_out_and_count_them(tmp_path: Path) -> None:
    for version in ("1", "2"):
        log = logged(tmp_path, version)
        log.append("v1", ["a", "b"], ROWS, [0, 1])
        log.append_rejected("v1", "bad width", {"instances": [[1.0]]})
        log.append_rejected("v1", "bad width", {"instances": [[1.0, 2.0, 3.0]]})
        log.close()
    counts = PayloadCounts()
    table = payload_table(tmp_path, version="2", counts=counts)
    assert table is not None and table.to_numpy().tolist() == ROWS and counts.rejected == 2
    counts = PayloadCounts()
    assert load_table(tmp_path, counts).to_numpy().tolist() == ROWS * 2 and counts.rejected == 4


def test_a_log_of_only_rejected_requests_has_no_table(tmp_path: Path) -> None:
    log = logged(tmp_path)
    log.append_rejected("v1", "bad width", {"instances": [[1.0]]})
    log.close()
    with pytest.raises(TableError, match="holds no requests yet other than 1 rejected"):
        load_table(tmp_path)


class ConstantBackend:
    """A drift backend that finds no drift, so this test needs no alibi-detect."""

    def feature_tests(
        self, method: str, reference: np.ndarray, current: np.ndarray, categorical: Sequence[int], *_: Any
    ) -> FeatureScores:
        columns = reference.shape[1]
        return FeatureScores([0.0] * columns, [1.0] * columns, 0.05, False)

    def kernel_test(self, *_: Any) -> Any:
        raise AssertionError("not used")


def test_drift_of_a_payload_log_says_how_many_rejected_requests_it_did_not_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(drift.BACKENDS, "constant", ConstantBackend)
    log = logged(tmp_path / "payloads")
    log.append("v1", ["a", "b"], ROWS * 10, [0] * 20)
    for _ in range(3):
        log.append_rejected("v1", "bad width", {"instances": [[1.0]]})
    log.close()
    reference = tmp_path / "reference.csv"
    reference.write_text("a,b\n" + "\n".join(f"{i},{i + 1}" for i in range(20)) + "\n")

    result, before, current = drift_of_files(reference, tmp_path / "payloads", DriftSettings(backend="constant"))
    assert len(current) == 20 and result.rejected_requests == 3
    assert result.to_json()["rejected_requests"] == 3 and result.metrics()["rejected_requests"] == 3.0
    assert "(3 rejected requests not tested)" in drift_summary(result)
    assert "<dt>not tested</dt><dd>3 requests the model rejected" in drift_report_html(result, before, current)
    plain, _, _ = drift_of_files(reference, reference, DriftSettings(backend="constant"))
    assert plain.rejected_requests == 0 and "rejected_requests" not in plain.metrics()
    assert "rejected" not in drift_summary(DriftResult("tabular", False, 0.05, (), 20, 20))


# --- crashes mid-write ----------------------------------------------------------------------


def test_after_a_power_loss_the_next_record_starts_a_line_of_its_own(tmp_path: Path) -> None:
    log = logged(tmp_path)
    log.append("v1", ["a", "b"], ROWS, [0, 1])
    log.close()
    path = only_file(tmp_path)
    with path.open("ab") as handle:  # the machine lost power halfway through a record
        handle.write(b'{"time":"2026-01-01T00:00:00.000+00:00","model":"cancer","instances":[[5.0,')

    counts = PayloadCounts()
    assert len(read_quietly(tmp_path, counts=counts)) == 1  # a line still being written: no warning
    assert (counts.incomplete, counts.torn) == (1, 0)

    restarted = logged(tmp_path)
    restarted.append("v1", ["a", "b"], [[7.0, 8.0]], [1])
    restarted.close()
    *_, fragment, appended, end = path.read_bytes().split(b"\n")
    assert fragment.endswith(b"[[5.0,") and json.loads(appended)["instances"] == [[7.0, 8.0]] and end == b""
    counts = PayloadCounts()
    with pytest.warns(PayloadLogWarning, match=rf"payload log {path}: skipped 1 torn line \(cut short by a crash"):
        records = list(read_payloads(tmp_path, counts=counts))
    assert [record["instances"] for record in records] == [ROWS, [[7.0, 8.0]]]
    assert (counts.torn, counts.incomplete) == (1, 0)


def test_a_record_stuck_to_a_fragment_by_an_older_writer_is_recovered(tmp_path: Path) -> None:
    # rows sent as objects with a column "time": the scan for the stuck record must pass them by
    record = {
        "time": "2026-01-01T00:00:01.000+00:00",
        "model": "cancer",
        "version": "1",
        "protocol": "v1",
        "columns": None,
        "instances": [{"time": 1.0, "b": 2.0}, {"time": 3.0, "b": 4.0}],
        "predictions": [0, 1],
    }
    fragment = '{"time":"2026-01-01T00:00:00.000+00:00","model":"cancer","instances":[{"time":5.0,"b":'
    whole = json.dumps(record, separators=(",", ":"))
    (tmp_path / "payloads-20260101.jsonl").write_text(f"{whole}\n{fragment}{whole}\n{whole}\n")
    counts = PayloadCounts()
    with pytest.warns(PayloadLogWarning, match="skipped 1 torn line .*; kept 1 record appended to it"):
        records = list(read_payloads(tmp_path, counts=counts))
    assert records == [record] * 3 and counts.torn == 1


def test_zeros_and_garbage_are_torn_lines_counted_once_per_file(tmp_path: Path) -> None:
    whole = json.dumps({"time": "t", "version": "1", "columns": ["a"], "instances": [[1.0]], "predictions": [0]})
    (tmp_path / "payloads-20260101.jsonl").write_bytes(
        b"\0" * 4096 + b"\n" + whole.encode() + b"\n\xff\xfe not json\n[1, 2]\n\n" + whole.encode() + b"\n"
    )
    (tmp_path / "payloads-20260102.jsonl").write_text(whole + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        counts = PayloadCounts()
        table = payload_table(tmp_path, counts=counts)
    assert table is not None and len(table) == 3
    assert counts.torn == 3  # the zeros, the garbage, a JSON value that is no record; not the blank line
    messages = [str(warning.message) for warning in caught if warning.category is PayloadLogWarning]
    assert messages == [
        f"payload log {tmp_path / 'payloads-20260101.jsonl'}: skipped 3 torn lines (cut short by a crash mid-write, "
        "or edited)"
    ]


def test_a_failed_write_does_not_glue_the_next_record_to_its_remains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logged(tmp_path)
    log.append("v1", ["a", "b"], ROWS, [0, 1])
    write_all = payloads._write_all

    def half_then_full_disk(handle: Any, data: bytes) -> None:
        write_all(handle, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(payloads, "_write_all", half_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        log.append("v1", ["a", "b"], [[5.0, 6.0]], [0])
    monkeypatch.setattr(payloads, "_write_all", write_all)
    log.append("v1", ["a", "b"], [[7.0, 8.0]], [1])
    log.close()
    assert json.loads(only_file(tmp_path).read_bytes().split(b"\n")[-2])["instances"] == [[7.0, 8.0]]
    with pytest.warns(PayloadLogWarning, match="skipped 1 torn line"):
        records = list(read_payloads(tmp_path))
    assert [record["instances"] for record in records] == [ROWS, [[7.0, 8.0]]]


def test_appends_from_many_threads_are_whole_lines(tmp_path: Path) -> None:
    log = logged(tmp_path)
    wide = [[float(column) for column in range(300)]] * 20  # ~ 20 kB a line: more than one buffer

    def send(worker: int) -> None:
        for request in range(25):
            if request % 5 == 0:
                log.append_rejected("v2", f"worker {worker} request {request}", {"inputs": wide})
            else:
                log.append("v1", None, wide, [worker] * len(wide))

    threads = [threading.Thread(target=send, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    lines = only_file(tmp_path).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 8 * 25 + 1
    assert all(isinstance(json.loads(line), dict) for line in lines[:-1])
    counts = PayloadCounts()
    records = read_quietly(tmp_path, counts=counts)
    assert len(records) == 8 * 20 and counts == PayloadCounts(rejected=8 * 5)
    assert all(record["instances"] == wide for record in records)
