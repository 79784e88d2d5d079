"""The tables drift tests and explanations read, from wherever they are kept: a CSV or parquet file, a
folder holding a value an nb2pipe step saved, a served model's payload log (nb2pipe serve's, or
the objects KServe's logger wrote to a blob store or a copy of them, read by
:mod:`nb2pipe.store.logged_payloads`), or (for the reference) the training data registered
with a model version. pandas is imported where used.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.runtime.step import VALUE_SIDECAR, load_value
from nb2pipe.store.logged_payloads import has_logged_objects, is_blob_url, is_logged_payloads, read_logged_payloads
from nb2pipe.store.payloads import PREFIX, PayloadCounts, is_rejected, read_payloads
from nb2pipe.store.reference import load_reference

if TYPE_CHECKING:
    import pandas

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
MODEL_URI_PREFIXES = ("models:/", "runs:/")
SUPPORTED = (
    "a CSV file (.csv), a parquet file (.parquet), a payload-log folder (payloads-*.jsonl), KServe's payload "
    "log (s3://, gs://, abfs:// or a folder of <id>-request.json objects) "
    "or a folder holding a value an nb2pipe step saved (nb2pipe-value.json)"
)
_PARQUET_MAGIC = b"PAR1"


class TableError(Nb2PipeError):
    """A table could not be read."""


def load_table(path: str | Path, counts: PayloadCounts | None = None) -> pandas.DataFrame:
    """The table kept at ``path`` (see :data:`SUPPORTED`). A file without a suffix, as a
    KFP Dataset artifact often is, is read as parquet when it starts like one, else as CSV.
    A payload log's rejected requests and torn lines are left out and counted in ``counts``."""
    if is_blob_url(path):
        return _payload_log_table(path, counts)
    location = Path(path).expanduser()
    if not location.exists():
        raise TableError(f"{path}: no such file or folder; expected {SUPPORTED}")
    if location.is_dir():
        return _folder_table(location, counts)
    if not location.is_file():  # a pipe would block the read for ever, a device never end
        raise TableError(f"{path}: not a regular file but a pipe, socket or device; expected {SUPPORTED}")
    name = location.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return _read(location, "CSV")
    if name.endswith(PARQUET_SUFFIXES):
        return _read(location, "parquet")
    if not location.suffix:
        try:
            with location.open("rb") as handle:
                kind = "parquet" if handle.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC else "CSV"
        except OSError as exc:
            raise TableError(f"cannot read {path}: {exc}") from exc
        return _read(location, kind)
    raise TableError(f"{path}: cannot read {location.suffix} files; expected {SUPPORTED}")


def _read(path: Path, kind: str) -> pandas.DataFrame:
    import pandas

    try:
        return pandas.read_csv(path) if kind == "CSV" else pandas.read_parquet(path)
    except ImportError as exc:  # pandas reads parquet through pyarrow, an optional dependency of its own
        raise TableError(f"cannot read {path}: reading parquet needs pyarrow: pip install pyarrow") from exc
    except (OSError, ValueError) as exc:  # pandas' and pyarrow's parse errors are ValueErrors
        raise TableError(f"cannot read {path} as {kind}: {_first_line(exc)}") from exc


def _folder_table(folder: Path, counts: PayloadCounts | None) -> pandas.DataFrame:
    if (folder / VALUE_SIDECAR).is_file():
        try:
            value = load_value(str(folder))
        except (OSError, ValueError, KeyError, ImportError, EOFError, pickle.UnpicklingError) as exc:
            raise TableError(f"cannot read the value saved in {folder}: {_first_line(exc)}") from exc
        return as_table(value, str(folder))
    if any(folder.glob(f"{PREFIX}*.jsonl")) or has_logged_objects(folder):
        return _payload_log_table(folder, counts)
    raise TableError(f"{folder} is a folder, but neither a payload log nor a saved value; expected {SUPPORTED}")


def _payload_log_table(source: str | Path, counts: PayloadCounts | None) -> pandas.DataFrame:
    counts = counts if counts is not None else PayloadCounts()
    table = payload_table(source, counts=counts)
    if table is None:
        left = [f"{counts.rejected} rejected"] if counts.rejected else []
        left += [f"{counts.unpaired} without their pair"] if counts.unpaired else []
        other = f" other than {' and '.join(left)}" if left else ""
        raise TableError(f"the payload log {source} holds no requests yet{other}: send the endpoint some first")
    return table


def as_table(value: Any, name: str) -> pandas.DataFrame:
    """A pandas DataFrame from what a step saved: a frame, a series, or a 2-D numeric array
    (columns ``f0, f1, ...``)."""
    import pandas

    if isinstance(value, pandas.DataFrame):
        return value
    if isinstance(value, pandas.Series):
        return value.to_frame()
    import numpy

    array = numpy.asarray(value)
    if array.ndim == 2 and array.dtype.kind in "biuf":
        return pandas.DataFrame(array, columns=generic_names(array.shape[1]))
    raise TableError(
        f"drift: {name!r} is a {type(value).__name__} of shape {getattr(array, 'shape', '?')}, not a table; "
        "drift compares tables: pass a pandas DataFrame or a 2-D numeric array"
    )


def generic_names(count: int) -> list[str]:
    """The names rows without column names get: ``f0, f1, ...``."""
    return [f"f{index}" for index in range(count)]


def named_like(table: pandas.DataFrame, other: pandas.DataFrame) -> pandas.DataFrame:
    """``table`` with ``other``'s column names when it has only generic ones (requests sent
    as plain rows carry no names) and as many columns; else ``table`` unchanged."""
    names = [str(column) for column in table.columns]
    if names == generic_names(len(names)) and len(names) == len(other.columns):
        return table.set_axis(list(other.columns), axis=1)
    return table


def payload_table(
    folder: str | Path, version: str | None = None, counts: PayloadCounts | None = None
) -> pandas.DataFrame | None:
    """Every instance of every answered request logged in ``folder`` (a local payload log, or
    KServe's: a blob URL or a folder of its objects; only those of model ``version`` when given
    and recorded), one row each, oldest first; None when there are none. Rejected requests (of
    that version), torn lines and KServe records without their pair are left out and counted in
    ``counts``.

    Columns come from a record's ``columns``, else ``f0, f1, ...``; a row sent as an object of
    column: value keeps its keys. Records of different layouts are stacked by column name.
    """
    import pandas

    frames: list[pandas.DataFrame] = []
    layout: Any = None
    rows: list[Any] = []
    counts = counts if counts is not None else PayloadCounts()
    for record in _payload_records(folder, counts):
        # KServe's records carry a version only when the InferenceService annotates it
        if version is not None and "version" in record and str(record["version"]) != str(version):
            continue
        if is_rejected(record):
            counts.rejected += 1
            continue
        instances = record.get("instances")
        if not isinstance(instances, list):
            raise TableError(
                f"the payload log {folder} has a record (time {record.get('time')}) whose instances are "
                f"a {type(instances).__name__}, not a list of rows; remove that line"
            )
        columns = record.get("columns")
        for row in instances:
            if isinstance(row, dict):
                key: Any = "objects"
            else:
                row = row if isinstance(row, list) else [row]  # one-feature models take bare values
                key = tuple(columns) if columns else len(row)
            if key != layout:
                frames.extend(_frame(layout, rows, folder))
                layout, rows = key, []
            rows.append(row)
    frames.extend(_frame(layout, rows, folder))
    if not frames:
        return None
    return frames[0] if len(frames) == 1 else pandas.concat(frames, ignore_index=True)


def _payload_records(source: str | Path, counts: PayloadCounts) -> Iterable[dict[str, Any]]:
    if is_logged_payloads(source):
        return read_logged_payloads(source, counts=counts)
    return read_payloads(source, include_rejected=True, counts=counts)


def _frame(layout: Any, rows: list[Any], folder: str | Path) -> Iterable[pandas.DataFrame]:
    """The rows of one layout as a frame (none when there are no rows)."""
    if not rows:
        return []
    import pandas

    if layout == "objects":
        return [pandas.DataFrame.from_records(rows)]
    columns = list(layout) if isinstance(layout, tuple) else generic_names(layout)
    wrong = next((row for row in rows if len(row) != len(columns)), None)
    if wrong is not None:
        raise TableError(
            f"the payload log {folder} has a row of {len(wrong)} values logged with {len(columns)} column names "
            f"({', '.join(map(str, columns))}); it is not a log nb2pipe serve wrote, or it was edited"
        )
    return [pandas.DataFrame(rows, columns=columns)]


def load_reference_table(source: str | Path, store: str | Path | None = None) -> pandas.DataFrame:
    """The reference table: ``source`` read by :func:`load_table`, or, for a registered model
    (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID``), the training data
    kept with it in the tracking store (``MLFLOW_TRACKING_URI``, else ``store``'s)."""
    text = str(source)
    if not text.startswith(MODEL_URI_PREFIXES):
        return load_table(source)
    from nb2pipe.store.registry import download_reference

    kept = download_reference(text, store=store)
    if kept is None:
        raise TableError(
            f"{text} kept no training data to compare with (registered before nb2pipe kept it, or its data "
            "could not be stored): register it again, or pass --reference a data file"
        )
    return as_table(load_reference(kept), text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
