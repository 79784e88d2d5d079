"""MLflow: where models are tracked, how a model URI resolves, and what flavour it is.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set, else a sqlite store in nb2pipe's local
folder (``.nb2pipe/`` beside the notebook, or ``nb2pipe run --workdir``) with artifacts next to it.
mlflow is imported inside the functions that use it (~1.5 s).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.native_order import load_triton_before_tensorflow
from nb2pipe.store.reference import REFERENCE_DIR
from nb2pipe.store.store_lock import setup_lock, sqlite_database

TRACKING_ENV = "MLFLOW_TRACKING_URI"
LOCAL_STORE = ".nb2pipe"
#: set by ``nb2pipe run`` for its tasks: the run's --workdir, where local state is kept
STORE_ENV = "NB2PIPE_STORE"
CHAMPION = "champion"
CANDIDATE = "candidate"
WRAPPER_METADATA = "nb2pipe_wrapper"
#: MLflow would otherwise fetch a telemetry configuration from the internet at first use
QUIET_MLFLOW = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


class RegistryError(Nb2PipeError):
    """The model registry could not do what was asked."""


def quiet_mlflow() -> None:
    """Keep MLflow off the network unless the user asked otherwise (call before importing it)."""
    for name, value in QUIET_MLFLOW.items():
        os.environ.setdefault(name, value)


def tracking_uri(store: str | Path | None = None, notebook_uri: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI``, else ``notebook_uri`` (a notebook's
    ``metadata.nb2pipe.mlflow_tracking_uri``), else ``sqlite:///STORE/mlflow.db`` (see
    :func:`local_store`)."""
    configured = os.environ.get(TRACKING_ENV, "").strip() or (notebook_uri or "").strip()
    if configured:
        return configured
    return f"sqlite:///{local_store(store) / 'mlflow.db'}"


def local_store(store: str | Path | None = None) -> Path:
    """nb2pipe's folder of local state (MLflow store, endpoints, payloads): ``store`` when
    given, else ``$NB2PIPE_STORE``, else ``.nb2pipe`` in the current folder."""
    chosen = store or os.environ.get(STORE_ENV) or Path(os.getcwd()) / LOCAL_STORE
    return Path(chosen).resolve()


def artifact_root(uri: str) -> str | None:
    """Where new experiments keep artifacts: for a sqlite store, ``mlartifacts/`` beside the
    database (MLflow would pick ``./mlruns`` of whatever folder the process runs in); None
    (the server's own choice) for any other tracking URI."""
    if not uri.startswith("sqlite:///"):
        return None
    # a plain path: MLflow drops the file:// form here
    return str(Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts")


@contextmanager
def tracking_env_kept() -> Iterator[None]:
    """Leave ``MLFLOW_TRACKING_URI`` as it was after the block: :func:`use_tracking` (through
    ``mlflow.set_tracking_uri``) exports the URI it sets, and in a long-lived process such as
    the Jupyter server one notebook's store must not become every later call's (the variable
    wins over each notebook's own setting)."""
    before = os.environ.get(TRACKING_ENV)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = before


def use_tracking(store: str | Path | None = None, notebook_uri: str | None = None) -> str:
    """Point mlflow at the tracking URI (mlflow also exports it as MLFLOW_TRACKING_URI), its
    store set up (see :func:`prepare_store`)."""
    quiet_mlflow()
    import mlflow

    uri = tracking_uri(store, notebook_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    prepare_store(uri)
    return uri


def prepare_store(uri: str) -> None:
    """Open the tracking and registry stores of ``uri`` (MLflow keeps them for the process's
    later calls). The first opening of a sqlite store creates or migrates its tables; here
    one process at a time does (a lock file next to the database): MLflow's own set-up fails
    when two processes run it at once. Other URIs need nothing here."""
    database = sqlite_database(uri)
    if database is None:
        return
    quiet_mlflow()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    with setup_lock(database):
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # opens the tracking store
            client.search_registered_models(max_results=1)  # and the registry's (opened on first use)
        except (MlflowException, SQLAlchemyError) as exc:
            raise RegistryError(f"cannot open the MLflow store {uri}: {_first_line(exc)}") from None


@dataclass(frozen=True)
class ModelSource:
    """A model URI resolved: its local files, MLflow flavours and registry identity."""

    uri: str
    local_path: Path
    flavors: tuple[str, ...]
    #: where the model's files live for a cluster to fetch (the version's artifact location)
    storage_uri: str
    name: str | None = None
    version: str | None = None
    sklearn_version: str | None = None
    #: logged through nb2pipe's own pyfunc wrapper: only nb2pipe's server loads it
    wrapped: bool = False
    #: distribution -> version of the training environment ("scikit-learn": "1.9.1"), from the
    #: MLmodel flavour fields and the pins of requirements.txt
    library_versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def flavor(self) -> str:
        """sklearn, xgboost, lightgbm, tensorflow, pytorch, nb2pipe (nb2pipe's wrapper) or mlflow (any pyfunc)."""
        if self.wrapped:
            return "nb2pipe"
        for flavor in ("sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch"):
            if flavor in self.flavors:
                return flavor
        return "mlflow"


def resolve_model(uri: str, store: str | Path | None = None, notebook_uri: str | None = None) -> ModelSource:
    """Find ``uri`` (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/…``, a path)
    in the tracking store of :func:`tracking_uri`."""
    quiet_mlflow()
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    local = Path(uri).expanduser()
    storage: str | None
    if local.exists():
        if not (local / "MLmodel").is_file():
            raise RegistryError(f"{uri} is not an MLflow model folder (no MLmodel file in it)")
        path, storage, name, version = local.resolve(), local.resolve().as_uri(), None, None
    else:
        use_tracking(store, notebook_uri)
        name, version, storage = _registered_identity(uri)
        try:
            path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        except (MlflowException, OSError) as exc:
            raise RegistryError(f"cannot load model {uri}: {_first_line(exc)}") from None
    meta = Model.load(str(path / "MLmodel"))
    flavors = tuple(sorted(meta.flavors))
    sklearn_version = meta.flavors.get("sklearn", {}).get("sklearn_version")
    wrapped = bool((meta.metadata or {}).get(WRAPPER_METADATA))
    libraries = library_versions(meta.flavors, path / "requirements.txt")
    return ModelSource(uri, path, flavors, storage or path.as_uri(), name, version, sklearn_version, wrapped, libraries)


#: the MLmodel flavour field that records the library version a model was saved with
FLAVOR_VERSION_FIELDS = {
    "sklearn": ("sklearn_version", "scikit-learn"),
    "xgboost": ("xgb_version", "xgboost"),
    "lightgbm": ("lgb_version", "lightgbm"),
    "tensorflow": ("keras_version", "tensorflow"),
    "pytorch": ("pytorch_version", "torch"),
}


def library_versions(flavors: Mapping[str, Any], requirements: Path) -> dict[str, str]:
    """The training environment's library versions: ``NAME==VERSION`` pins of the model's
    requirements.txt, overridden by the versions the flavours themselves record."""
    found: dict[str, str] = {}
    if requirements.is_file():
        for line in requirements.read_text(encoding="utf-8").splitlines():
            requirement = line.split("#", 1)[0].split(";", 1)[0].strip()
            name, separator, version = requirement.partition("==")
            if separator and name.strip() and version.strip():
                found[_distribution(name.split("[", 1)[0])] = version.strip()
    for flavor, (key, distribution) in FLAVOR_VERSION_FIELDS.items():
        recorded = (flavors.get(flavor) or {}).get(key)
        if recorded:
            found[distribution] = str(recorded)
    return found


def _distribution(name: str) -> str:
    """A distribution name as PEP 503 normalizes it: "Scikit_Learn" -> "scikit-learn"."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _registered_identity(uri: str) -> tuple[str | None, str | None, str | None]:
    """(name, version, storage location) for ``models:/`` URIs; Nones for others."""
    if not uri.startswith("models:/"):
        return None, None, None
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    reference = uri.removeprefix("models:/").strip("/")
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            found = client.get_model_version_by_alias(name, alias)
        else:
            name, _, version = reference.partition("/")
            if not version.isdigit():
                raise RegistryError(f"{uri}: write models:/NAME/VERSION or models:/NAME@ALIAS")
            found = client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"cannot find {uri} in {tracking_uri()}: {_first_line(exc)}") from None
    storage = client.get_model_version_download_uri(found.name, found.version)
    return found.name, str(found.version), storage


def reference_uri(uri: str, store: str | Path | None = None, notebook_uri: str | None = None) -> str | None:
    """Where the training data kept with a registered model lives (the ``reference`` folder
    of the run that logged the version), or None when ``uri`` names no registered version or
    the run kept none."""
    if not uri.startswith(("models:/", "runs:/")):
        return None
    use_tracking(store, notebook_uri)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    run_id: str | None
    if uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/", 1)[0]
    else:
        name, version, _ = _registered_identity(uri)
        run_id = client.get_model_version(name, version).run_id if name and version else None
    if not run_id:
        return None
    try:
        kept = [item.path for item in client.list_artifacts(run_id, REFERENCE_DIR)]
    except MlflowException:
        return None
    if not kept:
        return None
    return f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{REFERENCE_DIR}"


def download_reference(uri: str, store: str | Path | None = None, notebook_uri: str | None = None) -> Path | None:
    """A local copy of the training data kept with model ``uri`` (see :func:`reference_uri`);
    ``notebook_uri``: the notebook's own MLflow server, as :func:`use_tracking` takes it."""
    location = reference_uri(uri, store, notebook_uri)
    if location is None:
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=location))
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"cannot fetch the reference data of {uri} from {location}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_native(source: ModelSource) -> Any:
    """The model object itself for sklearn/xgboost/lightgbm (fast predict), else the pyfunc wrapper."""
    import mlflow

    if source.flavor == "sklearn":
        return mlflow.sklearn.load_model(str(source.local_path))
    if source.flavor == "xgboost":
        return mlflow.xgboost.load_model(str(source.local_path))
    if source.flavor == "lightgbm":
        return mlflow.lightgbm.load_model(str(source.local_path))
    if source.flavor == "tensorflow":
        load_triton_before_tensorflow()
    return mlflow.pyfunc.load_model(str(source.local_path))


def load_explainable(source: ModelSource) -> Any:
    """The model as explainers need it: the Keras model itself for the tensorflow flavour and
    the ``nn.Module`` for the pytorch one (Integrated Gradients takes gradients through them),
    else :func:`load_native`'s."""
    if source.flavor == "tensorflow":
        import mlflow

        load_triton_before_tensorflow()
        return mlflow.tensorflow.load_model(str(source.local_path))
    if source.flavor == "pytorch":
        import pickle

        import mlflow.pytorch
        from mlflow.exceptions import MlflowException

        # on the GPU when there is one; a module saved from a GPU step still loads on a machine without
        device = torch_device()
        try:
            return mlflow.pytorch.load_model(str(source.local_path), map_location=device)
        except (MlflowException, OSError, RuntimeError, AttributeError, ImportError, pickle.UnpicklingError) as exc:
            # a module pickled by reference needs its class importable here
            raise RegistryError(f"cannot load the PyTorch model {source.uri} on {device}: {exc}") from None
    return load_native(source)


def torch_device() -> str:
    """Where a loaded PyTorch model runs: ``cuda`` when PyTorch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def serving_device(flavor: str) -> str:
    """What ``nb2pipe serve`` computes a model of ``flavor`` on, in words: a PyTorch model on the GPU
    when PyTorch sees one (``cuda:0 (NVIDIA H200)``), every other model on the CPU."""
    if flavor != "pytorch" or torch_device() != "cuda":
        return "cpu"
    import torch

    return f"cuda:0 ({torch.cuda.get_device_name(0)})"


def input_columns(source: ModelSource) -> tuple[list[str] | None, list[str] | None]:
    """(column names, column types) from the model's signature, when it has named columns."""
    from mlflow.models import Model

    signature = Model.load(str(source.local_path / "MLmodel")).signature
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return None, None
    names = signature.inputs.input_names()
    types = [getattr(getattr(spec, "type", None), "name", "") for spec in signature.inputs.inputs]
    return names, types
