"""Reading the tables drift tests compare (files, saved values, payload logs, a registered
model's training data) and keeping a model's training data (save/load_reference)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.drift import DriftSettings
from nb2pipe.monitoring.drift_files import drift_of_files
from nb2pipe.runtime.step import save_value
from nb2pipe.store.payloads import PayloadLog
from nb2pipe.store.reference import REFERENCE_DIR, load_reference, save_reference
from nb2pipe.store.registry import TRACKING_ENV
from nb2pipe.store.tables import (
    TableError,
    load_reference_table,
    load_table,
    named_like,
    payload_table,
)
from tests.support.registered import RegisteredModel

FRAME = pd.DataFrame({"width": [1.5, 2.5, 3.5], "colour": ["red", "blue", "red"], "count": [1, 2, 3]})


def payload_log(folder: Path, version: str | None, model: str = "cancer") -> PayloadLog:
    return PayloadLog(folder, model, version)


# --- files and saved values ---------------------------------------------------------------


def test_csv_and_parquet(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "data.csv", index=False)
    FRAME.to_parquet(tmp_path / "data.parquet")
    pd.testing.assert_frame_equal(load_table(tmp_path / "data.csv"), FRAME)
    pd.testing.assert_frame_equal(load_table(str(tmp_path / "data.parquet")), FRAME)


def test_a_file_without_a_suffix_is_sniffed(tmp_path: Path) -> None:
    # KFP Dataset artifacts are usually files named only after the output
    FRAME.to_parquet(tmp_path / "dataset")
    FRAME.to_csv(tmp_path / "table", index=False)
    pd.testing.assert_frame_equal(load_table(tmp_path / "dataset"), FRAME)
    pd.testing.assert_frame_equal(load_table(tmp_path / "table"), FRAME)


def test_saved_values(tmp_path: Path) -> None:
    save_value(FRAME, str(tmp_path / "frame"))
    save_value(np.arange(6.0).reshape(3, 2), str(tmp_path / "array"))
    save_value(FRAME["width"], str(tmp_path / "series"))
    pd.testing.assert_frame_equal(load_table(tmp_path / "frame"), FRAME)
    array = load_table(tmp_path / "array")
    assert list(array.columns) == ["f0", "f1"] and array.to_numpy().tolist() == [[0, 1], [2, 3], [4, 5]]
    assert list(load_table(tmp_path / "series").columns) == ["width"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: None, "no such file or folder; expected a CSV file (.csv), a parquet file"),
        (lambda path: path.write_text("x"), "cannot read .xlsx files; expected a CSV file (.csv), a parquet file"),
        (lambda path: path.mkdir(), "is a folder, but neither a payload log nor a saved value"),
    ],
)
def test_what_cannot_be_read_is_explained(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "data.xlsx"
    make(path)  # type: ignore[operator]
    with pytest.raises(TableError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_table(path)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 but not really")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TableError, match=f"cannot read {tmp_path / 'broken.parquet'} as parquet: "):
        load_table(tmp_path / "broken.parquet")
    with pytest.raises(TableError, match=f"cannot read {tmp_path / 'empty.csv'} as CSV: "):
        load_table(tmp_path / "empty.csv")


def test_a_saved_value_that_is_no_table(tmp_path: Path) -> None:
    save_value({"not": "a table"}, str(tmp_path / "settings"))
    with pytest.raises(TableError, match="is a dict of shape \\(\\), not a table"):
        load_table(tmp_path / "settings")


# --- payload logs -------------------------------------------------------------------------


def test_payload_log_rows_become_one_table(tmp_path: Path) -> None:
    log = payload_log(tmp_path, "1")
    log.append("v1", ["a", "b"], [[1.0, 2.0], [3.0, 4.0]], [0, 1])
    log.append("v2", ["a", "b"], [[5.0, 6.0]], [1])
    log.append("v1", ["a", "b"], [{"b": 8.0, "a": 7.0}], [0])  # a row sent as an object
    log.close()
    table = load_table(tmp_path)
    assert list(table.columns) == ["a", "b"]
    assert table.to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]


def test_rows_without_column_names_get_generic_ones(tmp_path: Path) -> None:
    log = payload_log(tmp_path, None)
    log.append("v1", None, [[1, 2, 3]], [0])
    log.append("v1", None, [[4, 5, 6]], [0])
    log.close()
    table = payload_table(tmp_path)
    assert table is not None and list(table.columns) == ["f0", "f1", "f2"] and len(table) == 2


def test_payload_table_of_one_model_version(tmp_path: Path) -> None:
    for version, rows in (("1", [[1.0], [2.0]]), ("2", [[10.0], [20.0], [30.0]])):
        log = payload_log(tmp_path, version)
        log.append("v1", ["a"], rows, [0] * len(rows))
        log.close()
    assert payload_table(tmp_path, version="2")["a"].tolist() == [10.0, 20.0, 30.0]  # type: ignore[index]
    assert len(payload_table(tmp_path)) == 5  # type: ignore[arg-type]
    assert payload_table(tmp_path, version="3") is None
    assert payload_table(tmp_path / "nothing-here") is None


def test_logs_of_requests_from_several_threads_are_whole(tmp_path: Path) -> None:
    log = payload_log(tmp_path, "1")
    threads = [
        threading.Thread(target=lambda: [log.append("v1", ["a"], [[1.0]] * 5, [0] * 5) for _ in range(20)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert len(payload_table(tmp_path)) == 4 * 20 * 5  # type: ignore[arg-type]


def test_a_log_with_no_requests_yet(tmp_path: Path) -> None:
    (tmp_path / "payloads-20260101.jsonl").write_text("")
    with pytest.raises(TableError, match="holds no requests yet"):
        load_table(tmp_path)


def test_an_edited_log_is_refused(tmp_path: Path) -> None:
    record = {"time": "t", "version": "1", "columns": ["a", "b"], "instances": [[1.0]], "predictions": [0]}
    (tmp_path / "payloads-20260101.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(TableError, match="a row of 1 values logged with 2 column names"):
        load_table(tmp_path)


def test_named_like() -> None:
    named = pd.DataFrame({"a": [1.0], "b": [2.0]})
    generic = pd.DataFrame({"f0": [3.0], "f1": [4.0]})
    assert list(named_like(generic, named).columns) == ["a", "b"]
    assert named_like(named, generic) is named
    assert named_like(generic, named[["a"]]) is generic  # not as many columns: left alone


# --- the training data kept with a model ----------------------------------------------------


@pytest.mark.parametrize("value", [FRAME, np.arange(12.0).reshape(4, 3)], ids=["frame", "array"])
def test_reference_round_trip(tmp_path: Path, value: object) -> None:
    folder = tmp_path / REFERENCE_DIR
    saved = save_reference(value, folder)
    assert saved.parent == folder
    for path in (saved, folder):  # the value's own folder, or the reference/ folder around it
        loaded = load_reference(path)
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(loaded, value)
        else:
            np.testing.assert_array_equal(loaded, value)


def test_a_reference_that_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(Nb2PipeError, match="is a lock, which cannot be passed to another step"):
        save_reference(threading.Lock(), tmp_path)
    with pytest.raises(Nb2PipeError, match="holds no saved training data"):
        load_reference(tmp_path)


@pytest.mark.slow
def test_a_registered_models_training_data_is_the_reference(
    registered_model: RegisteredModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACKING_ENV, "")  # unset for nb2pipe (store wins), and restored after
    features = registered_model.features
    reference = load_reference_table(registered_model.model_uri, store=registered_model.folder)
    pd.testing.assert_frame_equal(reference, features)
    # traffic sent as plain rows: generic names, matched to the training data's
    shifted = features.to_numpy() + np.where(np.arange(features.shape[1]) < 2, features.std().to_numpy(), 0.0)
    log = payload_log(tmp_path / "payloads", "1")
    log.append("v1", None, shifted.tolist(), [0] * len(shifted))
    log.close()
    result, _, current = drift_of_files(
        registered_model.model_uri, tmp_path / "payloads", DriftSettings(), store=registered_model.folder
    )
    assert list(current.columns) == list(features.columns)
    assert result.is_drift and {feature.name for feature in result.drifted} == set(features.columns[:2])


def test_a_model_without_training_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nb2pipe.store.registry.download_reference", lambda uri, store=None: None)
    with pytest.raises(TableError, match="models:/old/1 kept no training data to compare with"):
        load_reference_table("models:/old/1")
