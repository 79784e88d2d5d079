"""Imported by a run's fork server (multiprocessing's ``forkserver``) before it forks any step.

It imports kfp.local, KFP's executor and the notebook's prelude modules (``NB2PIPE_WARM_MODULES``,
comma-separated), so a step forked from the server pays only its own work. A module that must
not be forked after import is refused: by name (CUDA, TensorFlow, JAX runtimes), or after the
fact when importing it started a thread or pulled one of those runtimes in; then the server is
*tainted* and the runner forks nothing from it. What happened goes, as JSON, to
``NB2PIPE_WARM_REPORT`` (written last, atomically: the runner waits for it). Standard library
only at import time: the server imports this module before anything else.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import threading

MODULES_ENV = "NB2PIPE_WARM_MODULES"
REPORT_ENV = "NB2PIPE_WARM_REPORT"
FOLDER_ENV = "NB2PIPE_WARM_NOTEBOOK_DIR"
#: runtimes that start threads or a device context at import: never imported before a fork
NEVER_FORKED = (
    "torch",
    "tensorflow",
    "tf_keras",
    "keras",
    "jax",
    "jaxlib",
    "flax",
    "cupy",
    "mxnet",
    "paddle",
    "pycuda",
    "tensorrt",
    "ray",
)
#: what every step imports, whatever the notebook does
ALWAYS = ("kfp.local", "kfp.dsl.executor_main", "nb2pipe.runners.task", "nb2pipe.runtime.step")

#: set when a module made this process unsafe to fork: the step children read it too
TAINTED = ""


def _forbidden_loaded() -> str:
    return next((name for name in NEVER_FORKED if name in sys.modules), "")


def _local_to(folder: str, name: str) -> bool:
    """A module of the notebook's folder: a step imports it from there, not from here."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    origin = getattr(spec, "origin", None) or ""
    return bool(folder) and os.path.abspath(origin).startswith(os.path.join(os.path.abspath(folder), ""))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def preload(names: list[str], folder: str) -> dict[str, object]:
    global TAINTED
    loaded: list[str] = []
    skipped: dict[str, str] = {}
    for name in [*ALWAYS, *names]:
        top = name.split(".")[0]
        if top in NEVER_FORKED:
            skipped[name] = "initialises a runtime that does not survive a fork"
            continue
        if _local_to(folder, name):
            skipped[name] = "a module of the notebook's folder"
            continue
        if "." in name and not _is_module(name):
            continue  # ``from a import b`` where b is a function, a class...: nothing to say
        try:
            importlib.import_module(name)
        except BaseException as exc:
            skipped[name] = f"not importable here ({type(exc).__name__})"
            continue
        forbidden = _forbidden_loaded()
        if threading.active_count() > 1 or forbidden:
            why = f"imports {forbidden}" if forbidden else "starts a thread at import"
            TAINTED = f"{name} {why}"
            skipped[name] = why
            break
        loaded.append(name)
    return {"loaded": loaded, "skipped": skipped, "tainted": TAINTED}


def _main() -> None:
    report_path = os.environ.get(REPORT_ENV)
    if not report_path:
        return
    names = [name for name in os.environ.get(MODULES_ENV, "").split(",") if name]
    report = preload(names, os.environ.get(FOLDER_ENV, ""))
    for name in (MODULES_ENV, REPORT_ENV, FOLDER_ENV):  # the steps forked from here do not see them
        os.environ.pop(name, None)
    with open(report_path + ".partial", "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    os.replace(report_path + ".partial", report_path)


_main()
