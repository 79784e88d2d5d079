"""Which server runs a registered model on the cluster, in which model format, and why.

Maintained runtimes first. A scikit-learn, xgboost or lightgbm model goes to KServe's own
server for its format (``kserve-sklearnserver``, ``kserve-xgbserver``, ``kserve-lgbserver``)
when the library version it was trained with is one that server's image loads; otherwise to
``nb2pipe-server``, which serves the MLflow model with the libraries nb2pipe's image pins
(manifests/Dockerfile). Keras/TensorFlow models, models only nb2pipe's wrapper loads and any
other pyfunc go to ``nb2pipe-server`` as well: no maintained KServe server loads them.

Format-specific server, not the predictive one, by default: KServe auto-selects it for its
format (``autoSelect: true``), each image carries one library, and its loader is the one
:mod:`nb2pipe.store.serving_layout` checks. ``kserve-predictiveserver`` wraps the same three
loaders in one image with all three libraries; its formats are ``autoSelect: false``, so it is
used only when asked (``runtime:predictive``), by name. MLServer is only ever used when asked
(``runtime:mlserver``): Seldon stopped maintaining it (last release mid-2025) and MLflow 3.13
dropped it.

The runtime is always named in the InferenceService (``spec.predictor.model.runtime``): in
auto-selection a namespace's ServingRuntimes come before the ClusterServingRuntimes, and with
``protocolVersion: v2`` MLServer (priority 2) beats the format's own server (priority 1) for
sklearn, xgboost and lightgbm (docs/kserve-rules.md §5.5); naming it makes the server the one
whose versions and file layout were checked here.

Compatibility (docs/kserve-rules.md §5.3): a scikit-learn pickle loads reliably only with the
same major.minor version it was written with; XGBoost and LightGBM models load in the same or
a later version of their library, not an earlier one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from nb2pipe.errors import Nb2PipeError
from nb2pipe.store.serving_layout import LAYOUT_RULES, RUNTIME_FOLDER

NB2PIPE_RUNTIME = "nb2pipe-server"
MLSERVER_RUNTIME = "kserve-mlserver"
PREDICTIVE_RUNTIME = "kserve-predictiveserver"


@dataclass(frozen=True)
class ServerImage:
    """The library versions inside one runtime's image, and where that is written down."""

    runtime: str
    libraries: Mapping[str, str]
    source: str


#: KServe 0.20's images (python/*/uv.lock; docs/kserve-rules.md §5.3) and MLServer 1.7.1's
#: (its poetry.lock; UNCONFIRMED that the image ships exactly these, §5.2)
SERVER_IMAGES: dict[str, ServerImage] = {
    image.runtime: image
    for image in (
        ServerImage("kserve-sklearnserver", {"scikit-learn": "1.5.2"}, "KServe 0.20 python/sklearnserver/uv.lock"),
        ServerImage("kserve-xgbserver", {"xgboost": "2.1.4"}, "KServe 0.20 python/xgbserver/uv.lock"),
        ServerImage("kserve-lgbserver", {"lightgbm": "4.6.0"}, "KServe 0.20 python/lgbserver/uv.lock"),
        ServerImage(
            PREDICTIVE_RUNTIME,
            {"scikit-learn": "1.5.2", "xgboost": "2.1.4", "lightgbm": "4.6.0"},
            "KServe 0.20 python/predictiveserver (~=1.5.1, ~=2.1.1, ~=4.6.0 resolved at image build)",
        ),
        ServerImage(
            MLSERVER_RUNTIME,
            {"scikit-learn": "1.5.2", "xgboost": "2.1.2", "lightgbm": "4.6.0", "mlflow": "2.19.0"},
            "MLServer 1.7.1 poetry.lock (unconfirmed for the image)",
        ),
    )
}


@dataclass(frozen=True)
class NativeFormat:
    """A model format KServe's own servers load."""

    name: str
    #: the supportedModelFormats version the KServe 0.20 runtimes declare for it
    version: str
    library: str
    server: str
    #: "minor": pickles need the same major.minor; "not newer": the trained version <= the image's
    compatibility: str

    @property
    def storage_path(self) -> str:
        """Where in the version's artifacts the server's one model file lies ("" = the MLflow folder)."""
        return RUNTIME_FOLDER if LAYOUT_RULES[self.name].runtime_file else ""


NATIVE_FORMATS: dict[str, NativeFormat] = {
    native.name: native
    for native in (
        NativeFormat("sklearn", "1", "scikit-learn", "kserve-sklearnserver", "minor"),
        NativeFormat("xgboost", "2", "xgboost", "kserve-xgbserver", "not newer"),
        NativeFormat("lightgbm", "4", "lightgbm", "kserve-lgbserver", "not newer"),
    )
}
#: runtimes that never use a GPU: CPU images, no device options (docs/kserve-rules.md §5.4)
CPU_ONLY_RUNTIMES = frozenset(
    {*(native.server for native in NATIVE_FORMATS.values()), PREDICTIVE_RUNTIME, MLSERVER_RUNTIME}
)


@dataclass(frozen=True)
class ServingChoice:
    """What ``spec.predictor.model`` says about the server, and why."""

    format_name: str
    format_version: str
    runtime: str
    protocol: str
    #: the sub-folder of the model's storage that the server loads ("" = the MLflow model folder)
    storage_path: str
    #: why this server, one sentence each
    reasons: tuple[str, ...]
    #: what may go wrong with it
    warnings: tuple[str, ...] = ()
    #: the KServe file-layout rules the served folder must meet (None: an MLflow model folder)
    layout_format: str | None = None

    def describe(self) -> str:
        return f"runtime {self.runtime} ({self.format_name}/{self.format_version}, {self.protocol}): " + "; ".join(
            self.reasons
        )


#: why a PyTorch model is served by nb2pipe-server: KServe's runtimes for the pytorch format
#: (../shared/schemas/kserve/runtime-kserve-torchserve.yaml, runtime-kserve-tritonserver.yaml)
#: load other files than the MLflow model folder registration writes
PYTORCH_REASON = (
    "KServe's kserve-torchserve (auto-selected for modelFormat pytorch) loads a .mar archive with a handler "
    "from model-store/ and TorchServe is in limited maintenance upstream; kserve-tritonserver loads a "
    "TorchScript export, which tracing cannot make of every nn.Module: nb2pipe-server loads the MLflow "
    "PyTorch model as it was trained, batches requests into one forward pass and uses the pod's GPU"
)


def choose_runtime(
    flavor: str, requested: str | None, library_versions: Mapping[str, str], gpu: int = 0
) -> ServingChoice:
    """The server for a model of MLflow ``flavor`` (sklearn, xgboost, lightgbm, tensorflow, pytorch, mlflow,
    nb2pipe), given ``runtime:`` (:data:`nb2pipe.ir.RUNTIME_CHOICES`, None = auto) and the
    library versions the model was trained with."""
    asked = requested or "auto"
    native = NATIVE_FORMATS.get(flavor)
    if asked == "nb2pipe":
        choice = _on_nb2pipe_server(flavor, "asked for runtime nb2pipe")
    elif native is None:
        choice = _not_native(flavor, asked)
    elif asked == "auto":
        choice = _auto(native, library_versions)
    elif asked == "mlserver":
        choice = _on_mlserver(native, library_versions)
    elif asked in ("kserve", "predictive"):
        choice = _on_kserve(native, asked, library_versions)
    else:
        raise Nb2PipeError(f"runtime {asked!r} is not one of auto, kserve, predictive, mlserver, nb2pipe")
    return _with_gpu_warning(choice, flavor, gpu)


def _auto(native: NativeFormat, library_versions: Mapping[str, str]) -> ServingChoice:
    trained = library_versions.get(native.library)
    shipped = SERVER_IMAGES[native.server].libraries[native.library]
    if trained is None:
        reason = (
            f"{native.server} is KServe's maintained server for {native.name}; the model does not record its "
            f"{native.library} version, so it is taken to match the image's {shipped}"
        )
        return _native_choice(native, native.server, "v1", (reason,))
    if loads_in(native, trained, shipped):
        reason = f"{native.library} {trained} trained, {native.server} ships {shipped}, which loads it"
        return _native_choice(native, native.server, "v1", (reason,))
    fallback = f"{native.library} {trained} trained, {native.server} ships {shipped}: serving on {NB2PIPE_RUNTIME}"
    return _on_nb2pipe_server(native.name, fallback)  # a choice, said in the reasons: not a warning


def _on_kserve(native: NativeFormat, asked: str, library_versions: Mapping[str, str]) -> ServingChoice:
    runtime = PREDICTIVE_RUNTIME if asked == "predictive" else native.server
    reason = f"asked for runtime {asked}"
    mismatch = _version_mismatch(native, runtime, library_versions)
    return _native_choice(native, runtime, "v1", (reason,), (mismatch,) if mismatch else ())


def _on_mlserver(native: NativeFormat, library_versions: Mapping[str, str]) -> ServingChoice:
    warnings = [_mlserver_warning()]
    mismatch = _version_mismatch(native, MLSERVER_RUNTIME, library_versions)
    if mismatch:
        warnings.append(mismatch)
    # MLServer looks for well-known names (model.pkl, model.json, model.bst), which the files
    # nb2pipe keeps have; it is not KServe's loader, so no KServe layout rule applies
    return ServingChoice(
        native.name,
        native.version,
        MLSERVER_RUNTIME,
        "v2",  # MLServer speaks only the v2 protocol
        native.storage_path,
        ("asked for runtime mlserver",),
        tuple(warnings),
    )


def _not_native(flavor: str, asked: str) -> ServingChoice:
    """Models KServe's own servers cannot load: Keras, nb2pipe's wrapper, other pyfuncs."""
    if asked == "auto":
        return _on_nb2pipe_server(
            flavor,
            PYTORCH_REASON if flavor == "pytorch" else f"no maintained KServe server loads {_flavor_text(flavor)}",
        )
    if asked == "mlserver" and flavor != "nb2pipe":
        mlflow = SERVER_IMAGES[MLSERVER_RUNTIME].libraries["mlflow"]
        return ServingChoice(
            "mlflow",
            "2",
            MLSERVER_RUNTIME,
            "v2",
            "",
            ("asked for runtime mlserver",),
            (
                _mlserver_warning(),
                f"MLServer's mlflow runtime loads the model with mlflow {mlflow}; a model logged with MLflow 3 "
                "may not load there",
            ),
        )
    raise Nb2PipeError(
        f"runtime {asked}: {_server_text(asked)} cannot load {_flavor_text(flavor)}; "
        f"use runtime auto or nb2pipe ({NB2PIPE_RUNTIME} serves it)"
    )


def _on_nb2pipe_server(flavor: str, reason: str) -> ServingChoice:
    # nb2pipe-server declares nb2pipe/1 (auto-selected) and mlflow/3 (by name only),
    # manifests/base/serving-runtime.yaml
    format_name, format_version = ("nb2pipe", "1") if flavor == "nb2pipe" else ("mlflow", "3")
    return ServingChoice(format_name, format_version, NB2PIPE_RUNTIME, "v2", "", (reason,))


def _native_choice(
    native: NativeFormat, runtime: str, protocol: str, reasons: tuple[str, ...], warnings: tuple[str, ...] = ()
) -> ServingChoice:
    return ServingChoice(
        native.name, native.version, runtime, protocol, native.storage_path, reasons, warnings, native.name
    )


def _version_mismatch(native: NativeFormat, runtime: str, library_versions: Mapping[str, str]) -> str | None:
    trained = library_versions.get(native.library)
    shipped = SERVER_IMAGES[runtime].libraries[native.library]
    if trained is None:
        return f"the model does not record its {native.library} version; {runtime} ships {shipped}"
    if loads_in(native, trained, shipped):
        return None
    why = (
        "pickles do not carry across scikit-learn minor versions"
        if native.compatibility == "minor"
        else f"{native.library} loads models of its own or earlier versions, not later ones"
    )
    return (
        f"{native.library} {trained} trained, {runtime} ships {shipped}: {why}, so it may fail to load or predict "
        f"differently (runtime auto would serve it on {NB2PIPE_RUNTIME})"
    )


def loads_in(native: NativeFormat, trained: str, shipped: str) -> bool:
    """Whether a model trained with library version ``trained`` loads in ``shipped``."""
    trained_release, shipped_release = release(trained), release(shipped)
    if native.compatibility == "minor":
        return trained_release[:2] == shipped_release[:2]
    return trained_release <= shipped_release


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string, three parts: "1.5.2" -> (1, 5, 2), "2.1rc1" -> (2, 1, 0)."""
    found = re.match(r"\d+(\.\d+)*", version.strip())
    if found is None:
        raise Nb2PipeError(f"cannot read a version number in {version!r}")
    numbers = [int(part) for part in found.group(0).split(".")]
    return (*numbers, *(0,) * (3 - len(numbers)))


def _with_gpu_warning(choice: ServingChoice, flavor: str, gpu: int) -> ServingChoice:
    if gpu <= 0:
        return choice
    if choice.runtime in CPU_ONLY_RUNTIMES:
        why = f"{choice.runtime} runs on CPU only"
    elif flavor == "sklearn":
        why = "scikit-learn predicts on CPU only"
    else:
        return choice
    warning = f"{gpu} GPU(s) asked for, but {why}: the GPU will sit idle"
    return replace(choice, warnings=(*choice.warnings, warning))


def _mlserver_warning() -> str:
    return (
        "MLServer is unmaintained (last release mid-2025; MLflow 3.13 dropped it): prefer runtime auto, "
        "kserve or nb2pipe"
    )


def _flavor_text(flavor: str) -> str:
    return {
        "tensorflow": "a Keras/TensorFlow MLflow model",
        "pytorch": "a PyTorch MLflow model",
        "nb2pipe": "a model logged through nb2pipe's wrapper",
    }.get(flavor, "an MLflow pyfunc model")


def _server_text(asked: str) -> str:
    return {"kserve": "KServe's own servers", "predictive": PREDICTIVE_RUNTIME, "mlserver": "MLServer"}.get(
        asked, asked
    )
