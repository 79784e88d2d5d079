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
from typing import Any, NamedTuple, Optional

from nb2pipe.runtime.torch_values import (
    _TORCH_PROCESS_BOUND,
    _class_names,
    _load_torch,
    _torch_form,
    _write_torch,
    torch_map_location,
)

VALUE_SIDECAR = "nb2pipe-value.json"
#: The sidecar key of a value kept in the pipeline's workspace: the artifact holds only its
#: sidecar, the value's files are in WORKSPACE/PATH, e.g. ``"nb2pipe_workspace": {"path":
#: "nb2pipe-values/train/X", "bytes": 5242880, "step": "train"}``.
WORKSPACE_KEY = "nb2pipe_workspace"
#: the workspace's folder of values, one folder per step and value under it
WORKSPACE_VALUES = "nb2pipe-values"


class StepError(Exception):
    """A step could not hand a value on, or could not read one."""

    # tracebacks name it nb2pipe.StepError, not after the module kfp runs the step from
    __module__ = "nb2pipe"


class Workspace(NamedTuple):
    """The pipeline's workspace as the saving step sees it: a value whose files are larger
    than ``threshold`` bytes is kept there, under WORKSPACE_VALUES/STEP/NAME."""

    root: str
    step: str
    threshold: int


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


def save_value(
    value: Any,
    path: str,
    name: str = "value",
    workspace: Optional[Workspace] = None,
) -> dict[str, Any]:
    """Save ``value`` into the directory ``path`` in a format that suits its type; with a
    ``workspace``, a value whose files are larger than its threshold goes there instead, and
    ``path`` holds only the sidecar that points to it.

    Writes into a sibling directory first and renames it, so a stopped step never leaves a
    half-written artifact behind, and a step waiting for the sidecar never reads a partial
    value. Returns metadata describing what was written.
    """
    _check_passable(value, name)
    if workspace is not None:
        return _save_through_workspace(value, path, name, workspace)
    partial = _fresh_partial(path)
    try:
        described = _write_described(value, partial, name)
        _publish(partial, path, described)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return described


def _check_passable(value: Any, name: str) -> None:
    for kind, what, fix in _PROCESS_BOUND:
        if isinstance(value, kind):
            raise StepError(f"{name!r} is {what}, which cannot be passed to another step: {fix}")
    classes = _class_names(value)
    for module, class_name, what, fix in _TORCH_PROCESS_BOUND:
        if (module, class_name) in classes:
            raise StepError(f"{name!r} is {what}, which cannot be passed to another step: {fix}")


def _fresh_partial(path: str) -> str:
    partial = f"{path.rstrip('/')}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    return partial


def _write_described(value: Any, directory: str, name: str) -> dict[str, Any]:
    try:
        file_name, form = _write(value, directory)
    except (pickle.PicklingError, TypeError, ValueError, AttributeError) as exc:
        raise StepError(_cannot_save(name, value, exc)) from None
    # a module of a class defined in the notebook, or a tuple of tensors, is torch's all the same
    library = "torch" if form.startswith("torch-") else _library(value)
    return {
        "format": form,
        "python_type": f"{type(value).__module__}.{type(value).__qualname__}",
        "file": file_name,
        "library": library,
    }


def _publish(partial: str, path: str, described: dict[str, Any]) -> None:
    """The sidecar last, then the whole directory in place at once."""
    with open(os.path.join(partial, VALUE_SIDECAR), "w") as handle:
        json.dump(described, handle, sort_keys=True)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.replace(partial, path)


def _save_through_workspace(value: Any, path: str, name: str, workspace: Workspace) -> dict[str, Any]:
    """Written in the workspace first, where a large value stays (a volume of its own: moving
    it to the artifact store's folder would copy it); a small one moves on to ``path``."""
    relative = "/".join((WORKSPACE_VALUES, workspace.step, name))
    folder = _workspace_folder(workspace.root, relative, name)
    staged = _fresh_partial(folder)
    partial = None
    try:
        described = _write_described(value, staged, name)
        size = sum(os.path.getsize(os.path.join(staged, entry)) for entry in os.listdir(staged))
        partial = _fresh_partial(path)
        if size > workspace.threshold:
            _replace_folder(staged, folder)
            described[WORKSPACE_KEY] = {"path": relative, "bytes": size, "step": workspace.step}
        else:
            for entry in os.listdir(staged):
                shutil.move(os.path.join(staged, entry), os.path.join(partial, entry))
            shutil.rmtree(staged)
            _remove_folder(folder)  # an earlier attempt's large value
        _publish(partial, path, described)
    except BaseException:
        for leftover in (staged, partial):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)
        raise
    return described


def _workspace_folder(root: str, relative: str, name: str) -> str:
    """``root/relative``, its parents made; refused where a symlink planted in the workspace
    (shared by every step) would send the value somewhere else."""
    folder = os.path.join(root, *relative.split("/"))
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    expected = os.path.join(os.path.realpath(root), *relative.split("/")[:-1])
    if os.path.realpath(os.path.dirname(folder)) != expected or os.path.islink(folder):
        raise StepError(f"{name!r} cannot be kept in the workspace: {folder} goes through a symbolic link")
    return folder


def _remove_folder(folder: str) -> None:
    if os.path.islink(folder):
        raise StepError(f"{folder} is a symbolic link, not a folder this step wrote")
    if os.path.isdir(folder):
        shutil.rmtree(folder)


def _replace_folder(staged: str, folder: str) -> None:
    _remove_folder(folder)
    os.replace(staged, folder)


def _cannot_save(name: str, value: Any, exc: BaseException) -> str:
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    return (
        f"{name!r} (a {kind}) cannot be saved for the steps after this one ({type(exc).__name__}: {exc}): "
        "pass the data it is built from (a DataFrame, an array, a file path) and build it again in the step "
        "that uses it"
    )


def _write(value: Any, directory: str) -> tuple[str, str]:
    library = _library(value)
    torch_form = _torch_form(value)
    if torch_form is not None:
        return _write_torch(value, torch_form, directory)
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


def load_value(
    path: str,
    wait: bool = False,
    on_gpu: bool = False,
    workspace: Optional[str] = None,
    name: str = "value",
) -> Any:
    """Load a value that :func:`save_value` wrote into ``path``; with ``wait``, until it
    appears (the local runner starts a step while the step it reads from still runs).
    ``on_gpu``: the reading step asked for a GPU (its tensors may stay on CUDA).
    ``workspace``: the pipeline's workspace, where a large value's files are."""
    sidecar = os.path.join(path, VALUE_SIDECAR)
    if wait:
        _wait_for(sidecar)
    with open(sidecar) as handle:
        described = json.load(handle)
    folder = path
    if WORKSPACE_KEY in described:
        folder = _workspace_value_folder(described, workspace, name)
    target = os.path.join(folder, described["file"])
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
    if form in ("torch-tensor", "torch-module"):
        return _load_torch(target, full_module=form == "torch-module", on_gpu=on_gpu)
    if form == "torch-script":
        import torch

        return torch.jit.load(target, map_location=torch_map_location(on_gpu))
    if form == "keras":
        if described.get("library") == "tf_keras":
            import tf_keras as keras
        else:
            import keras
        return keras.models.load_model(target)
    with open(target, "rb") as handle:
        return pickle.load(handle)


def _workspace_value_folder(described: dict[str, Any], workspace: Optional[str], name: str) -> str:
    """Where a value kept in the workspace is; a clear error where it is not there."""
    pointer = described[WORKSPACE_KEY]
    relative = str(pointer.get("path", ""))
    whose = f"{name!r} (saved by step {pointer.get('step')!r})"
    parts = relative.split("/")
    if not relative or any(part in ("", ".", "..") for part in parts):
        raise StepError(f"{whose} points to {relative!r} in the workspace, which is no path a step writes")
    if not workspace:
        raise StepError(f"{whose} was kept in the pipeline's workspace, and this step was given none")
    folder = os.path.join(workspace, *parts)
    if os.path.realpath(folder) != os.path.join(os.path.realpath(workspace), *parts):
        raise StepError(f"{whose} cannot be read: {folder} goes through a symbolic link")
    if not os.path.isfile(os.path.join(folder, str(described.get("file")))):
        raise StepError(
            f"{whose} was kept in the pipeline's workspace at {folder}, which no longer has it: the workspace "
            "lasts one run (a result cached from an earlier run points into that run's workspace)"
        )
    return folder
