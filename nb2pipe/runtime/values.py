"""Values across step boundaries: each saved in a format that suits its type, loaded back
in the step that reads it.

The compiler embeds this file verbatim in every component, before ``step.py``, so a step
needs no nb2pipe in its image: only Python's standard library at import time, and the
libraries of the values it loads or saves, imported when used. Keep it free of
``from __future__`` imports and of syntax newer than Python 3.9.
"""

import importlib
import io
import json
import os
import pickle
import shutil
import threading
import time
import types
from collections.abc import Callable
from typing import Any, NamedTuple

VALUE_SIDECAR = "nb2pipe-value.json"


class StepError(Exception):
    """A step could not hand a value on, or could not read one."""

    # tracebacks name it nb2pipe.StepError, not after the module kfp runs the step from
    __module__ = "nb2pipe"


class NativeFormat(NamedTuple):
    """A value its library saves in a binary format of its own: such values hold pointers
    into a C library (xgboost's DMatrix, lightgbm's Dataset) that pickle cannot copy."""

    library: str  # the top-level package the value's class comes from
    type_name: str  # the class itself, not its subclasses (xgboost's QuantileDMatrix cannot be saved)
    form: str  # the name recorded in the value's sidecar
    file: str
    save: Callable[[Any, str], Any]
    load: Callable[[str], Any]


def _constructor(library: str, name: str) -> Callable[[str], Any]:
    return lambda path: getattr(importlib.import_module(library), name)(path)


def _save_binary(value: Any, path: str) -> None:
    value.save_binary(path)


#: Add a row to save another library's own kind of value.
NATIVE_FORMATS = (
    NativeFormat(
        "xgboost", "DMatrix", "xgboost-dmatrix", "value.dmatrix", _save_binary, _constructor("xgboost", "DMatrix")
    ),
    NativeFormat(
        "lightgbm", "Dataset", "lightgbm-dataset", "value.lgbdata", _save_binary, _constructor("lightgbm", "Dataset")
    ),
)


def native_format_of(value: Any) -> Any:
    """The row for ``value``'s type, or None."""
    kind = type(value)
    matches = [row for row in NATIVE_FORMATS if (kind.__module__.split(".")[0], kind.__name__) == row[:2]]
    return matches[0] if matches else None


def native_format_named(form: str) -> Any:
    matches = [row for row in NATIVE_FORMATS if row.form == form]
    return matches[0] if matches else None


_PROCESS_BOUND = (
    (types.ModuleType, "a module", "import it in an imports cell instead"),
    (types.GeneratorType, "a generator", "turn it into a list before the step ends"),
    (io.IOBase, "an open file", "pass the file's path and open it where it is used"),
    (type(threading.Lock()), "a lock", "create it in the step that uses it"),
    (threading.Thread, "a thread", "join it before the step ends and pass its results"),
)


def _library(value: Any) -> str:
    return type(value).__module__.split(".")[0]


def _is_json_value(value: Any) -> bool:
    kind = type(value)
    if kind in (str, int, float, bool, type(None)):
        return not (kind is float and value != value)  # NaN does not compare equal to itself
    if kind is list:
        return all(_is_json_value(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _is_json_value(item) for key, item in value.items())
    return False


def _is_keras_model(value: Any) -> bool:
    return _library(value) in ("keras", "tf_keras") and hasattr(value, "save") and hasattr(value, "layers")


def save_value(value: Any, path: str, name: str = "value") -> dict[str, Any]:
    """Save ``value`` into the directory ``path`` in a format that suits its type.

    Writes into a sibling directory first and renames it, so a stopped step never leaves a
    half-written artifact behind. Returns metadata describing what was written.
    """
    for kind, what, fix in _PROCESS_BOUND:
        if isinstance(value, kind):
            raise StepError(f"{name!r} is {what}, which cannot be passed to another step: {fix}")
    partial = f"{path.rstrip('/')}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
        try:
            file_name, form = _write(value, partial)
        except (pickle.PicklingError, TypeError, ValueError, AttributeError) as exc:
            raise StepError(_cannot_save(name, value, exc)) from None
        library = _library(value)
        described = {
            "format": form,
            "python_type": f"{type(value).__module__}.{type(value).__qualname__}",
            "file": file_name,
            "library": library,
        }
        with open(os.path.join(partial, VALUE_SIDECAR), "w") as handle:
            json.dump(described, handle, sort_keys=True)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(partial, path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return described


def _cannot_save(name: str, value: Any, exc: BaseException) -> str:
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    return (
        f"{name!r} (a {kind}) cannot be saved for the steps after this one ({type(exc).__name__}: {exc}): "
        "pass the data it is built from (a DataFrame, an array, a file path) and build it again in the step "
        "that uses it"
    )


def _write(value: Any, directory: str) -> tuple[str, str]:
    library = _library(value)
    native = native_format_of(value)
    if native is not None:
        native.save(value, os.path.join(directory, native.file))
        return native.file, native.form
    if library == "pandas" and _parquet_ok(value):
        try:
            return _write_parquet(value, directory)
        except (TypeError, ValueError):  # e.g. a column of numbers and text mixed: pickle keeps it as it is
            for leftover in os.listdir(directory):
                os.remove(os.path.join(directory, leftover))
    if library == "numpy" and type(value).__name__ == "ndarray" and value.dtype.kind != "O":
        import numpy

        numpy.save(os.path.join(directory, "value.npy"), value, allow_pickle=False)
        return "value.npy", "npy"
    if _is_keras_model(value):
        value.save(os.path.join(directory, "model.keras"))
        return "model.keras", "keras"
    if library in ("sklearn", "xgboost", "lightgbm", "catboost") and _is_model(value):
        try:
            import joblib
        except ImportError:
            joblib = None
        if joblib is not None:
            joblib.dump(value, os.path.join(directory, "model.joblib"))
            return "model.joblib", "joblib"
    if _is_json_value(value):
        with open(os.path.join(directory, "value.json"), "w") as handle:
            json.dump(value, handle)
        return "value.json", "json"
    try:
        import cloudpickle as pickler
    except ImportError:
        pickler = pickle
    with open(os.path.join(directory, "value.pkl"), "wb") as handle:
        pickler.dump(value, handle)
    return "value.pkl", "pickle"


def _write_parquet(value: Any, directory: str) -> tuple[str, str]:
    import pandas

    if isinstance(value, pandas.Series):
        frame = value.to_frame(name="__series__" if value.name is None else value.name)
        frame.to_parquet(os.path.join(directory, "value.series.parquet"))
        return "value.series.parquet", "parquet-series"
    value.to_parquet(os.path.join(directory, "value.parquet"))
    return "value.parquet", "parquet"


def _is_model(value: Any) -> bool:
    """An estimator or booster; a library's data objects are not for joblib."""
    return any(callable(getattr(value, method, None)) for method in ("fit", "predict", "transform"))


def _parquet_ok(value: Any) -> bool:
    try:
        import pandas
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    if isinstance(value, pandas.Series):
        return value.name is None or isinstance(value.name, str)
    if not isinstance(value, pandas.DataFrame):
        return False
    return all(isinstance(column, str) for column in value.columns) and value.columns.is_unique


def _wait_for(sidecar: str) -> None:
    """Until the value's sidecar appears. The runner that started this step early stops it
    if the producer fails; if that runner (``NB2PIPE_RUNNER_PID``) is gone, give up."""
    runner = int(os.environ.get("NB2PIPE_RUNNER_PID") or 0)
    checked = time.time()
    while not os.path.exists(sidecar):
        if runner and time.time() - checked > 0.5:
            checked = time.time()
            if not _process_alive(runner):
                raise StepError(f"gave up waiting for {sidecar}: the run that started this step has ended")
        time.sleep(0.02)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed runner stays a zombie until its parent reaps it
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def load_value(path: str, wait: bool = False) -> Any:
    """Load a value that :func:`save_value` wrote into ``path``; with ``wait``, until it
    appears (the local runner starts a step while the step it reads from still runs)."""
    sidecar = os.path.join(path, VALUE_SIDECAR)
    if wait:
        _wait_for(sidecar)
    with open(sidecar) as handle:
        described = json.load(handle)
    target = os.path.join(path, described["file"])
    form = described["format"]
    if form == "json":
        with open(target) as handle:
            return json.load(handle)
    if form in ("parquet", "parquet-series"):
        import pandas

        frame = pandas.read_parquet(target)
        if form == "parquet":
            return frame
        series = frame.iloc[:, 0]
        return series.rename(None) if series.name == "__series__" else series
    if form == "npy":
        import numpy

        return numpy.load(target, allow_pickle=False)
    if form == "joblib":
        import joblib

        return joblib.load(target)
    native = native_format_named(form)
    if native is not None:
        return native.load(target)
    if form == "keras":
        if described.get("library") == "tf_keras":
            import tf_keras as keras
        else:
            import keras
        return keras.models.load_model(target)
    with open(target, "rb") as handle:
        return pickle.load(handle)
