"""Which server runs a model on the cluster (nb2pipe.lifecycle.runtimes), the files laid out as
KServe's servers load them (nb2pipe.store.serving_layout, checked on real model files), and a
registered xgboost model deployed on KServe's xgbserver."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.inference_service import ServedModel, inference_service
from nb2pipe.lifecycle.runtimes import (
    NATIVE_FORMATS,
    NB2PIPE_RUNTIME,
    SERVER_IMAGES,
    ServingChoice,
    choose_runtime,
    loads_in,
    release,
)
from nb2pipe.store.registry import TRACKING_ENV, library_versions
from nb2pipe.store.serving_layout import LAYOUT_RULES, RUNTIME_FOLDER, check_layout, model_files, write_runtime_copy
from tests.support.crd_schema import KSERVE_SCHEMAS, validate_resource
from tests.support.registered import RegisteredModel

#: versions each KServe 0.20 image loads, and versions it does not (the ones installed here)
LOADABLE = {"scikit-learn": "1.5.1", "xgboost": "2.0.3", "lightgbm": "4.6.0"}
TOO_NEW = {"scikit-learn": "1.9.1", "xgboost": "3.2.0", "lightgbm": "4.7.0"}
SERVERS = {"sklearn": "kserve-sklearnserver", "xgboost": "kserve-xgbserver", "lightgbm": "kserve-lgbserver"}
FORMAT_VERSIONS = {"sklearn": "1", "xgboost": "2", "lightgbm": "4"}


def features_and_labels() -> tuple[Any, Any]:
    generator = np.random.default_rng(7)
    features = generator.normal(size=(80, 4))
    return features, (features[:, 0] + features[:, 1] > 0).astype(int)


# --- the choice table ------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm"])
def test_auto_takes_kserves_own_server_when_its_library_loads_the_model(flavor: str) -> None:
    choice = choose_runtime(flavor, None, LOADABLE)
    assert (choice.runtime, choice.format_name, choice.format_version) == (
        SERVERS[flavor],
        flavor,
        FORMAT_VERSIONS[flavor],
    )
    assert choice.protocol == "v1"  # with v2, KServe's auto-selection would prefer MLServer
    assert choice.warnings == ()
    assert choice.layout_format == flavor
    assert choice.storage_path == ("" if flavor == "sklearn" else RUNTIME_FOLDER)
    library = NATIVE_FORMATS[flavor].library
    assert f"{library} {LOADABLE[library]} trained" in choice.reasons[0]
    assert choose_runtime(flavor, "auto", LOADABLE) == choice


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm"])
def test_auto_falls_back_to_nb2pipe_server_and_says_which_versions(flavor: str) -> None:
    choice = choose_runtime(flavor, None, TOO_NEW)
    assert (choice.runtime, choice.format_name, choice.format_version) == (NB2PIPE_RUNTIME, "mlflow", "3")
    assert choice.storage_path == "" and choice.layout_format is None
    library = NATIVE_FORMATS[flavor].library
    shipped = SERVER_IMAGES[SERVERS[flavor]].libraries[library]
    expected = f"{library} {TOO_NEW[library]} trained, {SERVERS[flavor]} ships {shipped}: serving on nb2pipe-server"
    assert choice.reasons == (expected,) and choice.warnings == ()  # the designed choice, not a warning
    assert choice.describe() == f"runtime nb2pipe-server (mlflow/3, v2): {expected}"


def test_sklearn_needs_the_same_minor_version_boosters_load_older_versions() -> None:
    sklearn, xgboost = NATIVE_FORMATS["sklearn"], NATIVE_FORMATS["xgboost"]
    assert loads_in(sklearn, "1.5.0", "1.5.2") and loads_in(sklearn, "1.5.9", "1.5.2")
    assert not loads_in(sklearn, "1.4.2", "1.5.2")  # older minor: a pickle is not portable either way
    assert not loads_in(sklearn, "1.6.0", "1.5.2")
    assert loads_in(xgboost, "1.7.6", "2.1.4") and loads_in(xgboost, "2.1.4", "2.1.4")
    assert not loads_in(xgboost, "2.1.5", "2.1.4") and not loads_in(xgboost, "3.0.0", "2.1.4")
    assert release("2.1.0rc1") == (2, 1, 0) and release("1.5") == (1, 5, 0) and release("4.7.0+cpu") == (4, 7, 0)
    with pytest.raises(Nb2PipeError, match="cannot read a version"):
        release("latest")


def test_an_unrecorded_version_keeps_kserves_server_and_says_so() -> None:
    choice = choose_runtime("sklearn", None, {})
    assert choice.runtime == "kserve-sklearnserver" and choice.warnings == ()
    assert "does not record its scikit-learn version" in choice.reasons[0]


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm"])
@pytest.mark.parametrize(("asked", "server"), [("kserve", None), ("predictive", "kserve-predictiveserver")])
def test_kserve_and_predictive_serve_even_a_newer_model_with_a_warning(flavor: str, asked: str, server: str) -> None:
    runtime = server or SERVERS[flavor]
    matching = choose_runtime(flavor, asked, LOADABLE)
    assert (matching.runtime, matching.protocol, matching.warnings) == (runtime, "v1", ())
    assert matching.format_name == flavor and matching.layout_format == flavor
    newer = choose_runtime(flavor, asked, TOO_NEW)
    assert newer.runtime == runtime
    library = NATIVE_FORMATS[flavor].library
    shipped = SERVER_IMAGES[runtime].libraries[library]
    (warning,) = newer.warnings
    assert f"{library} {TOO_NEW[library]} trained, {runtime} ships {shipped}" in warning


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm"])
def test_mlserver_only_when_asked_v2_with_an_unmaintained_warning(flavor: str) -> None:
    choice = choose_runtime(flavor, "mlserver", LOADABLE)
    assert (choice.runtime, choice.protocol, choice.format_name) == ("kserve-mlserver", "v2", flavor)
    assert len(choice.warnings) == 1 and "MLServer is unmaintained" in choice.warnings[0]
    assert len(choose_runtime(flavor, "mlserver", TOO_NEW).warnings) == 2
    for asked in (None, "auto", "kserve", "predictive", "nb2pipe"):
        assert choose_runtime(flavor, asked, LOADABLE).runtime != "kserve-mlserver"


@pytest.mark.parametrize("flavor", ["tensorflow", "pytorch", "mlflow", "nb2pipe"])
def test_models_kserve_cannot_load_go_to_nb2pipe_server(flavor: str) -> None:
    expected_format = ("nb2pipe", "1") if flavor == "nb2pipe" else ("mlflow", "3")
    for asked in (None, "auto", "nb2pipe"):
        choice = choose_runtime(flavor, asked, TOO_NEW)
        assert (choice.runtime, (choice.format_name, choice.format_version)) == (NB2PIPE_RUNTIME, expected_format)
        assert choice.warnings == () and choice.layout_format is None
    for asked in ("kserve", "predictive"):
        with pytest.raises(Nb2PipeError, match=f"runtime {asked}: .* cannot load .*use runtime auto or nb2pipe"):
            choose_runtime(flavor, asked, TOO_NEW)


def test_a_pytorch_model_is_served_by_nb2pipe_server_and_says_why_not_torchserve_or_triton() -> None:
    import yaml

    choice = choose_runtime("pytorch", None, {"torch": "2.14.1"}, gpu=1)
    assert (choice.runtime, choice.format_name, choice.format_version) == (NB2PIPE_RUNTIME, "mlflow", "3")
    assert choice.warnings == ()
    (reason,) = choice.reasons
    assert "kserve-torchserve" in reason and ".mar archive" in reason and "kserve-tritonserver" in reason
    # the reason is KServe's own runtimes: both claim the pytorch format, neither reads an MLflow folder
    for runtime in ("kserve-torchserve", "kserve-tritonserver"):
        spec = yaml.safe_load((KSERVE_SCHEMAS / f"runtime-{runtime}.yaml").read_text(encoding="utf-8"))["spec"]
        assert "pytorch" in {f["name"] for f in spec["supportedModelFormats"]}
    torchserve = yaml.safe_load((KSERVE_SCHEMAS / "runtime-kserve-torchserve.yaml").read_text(encoding="utf-8"))
    assert "--model-store=/mnt/models/model-store" in torchserve["spec"]["containers"][0]["args"]
    with pytest.raises(Nb2PipeError, match="KServe's own servers cannot load a PyTorch MLflow model"):
        choose_runtime("pytorch", "kserve", {})


def test_mlserver_serves_other_pyfuncs_as_mlflow_but_never_nb2pipes_wrapper() -> None:
    choice = choose_runtime("tensorflow", "mlserver", {})
    assert (choice.runtime, choice.format_name, choice.format_version, choice.protocol) == (
        "kserve-mlserver",
        "mlflow",
        "2",
        "v2",
    )
    assert any("mlflow 2.19.0" in warning for warning in choice.warnings)
    with pytest.raises(Nb2PipeError, match="MLServer cannot load a model logged through nb2pipe's wrapper"):
        choose_runtime("nb2pipe", "mlserver", {})


@pytest.mark.parametrize(
    ("flavor", "asked", "versions", "idle"),
    [
        ("sklearn", None, LOADABLE, True),  # kserve-sklearnserver
        ("sklearn", None, TOO_NEW, True),  # nb2pipe-server, but scikit-learn has no GPU code
        ("xgboost", None, LOADABLE, True),  # kserve-xgbserver: CPU image, nthread only
        ("xgboost", "predictive", LOADABLE, True),
        ("lightgbm", "mlserver", LOADABLE, True),
        ("xgboost", None, TOO_NEW, False),  # nb2pipe-server may use it
        ("tensorflow", None, {}, False),
        ("pytorch", None, {"torch": "2.14.1"}, False),  # nb2pipe-server runs it on the GPU
    ],
)
def test_a_gpu_on_a_cpu_only_server_is_said_to_sit_idle(flavor: str, asked: str | None, versions: dict, idle: bool):
    without = choose_runtime(flavor, asked, versions, gpu=0)
    with_gpu = choose_runtime(flavor, asked, versions, gpu=1)
    added = with_gpu.warnings[len(without.warnings) :]
    assert with_gpu.warnings[: len(without.warnings)] == without.warnings
    assert bool(added) == idle
    if idle:
        assert added[0].endswith("the GPU will sit idle")


def test_the_image_table_matches_the_runtimes_kserve_ships() -> None:
    import yaml

    for flavor, server in SERVERS.items():
        runtime = yaml.safe_load((KSERVE_SCHEMAS / f"runtime-{server}.yaml").read_text(encoding="utf-8"))
        formats = {(f["name"], f["version"]) for f in runtime["spec"]["supportedModelFormats"]}
        assert (flavor, FORMAT_VERSIONS[flavor]) in formats
        assert {"v1"} <= set(runtime["spec"]["protocolVersions"])
        assert NATIVE_FORMATS[flavor].library in SERVER_IMAGES[server].libraries
    predictive = yaml.safe_load((KSERVE_SCHEMAS / "runtime-kserve-predictiveserver.yaml").read_text(encoding="utf-8"))
    entries = predictive["spec"]["supportedModelFormats"]
    assert {(f["name"], f["version"]) for f in entries} == {(k, v) for k, v in FORMAT_VERSIONS.items()}
    assert all(f.get("autoSelect") is False for f in entries)  # usable only when named


# --- library versions of the training environment ----------------------------------------------


def test_library_versions_come_from_the_flavour_and_the_requirement_pins(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "mlflow==3.17.2\nScikit_Learn==1.4.0\ncloudpickle==3.1.1 ; python_version >= '3.9'\nnumpy>=2\n# c\n",
        encoding="utf-8",
    )
    found = library_versions({"sklearn": {"sklearn_version": "1.9.1"}, "python_function": {}}, requirements)
    assert found == {"mlflow": "3.17.2", "scikit-learn": "1.9.1", "cloudpickle": "3.1.1"}
    assert library_versions({"lightgbm": {"lgb_version": "4.7.0"}}, tmp_path / "none.txt") == {"lightgbm": "4.7.0"}


# --- file layouts, on real model files ---------------------------------------------------------


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    import lightgbm
    import xgboost
    from sklearn.linear_model import LogisticRegression

    features, labels = features_and_labels()
    return {
        "features": features,
        "sklearn": LogisticRegression().fit(features, labels),
        "xgboost": xgboost.XGBClassifier(n_estimators=4, max_depth=2).fit(features, labels),
        "lightgbm": lightgbm.LGBMClassifier(n_estimators=4, verbose=-1).fit(features, labels),
    }


@pytest.mark.parametrize("format_name", ["xgboost", "lightgbm"])
def test_a_runtime_copy_is_one_booster_the_server_loads(trained: dict[str, Any], tmp_path: Path, format_name: str):
    path = write_runtime_copy(trained[format_name], format_name, tmp_path)
    assert path.name == LAYOUT_RULES[format_name].runtime_file
    assert model_files(tmp_path, format_name) == [path]
    assert check_layout(tmp_path, format_name) == []


def test_a_joblib_or_cloudpickle_sklearn_file_loads(trained: dict[str, Any], tmp_path: Path) -> None:
    import cloudpickle
    import joblib

    joblib.dump(trained["sklearn"], tmp_path / "model.joblib")
    assert check_layout(tmp_path, "sklearn") == []
    (tmp_path / "model.joblib").unlink()
    (tmp_path / "model.pkl").write_bytes(cloudpickle.dumps(trained["sklearn"]))  # MLflow's sklearn flavour
    (tmp_path / "input_example.json").write_text("{}", encoding="utf-8")  # not an sklearn extension
    assert check_layout(tmp_path, "sklearn") == []


def test_two_model_files_are_refused(trained: dict[str, Any], tmp_path: Path) -> None:
    write_runtime_copy(trained["xgboost"], "xgboost", tmp_path)
    (tmp_path / "input_example.json").write_text('{"inputs": [[1, 2, 3, 4]]}', encoding="utf-8")
    (problem,) = check_layout(tmp_path, "xgboost")
    assert "2 *.bst|*.json|*.ubj files (input_example.json, model.json)" in problem
    assert "kserve-xgbserver refuses more than one" in problem


def test_a_wrong_extension_or_a_sub_folder_is_not_found(trained: dict[str, Any], tmp_path: Path) -> None:
    trained["lightgbm"].booster_.save_model(str(tmp_path / "model.txt"))  # lgbserver finds *.bst only
    (problem,) = check_layout(tmp_path, "lightgbm")
    assert "no *.bst file at its top level" in problem and "kserve-lgbserver" in problem
    (tmp_path / "model.txt").unlink()
    nested = tmp_path / "nested"
    nested.mkdir()
    write_runtime_copy(trained["lightgbm"], "lightgbm", nested)
    assert "sub-folders are not searched" in check_layout(tmp_path, "lightgbm")[0]
    assert "is not a folder" in check_layout(tmp_path / "gone", "lightgbm")[0]


def test_a_pickled_classifier_is_not_a_booster(trained: dict[str, Any], tmp_path: Path) -> None:
    import joblib

    joblib.dump(trained["xgboost"], tmp_path / "model.bst")
    (problem,) = check_layout(tmp_path, "xgboost")
    assert problem.startswith(f"kserve-xgbserver cannot load {tmp_path / 'model.bst'} with xgboost.Booster")
    joblib.dump(trained["lightgbm"], tmp_path / "model.bst")
    assert "kserve-lgbserver cannot load" in check_layout(tmp_path, "lightgbm")[0]


def test_an_sklearn_file_without_predict_is_refused(tmp_path: Path) -> None:
    import joblib

    joblib.dump({"not": "a model"}, tmp_path / "model.pkl")
    assert check_layout(tmp_path, "sklearn") == [
        f"{tmp_path / 'model.pkl'} holds a dict, which has no predict(): kserve-sklearnserver calls predict"
    ]
    with pytest.raises(Nb2PipeError, match="no KServe model server layout for format 'mlflow'"):
        check_layout(tmp_path, "mlflow")


# --- a registered model, deployed -------------------------------------------------------------


@pytest.fixture(scope="module")
def xgboost_registry(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from nb2pipe.lifecycle.register import Registration, register_model

    folder = tmp_path_factory.mktemp("xgb-registry")
    saved = os.environ.get(TRACKING_ENV)
    os.environ[TRACKING_ENV] = f"sqlite:///{folder / 'mlflow.db'}"
    try:
        for name in ("xgboost", "lightgbm"):
            registered = register_model(trained[name], trained["features"], Registration(name, "tests"), store=folder)
            assert registered.flavor == name  # MLflow's own flavour: it records the library version
        yield folder
    finally:
        if saved is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = saved


@pytest.fixture
def boost(xgboost_registry: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TRACKING_ENV, f"sqlite:///{xgboost_registry / 'mlflow.db'}")
    return xgboost_registry


def _local(uri: str) -> Path:
    from urllib.parse import urlparse

    return Path(urlparse(uri).path) if uri.startswith("file:") else Path(uri)


@pytest.mark.slow
def test_a_registered_xgboost_model_deploys_on_xgbserver_from_its_runtime_folder(boost: Path) -> None:
    from nb2pipe.lifecycle.deploy import render
    from nb2pipe.store.registry import resolve_model

    source = resolve_model("models:/xgboost/1", boost)
    assert source.flavor == "xgboost" and source.library_versions["xgboost"] == TOO_NEW["xgboost"]
    # MLflow's folder itself has model.ubj and the input examples (.json): not one model file
    assert len(model_files(source.local_path, "xgboost")) > 1

    settings = DeploySettings(runtime="kserve", mode="knative")
    deployment = render("models:/xgboost/1", "boost", settings, store=boost)
    validate_resource(deployment.resource)
    model = deployment.resource["spec"]["predictor"]["model"]
    assert (model["runtime"], model["modelFormat"], model["protocolVersion"]) == (
        "kserve-xgbserver",
        {"name": "xgboost", "version": "2"},
        "v1",
    )
    assert model["storageUri"] == f"{source.storage_uri.rstrip('/')}/{RUNTIME_FOLDER}"
    assert check_layout(_local(model["storageUri"]), "xgboost") == []
    assert any("xgboost 3.2.0 trained, kserve-xgbserver ships 2.1.4" in line for line in deployment.warnings)
    assert deployment.runtime is not None
    assert deployment.runtime.describe() == "runtime kserve-xgbserver (xgboost/2, v1): asked for runtime kserve"

    automatic = render("models:/xgboost/1", "boost", DeploySettings(mode="knative"), store=boost)
    validate_resource(automatic.resource)
    served = automatic.resource["spec"]["predictor"]["model"]
    assert (served["runtime"], served["modelFormat"]["name"]) == (NB2PIPE_RUNTIME, "mlflow")
    assert served["storageUri"] == source.storage_uri  # nb2pipe-server loads the MLflow folder
    assert automatic.runtime is not None and automatic.runtime.describe().endswith("serving on nb2pipe-server")


@pytest.mark.slow
def test_a_registered_lightgbm_model_keeps_a_booster_lgbserver_loads(boost: Path, trained: dict[str, Any]) -> None:
    from nb2pipe.lifecycle.deploy import render
    from nb2pipe.store.registry import load_native, resolve_model

    source = resolve_model("models:/lightgbm/1", boost)
    assert source.flavor == "lightgbm" and source.library_versions["lightgbm"] == TOO_NEW["lightgbm"]
    assert check_layout(source.local_path / RUNTIME_FOLDER, "lightgbm") == []
    # served locally by its native flavour, with the same predictions as the trained model
    features = trained["features"][:5]
    assert (load_native(source).predict(features) == trained["lightgbm"].predict(features)).all()
    deployment = render(
        "models:/lightgbm/1", "boost", DeploySettings(runtime="predictive", mode="knative"), store=boost
    )
    validate_resource(deployment.resource)
    model = deployment.resource["spec"]["predictor"]["model"]
    assert (model["runtime"], model["modelFormat"]) == ("kserve-predictiveserver", {"name": "lightgbm", "version": "4"})
    assert model["storageUri"].endswith(f"/{RUNTIME_FOLDER}")


@pytest.mark.slow
def test_a_model_without_its_runtime_folder_is_refused(boost: Path, tmp_path: Path) -> None:
    import shutil

    from nb2pipe.lifecycle.deploy import render
    from nb2pipe.store.registry import resolve_model

    copy = tmp_path / "model"
    shutil.copytree(resolve_model("models:/xgboost/1", boost).local_path, copy)
    shutil.rmtree(copy / RUNTIME_FOLDER)  # as registered before nb2pipe kept the copy
    with pytest.raises(Nb2PipeError) as caught:
        render(str(copy), "boost", DeploySettings(runtime="kserve", mode="knative"))
    message = str(caught.value)
    assert message.startswith(f"kserve-xgbserver would not load {copy}: ")
    assert "is not a folder" in message and "register it again" in message


@pytest.mark.parametrize(
    ("flavor", "asked", "versions"),
    [
        ("sklearn", None, LOADABLE),
        ("sklearn", None, TOO_NEW),
        ("xgboost", "kserve", TOO_NEW),
        ("lightgbm", "predictive", LOADABLE),
        ("lightgbm", "mlserver", LOADABLE),
        ("tensorflow", None, {}),
        ("pytorch", None, {"torch": "2.14.1"}),
        ("nb2pipe", None, {}),
    ],
)
def test_every_choice_renders_a_crd_valid_inference_service(flavor: str, asked: str | None, versions: dict) -> None:
    model = ServedModel("models:/m/1", flavor, "s3://models/m/1", "1", "m", versions)
    resource = inference_service("m", model, DeploySettings(runtime=asked, gpu=1))  # type: ignore[arg-type]
    validate_resource(resource)
    choice: ServingChoice = choose_runtime(flavor, asked, versions, 1)
    spec = resource["spec"]["predictor"]["model"]
    assert spec["runtime"] == choice.runtime and spec["protocolVersion"] == choice.protocol
    assert spec["modelFormat"] == {"name": choice.format_name, "version": choice.format_version}
    expected = "s3://models/m/1" + (f"/{choice.storage_path}" if choice.storage_path else "")
    assert spec["storageUri"] == expected


@pytest.mark.slow
def test_a_registered_sklearn_model_on_kserve_is_its_one_pickle(
    registered_model: RegisteredModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from nb2pipe.cli import main

    monkeypatch.setenv(TRACKING_ENV, registered_model.tracking_uri)
    argv = ["deploy", registered_model.model_uri, "--name", "cancer", "--runtime", "kserve", "--mode", "knative"]
    assert main([*argv, "--dry-run", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    validate_resource(outcome["resource"])
    model = outcome["resource"]["spec"]["predictor"]["model"]
    assert (model["runtime"], model["modelFormat"]) == ("kserve-sklearnserver", {"name": "sklearn", "version": "1"})
    # MLflow's sklearn folder, as it is: model.pkl (cloudpickle) is the one file joblib.load reads
    folder = _local(model["storageUri"])
    assert [path.name for path in model_files(folder, "sklearn")] == ["model.pkl"]
    assert check_layout(folder, "sklearn") == []
    assert any("scikit-learn 1.9.1 trained, kserve-sklearnserver ships 1.5.2" in line for line in outcome["warnings"])
