"""A run's folder under ``DIR/runs/``: its id, its ``index.html`` and the variables it kept."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import exclusive_lock
from nb2pipe.runners import state as states

if TYPE_CHECKING:
    from nb2pipe.runners.local import RunResult

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: the run's overview page, written when the run ends
INDEX_FILE = "index.html"
#: a step's report, copied into its task folder when the step ends
STEP_REPORT = "report.html"
#: locked (flock) by the process running the run for as long as it runs. A record saying
#: "running" outlives a runner that was killed; the lock does not: the system frees it.
RUNNER_LOCK = "runner.lock"


def new_run_id(runs_dir: Path, pipeline: str, taken: Collection[str] = ()) -> str:
    """``PIPELINE-YYYYMMDD-HHMMSS`` (``-2``, ``-3`` … when that exists in ``runs_dir`` or is in
    ``taken``: ids handed out for runs that have not made their folder yet). Only a
    suggestion: another process may take it before this one makes its folder, so a run
    claims its id with :func:`create_run_folder`."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate, counter = f"{pipeline}-{stamp}", 2
    while (runs_dir / candidate).exists() or candidate in taken:
        candidate = f"{pipeline}-{stamp}-{counter}"
        counter += 1
    return candidate


def create_run_folder(runs_dir: Path, pipeline: str, run_id: str | None = None) -> Path:
    """Make the folder of a new run, ``runs_dir/RUN_ID``, and so claim its id: ``mkdir``
    fails when the folder exists, so of two processes that picked the same id (runs started
    in the same second) one gets it and the other takes the next (``-2``, ``-3`` …). A
    ``run_id`` the caller chose is never changed: one that exists is an error."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    if run_id is not None:
        run_dir = runs_dir / check_run_id(run_id)
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise Nb2PipeError(
                f"run {run_id} already exists in {runs_dir}; choose another run id, or --resume it"
            ) from None
        return run_dir
    lost: set[str] = set()
    while True:
        candidate = check_run_id(new_run_id(runs_dir, pipeline, taken=lost))
        try:
            (runs_dir / candidate).mkdir()
        except FileExistsError:  # made by another process since new_run_id looked
            lost.add(candidate)
            continue
        return runs_dir / candidate


@contextlib.contextmanager
def running_here(run_dir: Path) -> Iterator[None]:
    """Hold the run's :data:`RUNNER_LOCK` for the block; a run another process is running
    (``nb2pipe run --resume`` of a live run) is refused at once."""

    def busy() -> Exception:
        return Nb2PipeError(f"run {run_dir.name} is running in another process; wait for it to end, or start a new run")

    with exclusive_lock(run_dir / RUNNER_LOCK, 0, busy):
        yield


def is_running(run_dir: Path) -> bool:
    """Whether a process runs the run now (holds its :data:`RUNNER_LOCK`), wherever it was
    started: a terminal, the sidebar, another server."""
    try:
        descriptor = os.open(run_dir / RUNNER_LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # no lock file: never run, or by an nb2pipe that kept none
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # closing frees the shared lock just taken
    return False


def check_run_id(run_id: str) -> str:
    """A run id names a folder under ``DIR/runs/``: letters, digits, '.', '_' and '-' only."""
    if not _RUN_ID.fullmatch(run_id):
        raise Nb2PipeError(
            f"run id {run_id!r}: use letters, digits, '.', '_' and '-' (at most 128), starting with a letter or digit"
        )
    return run_id


def write_index(run_dir: Path, result: RunResult) -> None:
    """``index.html``: the run's steps, their reports and its metrics, for a browser."""
    from html import escape

    rows = []
    for step in result.steps:
        report = run_dir / step.task / STEP_REPORT
        link = f'<a href="{escape(step.task)}/{STEP_REPORT}">report</a>' if report.is_file() else ""
        seconds = f"{step.seconds:.1f} s" if step.seconds is not None else ""
        rows.append(
            f"<tr><td>{escape(step.step)}</td><td>{escape(step.status)}</td><td>{seconds}</td><td>{link}</td></tr>"
        )
    metrics = "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in sorted(result.metrics.items()))
    html = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(result.run_id)}</title></head>'
        f"<body><h1>{escape(result.run_id)}: {escape(result.status)}</h1>"
        f"<table><tr><th>step</th><th>status</th><th>time</th><th></th></tr>{''.join(rows)}</table>"
        f"<h2>metrics</h2><table>{metrics}</table></body></html>"
    )
    (run_dir / INDEX_FILE).write_text(html, encoding="utf-8")


def recent_runs(runs_dir: Path, notebook_name: str | None = None, limit: int = 20) -> list[states.RunState]:
    """The last ``limit`` runs kept in ``runs_dir`` (``DIR/runs/``), newest first; only those
    of the notebook file named ``notebook_name`` when given (notebooks of one folder share
    its run folder; the name, not the path, so a moved folder keeps its history). A folder or
    record that is a symbolic link, or a record that does not load, is left out: a link
    planted there must not make the caller read outside the run folder."""
    found: list[tuple[float, str, states.RunState]] = []
    try:
        entries = list(runs_dir.iterdir()) if runs_dir.is_dir() and not runs_dir.is_symlink() else []
    except OSError:
        entries = []
    for run_dir in entries:
        record = run_dir / states.STATE_FILE
        if run_dir.is_symlink() or not run_dir.is_dir() or record.is_symlink() or not record.is_file():
            continue
        try:
            run = states.RunState.load(run_dir)
        except (Nb2PipeError, TypeError, KeyError, OSError):  # damaged by hand, or being written
            continue
        if notebook_name is not None and Path(run.notebook).name != notebook_name:
            continue
        found.append((run_started(run) or record.stat().st_mtime, run.run_id, run))
    found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [run for _, _, run in found[:limit]]


def run_started(run: states.RunState) -> float | None:
    """When the run's first step started (epoch seconds), None before any did."""
    times = [step.started for step in run.steps.values() if step.started is not None]
    return min(times) if times else None


def run_finished(run: states.RunState) -> float | None:
    """When the run's last step finished, once the run has ended; else None."""
    if run.status not in states.FINISHED:
        return None
    times = [step.finished for step in run.steps.values() if step.finished is not None]
    return max(times) if times else None


def load_variables(run_dir: str | Path) -> dict[str, Any]:
    """The notebook's final variables as a run with ``keep_variables`` left them."""
    import pickle

    values: dict[str, Any] = {}
    for path in sorted((Path(run_dir) / "variables").glob("*.pkl")):
        with path.open("rb") as handle:
            values.update({name: pickle.loads(blob) for name, blob in pickle.load(handle).items()})
    return values
