"""Log a trained model to MLflow, register a version, and decide whether it is the champion.

Every new version gets alias ``candidate``. It takes alias ``champion`` when there is no
champion yet, or when it beats the champion on the promotion metric (``>=``: higher is
better, ``<=``: lower is better; ties promote). Without a promotion rule only the first
version is promoted: a later one cannot be judged better. The comparison is kept as a tag
on the new version (``nb2pipe.promotion``) and on its run; no version is ever deleted.

PyTorch modules are logged with ``mlflow.pytorch`` as the full module, cloudpickled
(:mod:`nb2pipe.lifecycle.torch_model`). xgboost and lightgbm models also keep a runtime-ready
copy, the Booster alone in ``kserve/`` of the logged model's artifacts, which KServe's
xgbserver / lgbserver load as they are (:mod:`nb2pipe.store.serving_layout`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.lifecycle.torch_model import example_rows, is_torch_module, log_torch_model
from nb2pipe.store.reference import REFERENCE_DIR, save_reference
from nb2pipe.store.registry import (
    CANDIDATE,
    CHAMPION,
    WRAPPER_METADATA,
    RegistryError,
    artifact_root,
    use_tracking,
)
from nb2pipe.store.serving_layout import RUNTIME_FOLDER, write_runtime_copy
from nb2pipe.store.store_lock import exclusive_file_lock, lock_path, sqlite_database

PROMOTION_TAG = "nb2pipe.promotion"


@dataclass(frozen=True)
class PromotionRule:
    metric: str
    higher_is_better: bool

    @property
    def text(self) -> str:
        return f"{self.metric}{'>=' if self.higher_is_better else '<='}"


@dataclass(frozen=True)
class Registration:
    model_name: str
    experiment: str
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    rule: PromotionRule | None = None
    run_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reason: str
    rule: str | None = None
    candidate_value: float | None = None
    champion_version: str | None = None
    champion_value: float | None = None


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    run_id: str
    flavor: str
    tracking_uri: str
    promotion: Promotion
    #: the training data kept with the version for drift checks and explainers (run artifact)
    reference: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def champion(self) -> bool:
        return self.promotion.promoted

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(uri=self.uri, champion=self.champion)
        return data


def register_model(model: Any, example: Any, registration: Registration, store: str | Path | None = None) -> Registered:
    """Log ``model`` (input example and signature from ``example``), register, promote."""
    import mlflow
    from mlflow import MlflowClient

    uri = use_tracking(store)
    experiment = _experiment(registration.experiment, artifact_root(uri))
    with mlflow.start_run(experiment_id=experiment, run_name=registration.run_name) as run:
        if registration.params:
            mlflow.log_params({k: _param_text(v) for k, v in registration.params.items()})
        numeric = {k: float(v) for k, v in registration.metrics.items() if _is_number(v)}
        if numeric:
            mlflow.log_metrics(numeric)
        mlflow.set_tags(dict(registration.tags))
        flavor, info = _log_model(model, example)
        if is_torch_module(model) and hasattr(example, "detach"):
            example = example_rows(example)  # drift checks and explainers read numpy, not tensors on a GPU
        reference = _log_reference(example)
        # one run at a time compares with the champion and takes its place: two runs at once
        # must not both beat the same old champion and leave the worse one as champion
        with _promotion_lock(uri, registration.model_name):
            version = mlflow.register_model(info.model_uri, registration.model_name)
            client = MlflowClient()
            client.set_registered_model_alias(registration.model_name, CANDIDATE, version.version)
            promotion = _decide(client, registration, numeric)
            if promotion.promoted:
                client.set_registered_model_alias(registration.model_name, CHAMPION, version.version)
        record = json.dumps(asdict(promotion), sort_keys=True)
        client.set_model_version_tag(registration.model_name, version.version, PROMOTION_TAG, record)
        mlflow.set_tag(PROMOTION_TAG, record)
    return Registered(registration.model_name, str(version.version), run.info.run_id, flavor, uri, promotion, reference)


def _promotion_lock(uri: str, model_name: str) -> AbstractContextManager[None]:
    """The lock file of a sqlite store (processes of one machine share it); a tracking
    server or database serves other machines too, where no local lock reaches."""
    database = sqlite_database(uri)
    if database is None:
        return nullcontext()
    return exclusive_file_lock(lock_path(database), doing=f"registering a version of {model_name!r}")


def _log_reference(example: Any) -> str | None:
    """Keep the training data with the run (artifact ``reference/``): the baseline of drift
    checks and the data explainers are fitted on. Data of a kind nb2pipe cannot store is
    left out and said so: the model is still registered."""
    if example is None:
        return None
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory(prefix="nb2pipe-reference-") as folder:
        try:
            saved = save_reference(example, folder)
        except Nb2PipeError as exc:
            print(f"nb2pipe: warning: the training data is not kept for drift checks: {exc}", flush=True)
            return None
        mlflow.log_artifacts(folder, REFERENCE_DIR)
    return f"{REFERENCE_DIR}/{saved.name}"


def _experiment(name: str, artifacts: str | None) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=artifacts)
    except MlflowException:
        # another run created it since the look-up above: use theirs
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _log_model(model: Any, example: Any) -> tuple[str, Any]:
    """Log with the model's own flavour; anything else with ``predict`` as a pyfunc."""
    import mlflow
    from mlflow.models import infer_signature

    if is_torch_module(model):
        # a module has no predict(): its signature comes from forward on its training rows (float32 or integers)
        return "pytorch", log_torch_model(model, example, _pins("torch", "cloudpickle", "numpy"))
    sample = _head(example)
    signature = None
    if sample is not None:
        try:
            signature = infer_signature(sample, model.predict(sample))
        except Exception as exc:  # a model that cannot predict its own example is a user bug
            raise RegistryError(f"the model cannot predict its training data's first rows: {exc}") from exc
    module = type(model).__module__.split(".")[0]
    if module == "sklearn":
        import sklearn

        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=sample,
            serialization_format="cloudpickle",
            # listing them skips MLflow's dependency inference (seconds per model)
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", *_pins("cloudpickle", "numpy", "pandas")],
        )
        return "sklearn", info
    if module == "xgboost":
        info = mlflow.xgboost.log_model(
            model, name="model", signature=signature, input_example=sample, pip_requirements=_pins("xgboost")
        )
        _log_runtime_copy(model, "xgboost", info.model_id)
        return "xgboost", info
    if module == "lightgbm":
        # MLflow's own flavour records the version (lgb_version) that decides the runtime
        info = mlflow.lightgbm.log_model(
            model, name="model", signature=signature, input_example=sample, pip_requirements=_pins("lightgbm")
        )
        _log_runtime_copy(model, "lightgbm", info.model_id)
        return "lightgbm", info
    if module in ("keras", "tf_keras", "tensorflow"):
        info = mlflow.tensorflow.log_model(
            model, name="model", signature=signature, input_example=sample, pip_requirements=_pins("tensorflow")
        )
        return "tensorflow", info
    if not callable(getattr(model, "predict", None)):
        raise RegistryError(
            f"a {type(model).__name__} has no predict(): register a scikit-learn, xgboost, lightgbm, Keras or "
            "PyTorch model, or an object with a predict method"
        )
    from nb2pipe.lifecycle.pyfunc import PredictWrapper

    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=PredictWrapper(model),
        signature=signature,
        input_example=sample,
        pip_requirements=_pins("cloudpickle", "numpy", "pandas"),
        metadata={WRAPPER_METADATA: True},
    )
    return "nb2pipe", info


def _log_runtime_copy(model: Any, format_name: str, model_id: str) -> None:
    """The Booster alone, as KServe's server for the format loads it, in the logged model's
    ``kserve/`` folder: the MLflow folder beside it has more files the server would take for
    model files (MLflow's input examples are .json) or a pickle it cannot load."""
    import tempfile

    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="nb2pipe-runtime-") as folder:
        write_runtime_copy(model, format_name, Path(folder))
        MlflowClient().log_model_artifacts(model_id, folder, RUNTIME_FOLDER)


def _head(example: Any, rows: int = 5) -> Any:
    if example is None:
        return None
    if hasattr(example, "iloc"):
        return example.iloc[:rows]
    try:
        return example[:rows]
    except TypeError:
        return None


def _pins(*distributions: str) -> list[str]:
    from importlib import metadata

    pins = []
    for name in distributions:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def _decide(client: Any, registration: Registration, metrics: Mapping[str, float]) -> Promotion:
    from mlflow.exceptions import MlflowException

    try:
        champion = client.get_model_version_by_alias(registration.model_name, CHAMPION)
    except MlflowException:
        champion = None
    rule = registration.rule
    if champion is None:
        value = metrics.get(rule.metric) if rule else None
        return Promotion(True, "first version: no champion yet", rule.text if rule else None, value)
    if rule is None:
        return Promotion(
            False,
            f"version {champion.version} stays champion: no promotion rule (tag the step promote:METRIC>=)",
            None,
            champion_version=str(champion.version),
        )
    candidate = metrics.get(rule.metric)
    previous = client.get_run(champion.run_id).data.metrics.get(rule.metric)
    base = Promotion(False, "", rule.text, candidate, str(champion.version), previous)
    if candidate is None:
        return _with(base, f"this run has no metric {rule.metric!r}; the champion stays")
    if previous is None or math.isnan(previous):
        return _with(base, f"champion {champion.version} has no {rule.metric!r}; the new version takes over", True)
    better = candidate >= previous if rule.higher_is_better else candidate <= previous
    verb = "beats or ties" if better else "does not beat"
    return _with(base, f"{rule.metric} {candidate:g} {verb} champion {champion.version}'s {previous:g}", better)


def _with(promotion: Promotion, reason: str, promoted: bool = False) -> Promotion:
    from dataclasses import replace

    return replace(promotion, reason=reason, promoted=promoted)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]  # MLflow's limit on a param value
