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
import sys
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

_REBUILD_OPTIMIZER = (
    "pass the model (and the optimizer's state_dict() if training goes on) and create the optimizer again "
    "over the loaded model's parameters"
)
#: torch classes whose instances cannot usefully leave their process, matched by (module, name) along
#: the value's class hierarchy, so that torch is not imported for values that are not torch's. An
#: optimizer or scheduler would pickle, but holding copies of the parameters, not the model's that the
#: next step loads: training would go on updating nothing.
_TORCH_PROCESS_BOUND = (
    (
        "torch.utils.data.dataloader",
        "DataLoader",
        "a DataLoader",
        "pass its Dataset (or the tensors) and build the DataLoader in the step that iterates it",
    ),
    (
        "torch.utils.data.dataloader",
        "_BaseDataLoaderIter",
        "a DataLoader iterator",
        "pass the Dataset (or the tensors) and iterate in the step that uses it",
    ),
    ("torch.optim.optimizer", "Optimizer", "an optimizer", _REBUILD_OPTIMIZER),
    (
        "torch.optim.lr_scheduler",
        "LRScheduler",
        "a learning-rate scheduler",
        "pass its state_dict() and create it again over the optimizer of the step that trains",
    ),
    ("torch", "Stream", "a CUDA stream", "create it in the step that uses it"),
    ("torch", "Event", "a CUDA event", "create it in the step that uses it"),
    ("torch._C", "_CudaStreamBase", "a CUDA stream", "create it in the step that uses it"),
    ("torch._C", "_CudaEventBase", "a CUDA event", "create it in the step that uses it"),
)
_TORCH_MODULE = ("torch.nn.modules.module", "Module")
_TORCH_SCRIPT_MODULE = ("torch.jit._script", "ScriptModule")
#: tensors that torch.load(weights_only=True) rebuilds
_PLAIN_TENSORS = frozenset({("torch", "Tensor"), ("torch.nn.parameter", "Parameter")})


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
    classes = _class_names(value)
    for module, class_name, what, fix in _TORCH_PROCESS_BOUND:
        if (module, class_name) in classes:
            raise StepError(f"{name!r} is {what}, which cannot be passed to another step: {fix}")
    partial = f"{path.rstrip('/')}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
        try:
            file_name, form = _write(value, partial)
        except (pickle.PicklingError, TypeError, ValueError, AttributeError) as exc:
            raise StepError(_cannot_save(name, value, exc)) from None
        # a module of a class defined in the notebook, or a tuple of tensors, is torch's all the same
        library = "torch" if form.startswith("torch-") else _library(value)
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


def _class_names(value: Any) -> set[tuple[str, str]]:
    return {(kind.__module__, kind.__qualname__) for kind in type(value).__mro__}


def _torch_form(value: Any) -> Any:
    """``torch-script`` for a TorchScript module; ``torch-module`` for any other nn.Module, of
    any class, the notebook's too; ``torch-tensor`` for tensors, alone or in tuples, lists and
    dicts (``(X_train, y_train)``, a state_dict) with plain numbers and strings beside them; None
    for anything else. Containers go through torch.save too, so that loading maps their tensors'
    devices as it does a lone tensor's (a pickled CUDA tensor does not load without CUDA)."""
    if "torch" not in sys.modules:  # no torch value can exist in this process
        return None
    classes = _class_names(value)
    if _TORCH_SCRIPT_MODULE in classes:
        return "torch-script"
    if _TORCH_MODULE in classes:
        return "torch-module"
    return "torch-tensor" if _is_tensor_data(value) else None


def _is_tensor_data(value: Any) -> bool:
    found, seen, pending = False, set(), [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if (kind.__module__, kind.__qualname__) in _PLAIN_TENSORS:
            found = True
        elif kind in (tuple, list, dict) or (kind.__module__, kind.__qualname__) == ("collections", "OrderedDict"):
            if id(item) in seen:
                return False  # a container that holds itself
            seen.add(id(item))
            if isinstance(item, dict):
                if not all(type(key) in (str, int) for key in item):
                    return False
                pending.extend(item.values())
            else:
                pending.extend(item)
        elif kind not in (str, int, float, bool, type(None)):
            return False
    return found


def _write_torch(value: Any, form: str, directory: str) -> tuple[str, str]:
    import torch

    if form == "torch-script":  # compiled code of its own: pickle cannot copy it
        torch.jit.save(value, os.path.join(directory, "model.pt"))
        return "model.pt", form
    if form == "torch-module":
        # the module whole, as mlflow.pytorch saves one: cloudpickle writes classes defined in the
        # notebook (the step's __main__) by value, so it loads where they cannot be imported
        try:
            import cloudpickle as pickler
        except ImportError:
            pickler = pickle
        try:
            torch.save(value, os.path.join(directory, "model.pt"), pickle_module=pickler)
        except RuntimeError as exc:  # torch's way of saying a part of the module cannot be pickled
            raise pickle.PicklingError(str(exc)) from exc
        return "model.pt", form
    torch.save(_compacted(value), os.path.join(directory, "value.pt"))
    return "value.pt", form


def _compacted(value: Any) -> Any:
    """Tensors that are views of a bigger one (``X[:1000]``) copied out of it: torch.save
    writes a tensor's whole storage. Tensors that require gradients are kept as they are."""
    import torch

    if isinstance(value, (tuple, list)):
        return type(value)(_compacted(item) for item in value)
    if isinstance(value, dict):
        return type(value)((key, _compacted(item)) for key, item in value.items())
    if type(value) is not torch.Tensor or value.requires_grad or value.layout is not torch.strided:
        return value
    if value.untyped_storage().nbytes() > value.numel() * value.element_size():
        return value.clone()
    return value


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


def load_value(path: str, wait: bool = False, on_gpu: bool = False) -> Any:
    """Load a value that :func:`save_value` wrote into ``path``; with ``wait``, until it
    appears (the local runner starts a step while the step it reads from still runs).
    ``on_gpu``: the reading step asked for a GPU (its tensors may stay on CUDA)."""
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


def torch_map_location(on_gpu: bool = False) -> Any:
    """Where loaded tensors go: in a ``gpu:`` step on a machine with CUDA, where they were saved
    (None), so nothing is moved needlessly; anywhere else the CPU, so that a CPU step reads what a
    ``gpu:1`` step wrote and computes with the CPU tensors beside it (also where a GPU is there
    but was not asked for, as on a laptop running the whole pipeline)."""
    import torch

    return None if on_gpu and torch.cuda.is_available() else "cpu"


def _load_torch(target: str, full_module: bool, on_gpu: bool) -> Any:
    import torch

    # A full module is unpickled (weights_only=False runs the pickle's code): safe here, as the
    # file was written by this pipeline's own earlier step. Tensors load with weights_only=True.
    return torch.load(target, map_location=torch_map_location(on_gpu), weights_only=not full_module)
