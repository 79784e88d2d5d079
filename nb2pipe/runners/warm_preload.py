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
#: what every step imports, whatever the notebook does: kfp.local's task dispatcher (it pulls in
#: docker's client), the executor, nb2pipe's step runtime and what checks a step's command
ALWAYS = (
    "kfp.local",
    "kfp.local.task_dispatcher",
    "kfp.dsl.executor_main",
    "nb2pipe.runners.task",
    "nb2pipe.runners.warm",
    "nb2pipe.runners.warm_step",
    "nb2pipe.emit.kfp",
    "nb2pipe.runtime.step",
)
#: what a step's runtime imports to pass a module's values on (nb2pipe/runtime/values.py: DataFrames as parquet)
PASSING = {"pandas": ("pyarrow.parquet",)}

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
    loaded: list[str] = []
    skipped: dict[str, str] = {}
    _load([*ALWAYS, *names], folder, loaded, skipped)
    return {"loaded": loaded, "skipped": skipped, "tainted": TAINTED}


def preload_from(modules_fd: int, report_path: str, folder: str) -> None:
    """In a server forked from the runner: what every step imports, then the notebook's modules,
    read from ``modules_fd`` a line of comma-separated names at a time, as the runner sends them
    (until it closes the pipe); the report as :func:`_main`."""
    _quiet(report_path)
    loaded: list[str] = []
    skipped: dict[str, str] = {}
    with open(modules_fd, "rb") as pipe:
        usable = _load(list(ALWAYS), folder, loaded, skipped)
        for line in pipe if usable else ():  # a first list before the compile, the rest after it
            names = [name for name in line.decode().strip().split(",") if name]
            if not _load(names, folder, loaded, skipped):
                break
    _write_report(report_path, {"loaded": loaded, "skipped": skipped, "tainted": TAINTED})


def _load(names: list[str], folder: str, loaded: list[str], skipped: dict[str, str]) -> bool:
    """Import ``names`` in order; False once one taints this process (nothing after it is imported)."""
    global TAINTED
    for name in [*names, *(extra for module in names for extra in PASSING.get(module, ()))]:
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
            return False
        loaded.append(name)
    return True


def _write_report(report_path: str, report: dict[str, object]) -> None:
    partial = os.open(report_path + ".partial", _NEW_FILE, 0o600)
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    os.replace(report_path + ".partial", report_path)


#: a file of our own: never one (or a link) someone put where the server writes, in a shared /tmp
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def log_path(report_path: str) -> str:
    return report_path + ".log"


def _quiet(report_path: str) -> None:
    """What the imports print goes to a file beside the report, not into the runner's output:
    ``nb2pipe run --json`` prints one JSON object, and its live table owns the terminal."""
    from nb2pipe.processes import output_to

    try:
        log = os.open(log_path(report_path), _NEW_FILE, 0o600)
    except OSError:
        log = os.open(os.devnull, os.O_WRONLY)
    output_to(log)
    os.close(log)


def _main() -> None:
    report_path = os.environ.get(REPORT_ENV)
    if not report_path:
        return
    _quiet(report_path)
    names = [name for name in os.environ.get(MODULES_ENV, "").split(",") if name]
    report = preload(names, os.environ.get(FOLDER_ENV, ""))
    for name in (MODULES_ENV, REPORT_ENV, FOLDER_ENV):  # the steps forked from here do not see them
        os.environ.pop(name, None)
    _write_report(report_path, report)


_main()
