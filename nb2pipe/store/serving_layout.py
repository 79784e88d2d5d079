"""Model files laid out as KServe's own model servers expect them, and checked the way they load them.

KServe's sklearn, xgboost and lightgbm servers (and the predictive server, which wraps the same
three classes) list the top level of the downloaded ``storageUri`` (``os.listdir``, no
recursion), keep the plain files whose names end in their extensions, refuse none or more than
one, and load the one file with their library. Those servers are not on PyPI, so their rules are
reproduced here from KServe 0.20's source (docs/kserve-rules.md §5.2) and the file is loaded with
the installed library, the same call they make.

An MLflow model folder does not fit them for xgboost and lightgbm: MLflow writes
``input_example.json`` and ``serving_input_example.json`` beside the model (two more ``.json``
files for xgbserver), and pickles lightgbm's scikit-learn models (lgbserver loads a LightGBM
text model named ``*.bst``). So registration also keeps a runtime-ready copy, the Booster
alone, in the sub-folder :data:`RUNTIME_FOLDER` of the version's artifacts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError

#: the sub-folder of a registered version's artifacts that holds the runtime-ready model file
RUNTIME_FOLDER = "kserve"


@dataclass(frozen=True)
class LayoutRule:
    """How one KServe server finds and loads its model file."""

    format_name: str
    server: str
    extensions: tuple[str, ...]
    loader: str
    #: where KServe 0.20 says so (python/ of the kserve repository)
    source: str
    #: the file registration writes into RUNTIME_FOLDER (None: the MLflow folder already fits)
    runtime_file: str | None


LAYOUT_RULES: dict[str, LayoutRule] = {
    rule.format_name: rule
    for rule in (
        LayoutRule(
            "sklearn",
            "kserve-sklearnserver",
            (".joblib", ".pkl", ".pickle"),
            "joblib.load",
            "sklearnserver/sklearnserver/model.py:27,41-52",
            None,  # MLflow's sklearn flavour writes exactly one model.pkl
        ),
        LayoutRule(
            "xgboost",
            "kserve-xgbserver",
            (".bst", ".json", ".ubj"),
            "xgboost.Booster(model_file=...)",
            "xgbserver/xgbserver/model.py:28,46-62",
            "model.json",  # a Booster's JSON model: the format XGBoost keeps loadable across versions
        ),
        LayoutRule(
            "lightgbm",
            "kserve-lgbserver",
            (".bst",),
            "lightgbm.Booster(model_file=...)",
            "lgbserver/lgbserver/model.py:28,46-59",
            "model.bst",  # LightGBM's text model; lgbserver finds only *.bst
        ),
    )
}


def layout_rule(format_name: str) -> LayoutRule:
    try:
        return LAYOUT_RULES[format_name]
    except KeyError:
        known = ", ".join(LAYOUT_RULES)
        raise Nb2PipeError(f"no KServe model server layout for format {format_name!r} (known: {known})") from None


def model_files(folder: Path, format_name: str) -> list[Path]:
    """The files the format's server would take as model files: plain files at the top level
    whose names end in one of its extensions (``str.endswith``, case-sensitive, as KServe's)."""
    rule = layout_rule(format_name)
    found = [
        folder / name for name in os.listdir(folder) if (folder / name).is_file() and name.endswith(rule.extensions)
    ]
    return sorted(found)


def check_layout(folder: Path, format_name: str) -> list[str]:
    """What would keep the format's KServe server from loading the model in ``folder`` (empty: it
    loads): no model file, more than one, or a file its loader refuses."""
    rule = layout_rule(format_name)
    if not folder.is_dir():
        return [f"{folder} is not a folder: {rule.server} needs a folder holding one model file"]
    files = model_files(folder, format_name)
    wanted = "|".join(f"*{extension}" for extension in rule.extensions)
    if not files:
        return [
            f"{folder} has no {wanted} file at its top level: {rule.server} finds none (sub-folders are not searched)"
        ]
    if len(files) > 1:
        names = ", ".join(path.name for path in files)
        return [f"{folder} has {len(files)} {wanted} files ({names}): {rule.server} refuses more than one"]
    try:
        loaded = _load(files[0], format_name)
    except Exception as exc:  # whatever the library raises is the server's failure to start
        return [f"{rule.server} cannot load {files[0]} with {rule.loader}: {_first_line(exc)}"]
    if format_name == "sklearn" and not callable(getattr(loaded, "predict", None)):
        return [f"{files[0]} holds a {type(loaded).__name__}, which has no predict(): {rule.server} calls predict"]
    return []


def _load(path: Path, format_name: str) -> Any:
    """The model, loaded by the call the server makes (the library's own loader)."""
    if format_name == "sklearn":
        import joblib

        return joblib.load(path)
    if format_name == "xgboost":
        import xgboost

        # xgbserver reads the bytes and hands them over as a bytearray (model.py:58-62)
        return xgboost.Booster(params={"nthread": 1}, model_file=bytearray(path.read_bytes()))
    import warnings

    import lightgbm

    with warnings.catch_warnings():
        # lgbserver passes nthread too; LightGBM says it keeps the file's parameters
        warnings.filterwarnings("ignore", message="Ignoring params argument", category=UserWarning)
        return lightgbm.Booster(params={"nthread": 1}, model_file=str(path))


def write_runtime_copy(model: Any, format_name: str, folder: Path) -> Path:
    """Save ``model``'s Booster as the format's runtime file in ``folder`` (which then holds just
    it) and check it loads as the server loads it."""
    rule = layout_rule(format_name)
    if rule.runtime_file is None:
        raise Nb2PipeError(f"the {format_name} MLflow folder is served as it is: no runtime copy to write")
    path = folder / rule.runtime_file
    booster = _booster(model, format_name)
    booster.save_model(str(path))
    problems = check_layout(folder, format_name)
    if problems:
        raise Nb2PipeError(f"the runtime-ready copy of the model does not load: {'; '.join(problems)}")
    return path


def _booster(model: Any, format_name: str) -> Any:
    """The native Booster inside a scikit-learn-style estimator, or the Booster itself."""
    if format_name == "xgboost":
        return model.get_booster() if hasattr(model, "get_booster") else model
    return model.booster_ if hasattr(model, "booster_") else model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
