"""Artifact types from where a value comes from — the library that made it, never the name
of the variable that holds it — and values that cannot leave their process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nb2pipe.analysis.origins import Origin
from nb2pipe.ir import ArtifactKind


@dataclass(frozen=True)
class Provenance:
    """The artifact type of a value and the library it comes from (``None`` if unknown)."""

    kind: ArtifactKind
    library: str | None = None
    #: what the value is when it cannot leave its process ("an open file"), and what to pass instead
    unserializable: str | None = None
    instead: str | None = None
    #: for a class defined in the notebook: the type of the instances calling it makes
    makes: ArtifactKind | None = None


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


@dataclass(frozen=True)
class _Bound:
    """A kind of value tied to this process, and what a later step should get instead."""

    what: str
    instead: str


_FILE = _Bound("an open file", "pass the file's path and open it in the step that reads it")
_LOCK = _Bound("a lock", "create it in the step that uses it")
_QUEUE = _Bound("a queue", "pass its items (a list) instead")
_THREAD = _Bound("a thread", "finish it in its own step and pass its results")
_PROCESS = _Bound("a process", "finish it in its own step and pass its results")
_POOL = _Bound("a worker pool", "create it in the step that uses it and pass the results")
_SOCKET = _Bound("a network connection", "pass the address and connect in the step that uses it")
_DATABASE = _Bound("a database connection", "pass the connection string (a parameter) and connect in the step")
_CURSOR = _Bound("a database cursor", "pass the rows it fetched (e.g. a DataFrame from pandas.read_sql)")
_CLIENT = _Bound("a service client", "pass its settings (a parameter) and create the client in the step")
_LOOP = _Bound("an event loop", "run the coroutines in one step and pass their results")
_WEAKREF = _Bound("a weak reference", "pass the object it refers to")
_CTYPES = _Bound("a ctypes object holding pointers", "pass the data as bytes or an array")
_MODULE = _Bound("a module", "import it in an imports cell")
_ITERATOR = _Bound("a dataset iterator", "pass the dataset or its data and iterate in the step that uses it")
_WRITER = _Bound("a log writer with an open file", "pass the log directory's path and create the writer there")
_QUANTILE = _Bound("an xgboost QuantileDMatrix", "pass the data it is built from (a QuantileDMatrix cannot be saved)")
_GENERATOR = _Bound("a generator", "turn it into a list before the step ends")
_DATALOADER = _Bound(
    "a DataLoader", "pass its Dataset (or the tensors) and build the DataLoader in the step that iterates it"
)
_OPTIMIZER = _Bound(
    "an optimizer",
    "pass the model (and the optimizer's state_dict() if training goes on) and create the optimizer again "
    "in the step that trains",
)
_SCHEDULER = _Bound("a learning-rate scheduler", "pass its state_dict() and create it again in the step that trains")
_CUDA_STREAM = _Bound("a CUDA stream or event", "create it in the step that uses it")

#: Callables (qualified) whose result is tied to this process: an open file, a lock, a live connection.
_PROCESS_BOUND: dict[str, _Bound] = {
    **dict.fromkeys(
        (
            "open",
            "io.open",
            "codecs.open",
            "gzip.open",
            "bz2.open",
            "lzma.open",
            "tarfile.open",
            "zipfile.ZipFile",
            "tempfile.TemporaryFile",
            "tempfile.NamedTemporaryFile",
            "tempfile.SpooledTemporaryFile",
            "mmap.mmap",
            "shelve.open",
            "dbm.open",
            "h5py.File",
            "pandas.HDFStore",
        ),
        _FILE,
    ),
    **dict.fromkeys(
        (
            "threading.Lock",
            "threading.RLock",
            "threading.Semaphore",
            "threading.BoundedSemaphore",
            "threading.Condition",
            "threading.Event",
            "threading.Barrier",
            "multiprocessing.Lock",
            "multiprocessing.RLock",
            "multiprocessing.Semaphore",
            "multiprocessing.Event",
            "multiprocessing.Condition",
        ),
        _LOCK,
    ),
    **dict.fromkeys(
        (
            "queue.Queue",
            "queue.LifoQueue",
            "queue.PriorityQueue",
            "queue.SimpleQueue",
            "multiprocessing.Queue",
            "multiprocessing.JoinableQueue",
            "multiprocessing.SimpleQueue",
            "multiprocessing.Pipe",
        ),
        _QUEUE,
    ),
    "threading.local": _Bound("thread-local storage", "pass the values it holds"),
    "threading.Thread": _THREAD,
    "threading.Timer": _THREAD,
    "multiprocessing.Process": _PROCESS,
    "subprocess.Popen": _PROCESS,
    **dict.fromkeys(
        (
            "multiprocessing.Pool",
            "multiprocessing.pool.Pool",
            "multiprocessing.pool.ThreadPool",
            "concurrent.futures.ThreadPoolExecutor",
            "concurrent.futures.ProcessPoolExecutor",
        ),
        _POOL,
    ),
    **dict.fromkeys(
        ("socket.socket", "socket.create_connection", "socket.socketpair", "selectors.DefaultSelector"), _SOCKET
    ),
    **dict.fromkeys(
        (
            "sqlite3.connect",
            "psycopg2.connect",
            "psycopg.connect",
            "pymysql.connect",
            "mysql.connector.connect",
            "pyodbc.connect",
            "duckdb.connect",
            "cx_Oracle.connect",
            "oracledb.connect",
            "sqlalchemy.create_engine",
            "sqlalchemy.orm.Session",
            "sqlalchemy.orm.sessionmaker",
            "pymongo.MongoClient",
            "redis.Redis",
            "redis.StrictRedis",
        ),
        _DATABASE,
    ),
    **dict.fromkeys(("boto3.client", "boto3.resource"), _CLIENT),
    **dict.fromkeys(("asyncio.new_event_loop", "asyncio.get_event_loop", "asyncio.get_running_loop"), _LOOP),
    **dict.fromkeys(
        (
            "weakref.ref",
            "weakref.WeakMethod",
            "weakref.WeakValueDictionary",
            "weakref.WeakKeyDictionary",
            "weakref.WeakSet",
        ),
        _WEAKREF,
    ),
    **dict.fromkeys(
        (
            "ctypes.CDLL",
            "ctypes.PyDLL",
            "ctypes.cdll.LoadLibrary",
            "ctypes.pointer",
            "ctypes.byref",
            "ctypes.create_string_buffer",
            "ctypes.create_unicode_buffer",
        ),
        _CTYPES,
    ),
    **dict.fromkeys(
        (
            "tensorflow.compat.v1.data.make_one_shot_iterator",
            "tensorflow.compat.v1.data.make_initializable_iterator",
        ),
        _ITERATOR,
    ),
    **dict.fromkeys(
        (
            "tensorflow.summary.create_file_writer",
            "torch.utils.tensorboard.SummaryWriter",
            "tensorboardX.SummaryWriter",
        ),
        _WRITER,
    ),
    **dict.fromkeys(("xgboost.QuantileDMatrix", "xgboost.DeviceQuantileDMatrix"), _QUANTILE),
    **dict.fromkeys(("torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"), _DATALOADER),
    **dict.fromkeys(
        (
            "torch.Stream",
            "torch.Event",
            "torch.cuda.Stream",
            "torch.cuda.Event",
            "torch.cuda.current_stream",
            "torch.cuda.default_stream",
        ),
        _CUDA_STREAM,
    ),
    **dict.fromkeys(("importlib.import_module", "__import__"), _MODULE),
}

#: Methods whose result is tied to this process whatever they are called on
_PROCESS_BOUND_METHODS: dict[str, _Bound] = {
    "cursor": _CURSOR,
    "as_numpy_iterator": _ITERATOR,
    "make_one_shot_iterator": _ITERATOR,
    "make_initializable_iterator": _ITERATOR,
}
_PENDING = _Bound("a pending result of a worker pool", "wait for it in the step (.result(), .get()) and pass that")
#: ...and those whose result is, when called on a value tied to this process (``engine.connect()``,
#: ``conn.execute(sql)``, ``archive.open(name)``); other methods of such values return values
_BOUND_FROM_BOUND_METHODS: dict[str, _Bound] = {
    **dict.fromkeys(("connect", "raw_connection", "begin"), _DATABASE),
    **dict.fromkeys(("execute", "executemany", "query"), _CURSOR),
    **dict.fromkeys(("open", "extractfile"), _FILE),
    **dict.fromkeys(("submit", "apply_async", "map_async"), _PENDING),
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
        return _bound(_GENERATOR)
    if origin.kind == "import":
        return _imported(origin.path or "", origin.attr == "from")
    if origin.kind == "class":
        return _class(origin.path, imports, of_name)
    if origin.kind in ("alias", "derived") and origin.base:
        source = of_name(origin.base)
        if source is None:
            return UNKNOWN
        if origin.kind == "derived" and source.unserializable:
            # an attribute, item or element of a module, file, cursor... is a value of its own:
            # ``math.pi``, ``os.environ['HOME']``, ``f.name``, a line of a file
            return Provenance("Artifact", source.library)
        if origin.kind == "derived" and (source.kind == "Model" or source.makes):
            return Provenance("Artifact", source.library)  # ``net.layer``, ``Net.forward``
        return source
    if origin.kind != "call":
        return UNKNOWN
    head = (origin.path or "").split(".")[0]
    if origin.path and (head in imports or "." not in origin.path):
        if "." not in origin.path and is_generator_function(origin.path):
            return _bound(_GENERATOR)
        called = _called(of_name(origin.path)) if "." not in origin.path else None
        return called or _from_callee(qualify(origin.path, imports) or origin.path)
    if origin.base and origin.attr:
        if origin.receiver_call and origin.receiver_call.split(".")[0] in imports:
            # a method of a fresh object: ``LogisticRegression().fit(X, y)``
            receiver: Provenance | None = _from_callee(qualify(origin.receiver_call, imports) or "")
        elif origin.receiver_call == origin.base:  # ``Net().to(device)``, ``net(X).argmax(1)``
            receiver = _called(of_name(origin.base))
        else:
            receiver = of_name(origin.base)
        return _from_method(receiver, origin.attr)
    return UNKNOWN


def _called(callee: Provenance | None) -> Provenance | None:
    """What calling a notebook name gives, where that is known: an instance of a notebook class
    (``Net()``), the tensors a PyTorch module's forward pass returns (``net(X)``)."""
    if callee is None:
        return None
    if callee.makes:
        return Provenance(callee.makes, callee.library)
    if callee.kind == "Model" and callee.library == "torch":
        return Provenance("Dataset", "torch")
    return None


#: the bases of nn.Module subclasses that are not models of their own
_TORCH_NOT_MODELS = ("Loss",)


def _class(bases: str | None, imports: Mapping[str, str], of_name: Callable[[str], Provenance | None]) -> Provenance:
    """A class defined in the notebook: its instances are models when it subclasses a PyTorch
    module (``class Net(nn.Module)``) or a notebook class that does. ``bases`` are the dotted
    names of its bases, joined by commas."""
    for base in (bases or "").split(","):
        if not base:
            continue
        if "." not in base and base not in imports:
            parent = of_name(base)
            if parent is not None and parent.makes:
                return Provenance("Artifact", parent.library, makes=parent.makes)
            continue
        qualified = qualify(base, imports) or base
        if qualified.startswith("torch.nn.") and not qualified.endswith(_TORCH_NOT_MODELS):
            return Provenance("Artifact", "torch", makes="Model")
    return UNKNOWN


def _bound(bound: _Bound, library: str | None = None) -> Provenance:
    return Provenance("Artifact", library, bound.what, bound.instead)


def _imported(qualified: str, from_import: bool) -> Provenance:
    """What an import binds: a module, unless the name is a class or constant (CapWords or
    UPPER_CASE by convention: ``from math import PI``) or a ``from`` import, which binds
    functions and classes far more often than submodules; a module passed on anyway is
    still refused by the step runtime, by its type."""
    root, last = qualified.lstrip(".").split(".")[0], qualified.rsplit(".", 1)[-1]
    if last[:1].isupper() or from_import:
        return Provenance("Artifact", root or None)
    return _bound(_MODULE, root or None)


#: keras modules whose classes build or train a model without being one
_KERAS_PARTS = frozenset(
    {"layers", "optimizers", "losses", "metrics", "callbacks", "initializers", "regularizers", "activations"}
)


def _from_callee(qualified: str) -> Provenance:
    if qualified in _PROCESS_BOUND:
        return _bound(_PROCESS_BOUND[qualified], qualified.split(".")[0])
    parts = qualified.split(".")
    root, last = parts[0], parts[-1]
    if qualified.startswith("tensorflow.keras"):
        root = "keras"
    if root == "torch":
        torch_kind = _from_torch(parts)
        if torch_kind is not None:
            return torch_kind
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


#: torch's own modules of functions that return tensors (``torch.randn``, ``F.relu``, ``torch.linalg.norm``)
_TORCH_TENSOR_MODULES = frozenset({(), ("nn", "functional"), ("linalg",), ("fft",), ("special",), ("nn", "init")})
#: torch functions and classes that return no tensor (``torch.load`` may return anything)
_TORCH_NOT_TENSORS = (
    frozenset({"device", "dtype", "finfo", "iinfo", "Generator", "Size", "save", "load", "numel", "is_tensor"})
    | frozenset({"no_grad", "enable_grad", "inference_mode", "set_grad_enabled", "is_grad_enabled"})
    | frozenset({"manual_seed", "seed", "get_default_dtype", "set_default_dtype", "set_num_threads", "get_num_threads"})
)
_TORCH_MODEL_BUILDERS = frozenset({"compile", "script", "trace"})
#: methods of a torch module that return the module itself
_TORCH_MODULE_SELF_METHODS = frozenset(
    {"to", "cuda", "cpu", "train", "eval", "float", "double", "half", "bfloat16", "requires_grad_", "apply", "type"}
)
#: ...and those that return generators (of parameters, submodules)
_TORCH_MODULE_GENERATORS = frozenset(
    {"parameters", "named_parameters", "buffers", "named_buffers", "children", "named_children", "modules"}
)


def _from_torch(parts: list[str]) -> Provenance | None:
    """PyTorch's kinds where the general rules (CapWords classes are models) do not hold: tensors
    come from functions, optimizers hold copies of a model's parameters once saved, a loss is a
    module but no model. None: the general rules decide (``nn.Linear``, ``torch.utils.data``)."""
    inner, last = tuple(parts[1:-1]), parts[-1]
    if inner[:1] == ("optim",):
        if "lr_scheduler" in inner:
            return _bound(_SCHEDULER, "torch")
        return _bound(_OPTIMIZER, "torch") if last[:1].isupper() else Provenance("Artifact", "torch")
    if last in _TORCH_MODEL_BUILDERS and inner in ((), ("jit",)):
        return Provenance("Model", "torch")
    if last in _TORCH_NOT_TENSORS and inner == ():
        return Provenance("Artifact", "torch")
    if last == "Parameter" or (inner == () and last.endswith("Tensor")):  # nn.Parameter, torch.FloatTensor
        return Provenance("Dataset", "torch")
    if inner == ("nn",) and last.endswith(_TORCH_NOT_MODELS):
        return Provenance("Artifact", "torch")
    if inner in _TORCH_TENSOR_MODULES and last[:1].islower():
        return Provenance("Artifact" if last in _SCALAR_FUNCTIONS else "Dataset", "torch")
    return None


def _from_method(receiver: Provenance | None, method: str) -> Provenance:
    if method in _PROCESS_BOUND_METHODS:
        return _bound(_PROCESS_BOUND_METHODS[method], receiver.library if receiver else None)
    if receiver is None:
        return UNKNOWN
    if receiver.unserializable:
        if method in _BOUND_FROM_BOUND_METHODS:
            return _bound(_BOUND_FROM_BOUND_METHODS[method], receiver.library)
        return Provenance("Artifact", receiver.library)  # ``f.read()``, ``cursor.fetchall()``: values
    if receiver.kind == "Dataset":
        return Provenance("Dataset", receiver.library)
    if receiver.kind == "Model" and receiver.library == "torch":
        if method in _TORCH_MODULE_SELF_METHODS:
            return receiver
        if method == "forward":
            return Provenance("Dataset", "torch")
        if method in _TORCH_MODULE_GENERATORS:
            return _bound(_GENERATOR, "torch")
    if receiver.kind == "Model":
        if method in _PREDICTING_METHODS:
            return Provenance("Dataset", receiver.library)
        if method in _RETURNS_SELF_METHODS and receiver.library != "keras":
            return receiver
    return UNKNOWN
