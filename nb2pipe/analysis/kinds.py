"""Artifact types from where a value comes from — the library that made it, never the name
of the variable that holds it — and values that cannot leave their process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nb2pipe.analysis.names import Origin
from nb2pipe.ir import ArtifactKind


@dataclass(frozen=True)
class Provenance:
    """The artifact type of a value and the library it comes from (``None`` if unknown)."""

    kind: ArtifactKind
    library: str | None = None
    unserializable: str | None = None


UNKNOWN = Provenance("Artifact")

_DATA_LIBRARIES = frozenset({"pandas", "numpy", "polars", "pyarrow", "scipy", "datasets", "dask"})
_MODEL_LIBRARIES = frozenset(
    {"sklearn", "xgboost", "lightgbm", "catboost", "keras", "tf_keras", "tensorflow", "torch", "statsmodels", "joblib"}
)
_SCALAR_FUNCTIONS = frozenset(
    {
        "mean",
        "sum",
        "std",
        "var",
        "median",
        "min",
        "max",
        "argmax",
        "argmin",
        "count_nonzero",
        "allclose",
        "array_equal",
        "prod",
        "average",
    }
)
_MODEL_BUILDERS = frozenset(
    {
        "make_pipeline",
        "make_union",
        "make_column_transformer",
        "clone",
        "train",
        "load_model",
        "load",
        "Sequential",
        "Model",
    }
)
_DATA_MODULE_PARTS = frozenset({"datasets", "data"})
_PREDICTING_METHODS = frozenset(
    {
        "predict",
        "predict_proba",
        "predict_log_proba",
        "transform",
        "fit_transform",
        "decision_function",
        "inverse_transform",
    }
)
_RETURNS_SELF_METHODS = frozenset({"fit", "partial_fit", "set_params"})

#: Callables whose result is tied to this process: an open file, a lock, a live connection.
_PROCESS_BOUND = {
    "open": "an open file",
    "io.open": "an open file",
    "codecs.open": "an open file",
    "gzip.open": "an open file",
    "bz2.open": "an open file",
    "lzma.open": "an open file",
    "tarfile.open": "an open file",
    "zipfile.ZipFile": "an open file",
    "tempfile.TemporaryFile": "an open file",
    "tempfile.NamedTemporaryFile": "an open file",
    "tempfile.SpooledTemporaryFile": "an open file",
    "threading.Lock": "a lock",
    "threading.RLock": "a lock",
    "threading.Semaphore": "a lock",
    "threading.BoundedSemaphore": "a lock",
    "threading.Condition": "a lock",
    "threading.Event": "a lock",
    "multiprocessing.Lock": "a lock",
    "multiprocessing.RLock": "a lock",
    "threading.Thread": "a thread",
    "multiprocessing.Process": "a process",
    "multiprocessing.Pool": "a process pool",
    "subprocess.Popen": "a process",
    "socket.socket": "a network connection",
    "socket.create_connection": "a network connection",
    "sqlite3.connect": "a database connection",
    "importlib.import_module": "a module",
    "__import__": "a module",
}


def qualify(path: str | None, imports: Mapping[str, str]) -> str | None:
    """``pd.read_csv`` -> ``pandas.read_csv`` through the notebook's imports."""
    if path is None:
        return None
    head, _, rest = path.partition(".")
    if head in imports:
        return imports[head] + ("." + rest if rest else "")
    return path


def provenance(
    origin: Origin,
    imports: Mapping[str, str],
    of_name: Callable[[str], Provenance | None],
    is_generator_function: Callable[[str], bool],
) -> Provenance:
    """Type of the value an origin produces. ``of_name`` gives a variable's current type."""
    if origin.kind == "generator":
        return Provenance("Artifact", unserializable="a generator")
    if origin.kind == "import":
        return Provenance("Artifact", unserializable="a module")
    if origin.kind in ("alias", "derived") and origin.base:
        source = of_name(origin.base)
        if source is None:
            return UNKNOWN
        if origin.kind == "derived" and source.kind == "Model":
            return Provenance("Artifact", source.library)
        return source
    if origin.kind != "call":
        return UNKNOWN
    head = (origin.path or "").split(".")[0]
    if origin.path and (head in imports or "." not in origin.path):
        if "." not in origin.path and is_generator_function(origin.path):
            return Provenance("Artifact", unserializable="a generator")
        return _from_callee(qualify(origin.path, imports) or origin.path)
    if origin.base and origin.attr:
        if origin.receiver_call and origin.receiver_call.split(".")[0] in imports:
            # a method of a fresh object: ``LogisticRegression().fit(X, y)``
            receiver: Provenance | None = _from_callee(qualify(origin.receiver_call, imports) or "")
        else:
            receiver = of_name(origin.base)
        if receiver is not None:
            return _from_method(receiver, origin.attr)
    return UNKNOWN


#: keras modules whose classes build or train a model without being one
_KERAS_PARTS = frozenset(
    {"layers", "optimizers", "losses", "metrics", "callbacks", "initializers", "regularizers", "activations"}
)


def _from_callee(qualified: str) -> Provenance:
    if qualified in _PROCESS_BOUND:
        return Provenance("Artifact", unserializable=_PROCESS_BOUND[qualified])
    parts = qualified.split(".")
    root, last = parts[0], parts[-1]
    if qualified.startswith("tensorflow.keras"):
        root = "keras"
    if root in _MODEL_LIBRARIES:
        if _DATA_MODULE_PARTS & set(parts[1:-1]) or last in ("train_test_split", "DMatrix", "Pool"):
            return Provenance("Dataset", root)
        if root == "lightgbm" and last == "Dataset":
            return Provenance("Dataset", root)
        # Keras layers, optimizers, losses ... are CapWords classes too, but parts of a model
        if root == "keras" and _KERAS_PARTS & set(parts[1:-1]):
            return Provenance("Artifact", root)
        # Estimators and networks are classes, spelled in CapWords by these libraries.
        if last[:1].isupper() or last in _MODEL_BUILDERS:
            return Provenance("Model", root)
        return Provenance("Artifact", root)
    if root in _DATA_LIBRARIES:
        if last in _SCALAR_FUNCTIONS:
            return Provenance("Artifact", root)
        return Provenance("Dataset", root)
    return UNKNOWN


def _from_method(receiver: Provenance, method: str) -> Provenance:
    if receiver.kind == "Dataset":
        return Provenance("Dataset", receiver.library)
    if receiver.kind == "Model":
        if method in _PREDICTING_METHODS:
            return Provenance("Dataset", receiver.library)
        if method in _RETURNS_SELF_METHODS and receiver.library != "keras":
            return receiver
    return UNKNOWN
