"""nb2pipe's step runtime: runs one pipeline step's notebook code inside a KFP component.

The compiler embeds this file verbatim in every component it emits, so a step needs no
nb2pipe in its image: only Python's standard library at import time, and the libraries of
the values it loads or saves, imported when used. Keep it free of ``from __future__``
imports and of syntax newer than Python 3.9.
"""

import ast
import io
import json
import linecache
import os
import pickle
import shutil
import sys
import threading
import traceback
import types
from typing import Any, Dict, List, Tuple

VALUE_SIDECAR = "nb2pipe-value.json"
ERROR_MARKER = "NB2PIPE_STEP_ERROR "


class StepError(Exception):
    """A step could not hand a value on, or could not read one."""


def run_step(
    spec: Dict[str, Any],
    parameters: Dict[str, Any],
    inputs: Dict[str, Any],
    outputs: Dict[str, Any],
    metrics: Any = None,
) -> None:
    """Run a step: parameters, prelude, inputs, re-run definitions, the step's cells; then
    save the values later steps need and log its metrics."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    namespace["display"] = _display
    namespace["get_ipython"] = lambda: None
    previous_main = sys.modules.get("__main__")
    sys.modules["__main__"] = module  # so pickles of notebook classes resolve here
    try:
        namespace.update(parameters)
        for block in spec["prelude"]:
            _run_block(block, namespace, spec)
        for name, artifact in inputs.items():
            namespace[name] = load_value(artifact.path)
        for block in spec["replays"] + spec["cells"]:
            _run_block(block, namespace, spec)
        for name, artifact in outputs.items():
            if name not in namespace:
                raise StepError(
                    "step %r was expected to define %r for the steps after it, but did not" % (spec["step"], name)
                )
            described = save_value(namespace[name], artifact.path, name)
            artifact.metadata.update(described)
        if metrics is not None:
            for name in spec["metrics"]:
                metrics.log_metric(name, _metric_value(name, namespace.get(name)))
    finally:
        if previous_main is not None:
            sys.modules["__main__"] = previous_main


def _run_block(block: List[Any], namespace: Dict[str, Any], spec: Dict[str, Any]) -> None:
    cell, execution_count, first_line, source = block
    filename = "<%s cell %d>" % (spec["notebook"], cell + 1)
    linecache.cache[filename] = (len(source), None, _pad(source, first_line).splitlines(True), filename)
    tree = ast.parse(source, filename)
    ast.increment_lineno(tree, first_line - 1)
    code = compile(tree, filename, "exec")
    try:
        exec(code, namespace)
    except BaseException as exc:
        _report_failure(exc, spec, cell, execution_count, filename)
        raise


def _pad(source: str, first_line: int) -> str:
    """Source laid out at its notebook line numbers, for tracebacks."""
    return "\n" * (first_line - 1) + source


def _report_failure(exc: BaseException, spec: Dict[str, Any], cell: int, execution_count: Any, filename: str) -> None:
    frames = traceback.extract_tb(exc.__traceback__)
    notebook_frames = [frame for frame in frames if frame.filename.startswith("<" + spec["notebook"] + " cell ")]
    line = notebook_frames[-1].lineno if notebook_frames else None
    shown = traceback.format_list(notebook_frames) if notebook_frames else []
    where = "%s, cell %d%s, line %s" % (
        spec["notebook"],
        cell + 1,
        " [%s]" % execution_count if execution_count is not None else "",
        line,
    )
    sys.stderr.write(
        "Step %r failed at %s:\nTraceback (most recent call last):\n%s%s"
        % (spec["step"], where, "".join(shown), "".join(traceback.format_exception_only(type(exc), exc)))
    )
    record = {
        "step": spec["step"],
        "notebook": spec["notebook"],
        "cell": cell,
        "execution_count": execution_count,
        "line": line,
        "error": type(exc).__name__,
        "message": str(exc),
    }
    sys.stderr.write(ERROR_MARKER + json.dumps(record) + "\n")
    sys.stderr.flush()


def _display(*values: Any) -> None:
    for value in values:
        print(value)


def _metric_value(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StepError("metric %r must be a number, got %s" % (name, type(value).__name__)) from None


# --- values across step boundaries ------------------------------------------------------

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


def save_value(value: Any, path: str, name: str = "value") -> Dict[str, Any]:
    """Save ``value`` into the directory ``path`` in a format that suits its type.

    Writes into a sibling directory first and renames it, so a stopped step never leaves a
    half-written artifact behind. Returns metadata describing what was written.
    """
    for kind, what, fix in _PROCESS_BOUND:
        if isinstance(value, kind):
            raise StepError("%r is %s, which cannot be passed to another step: %s" % (name, what, fix))
    partial = "%s.partial-%d" % (path.rstrip("/"), os.getpid())
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
        file_name, form = _write(value, partial)
        library = _library(value)
        described = {
            "format": form,
            "python_type": "%s.%s" % (type(value).__module__, type(value).__qualname__),
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


def _write(value: Any, directory: str) -> Tuple[str, str]:
    library = _library(value)
    if library == "pandas" and _parquet_ok(value):
        import pandas

        if isinstance(value, pandas.Series):
            value.to_frame(name="__series__" if value.name is None else value.name).to_parquet(
                os.path.join(directory, "value.series.parquet")
            )
            return "value.series.parquet", "parquet-series"
        value.to_parquet(os.path.join(directory, "value.parquet"))
        return "value.parquet", "parquet"
    if library == "numpy" and type(value).__name__ == "ndarray" and value.dtype.kind != "O":
        import numpy

        numpy.save(os.path.join(directory, "value.npy"), value, allow_pickle=False)
        return "value.npy", "npy"
    if _is_keras_model(value):
        value.save(os.path.join(directory, "model.keras"))
        return "model.keras", "keras"
    if library in ("sklearn", "xgboost", "lightgbm", "catboost"):
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


def load_value(path: str) -> Any:
    """Load a value that :func:`save_value` wrote into ``path``."""
    with open(os.path.join(path, VALUE_SIDECAR)) as handle:
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
    if form == "keras":
        if described.get("library") == "tf_keras":
            import tf_keras as keras
        else:
            import keras
        return keras.models.load_model(target)
    with open(target, "rb") as handle:
        return pickle.load(handle)


#: The name compiled step functions call, one no notebook variable is likely to shadow.
_nb2pipe_run_step = run_step
