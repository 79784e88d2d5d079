"""Local runs started from the editor: ``nb2pipe run`` in a background process per run.

A run of its own process (and session) keeps the Jupyter server responsive, lets the run
outlive the server, and is exactly the run ``nb2pipe run`` makes in a terminal: the same
``.nb2pipe/runs/RUN_ID/`` record, resumable the same way. The server only learns how a run
stands by reading that record (``run.json``), and whether the process still lives.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe.compiler import compile_source, read_notebook_text
from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import read_regular_file
from nb2pipe.ir import DEPLOYMENT_OUTPUT
from nb2pipe.processes import spawn
from nb2pipe.runners import state as states
from nb2pipe.runners.local import METRICS_SCHEMA
from nb2pipe.runners.parameters import coerce_parameters
from nb2pipe.runners.run_folder import (
    INDEX_FILE,
    STEP_REPORT,
    check_run_id,
    is_running,
    new_run_id,
    recent_runs,
    run_finished,
    run_started,
)

#: run statuses this module adds to run.json's own: before run.json exists
STARTING = "starting"
FINISHED_RUN = frozenset({states.SUCCEEDED, states.FAILED, states.INTERRUPTED})
_LOG_LINES = 40
#: runs a notebook's history shows
HISTORY_RUNS = 20


class UnknownRun(Nb2PipeError, KeyError):
    """No run of that id was started here (a KeyError too, for callers that expect one)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown run"


class RunFolderOutsideRoot(Nb2PipeError):
    """The notebook's ``.nb2pipe/`` leads outside the server's root (a symbolic link)."""


class NoReport(Nb2PipeError):
    """The run has no such report (yet): the overview is written when the run ends, a step's
    report when that step ends (404)."""


class RunInProgress(Nb2PipeError):
    """A run of the notebook is still going: a second one would race it for the notebook's
    runs, models and endpoints. ``run_id`` names the running one."""

    def __init__(self, run_id: str, notebook: str) -> None:
        super().__init__(f"run {run_id} of {notebook} is still running; wait for it to end")
        self.run_id = run_id


@dataclass(frozen=True)
class StepView:
    name: str
    status: str
    seconds: float | None
    #: running, but started before its inputs exist: waiting for them, not computing yet
    waiting: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": self.seconds, "waiting": self.waiting}


@dataclass(frozen=True)
class RunView:
    """A run as it stands: the Run of jupyter_extension/API.md."""

    run_id: str
    notebook: str
    status: str
    steps: tuple[StepView, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    failures: tuple[Mapping[str, Any], ...] = ()
    endpoints: tuple[Mapping[str, Any], ...] = ()
    log: str | None = None
    #: the first failed step's place in the notebook: {"step", "cell", "line", "message"}
    failure: Mapping[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.status in FINISHED_RUN

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "notebook": self.notebook,
            "status": self.status,
            "done": self.done,
            "steps": [s.to_json() for s in self.steps],
            "metrics": dict(self.metrics),
            "failures": [dict(f) for f in self.failures],
            "endpoints": [dict(e) for e in self.endpoints],
            "log": self.log,
            "failure": dict(self.failure) if self.failure is not None else None,
        }


@dataclass
class _Started:
    run_id: str
    shown: str
    run_dir: Path
    log: Path
    process: subprocess.Popen[bytes]
    #: task names in the order the editor's graph shows them
    order: tuple[str, ...]
    #: the notebook's resolved path
    notebook: Path | None = None


class BackgroundRuns:
    """The runs one Jupyter server started. ``root``: the server's root directory, against
    which notebooks are named in views (absolute paths outside it)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self._runs: dict[str, _Started] = {}
        self._lock = threading.Lock()

    def start(self, notebook: Path, parameters: Mapping[str, str] | None = None) -> RunView:
        """Compile (raising :class:`~nb2pipe.errors.CompileError` as compiling does, and
        :class:`Nb2PipeError` for a bad parameter) before anything starts, then start
        ``nb2pipe run`` with a run id chosen here, so :meth:`get` finds it at once.
        :class:`RunInProgress` while a run of the same notebook still runs, started here or
        anywhere else (a terminal, another server)."""

        path = Path(notebook).resolve()
        plan = compile_source(read_notebook_text(path), str(path)).plan
        assignments = [f"{name}={value}" for name, value in (parameters or {}).items()]
        coerce_parameters(plan.parameters, assignments)  # refuse a bad value now, not in the log
        workdir = path.parent / ".nb2pipe"
        order = tuple(
            [s.name for s in plan.steps]
            + [n for t in plan.lifecycle for n in (t.register_task, t.deploy_task) if n]
            + [name for t in plan.lifecycle for _, name in t.explain_tasks]
            + [d.task for d in plan.drift]
        )
        # the run hands the notebook's MLflow URI to its steps itself (LocalRun.tracking_uri)
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self._lock:
            self._reap()
            running = self._running(path)
            if running is not None:
                raise RunInProgress(running.run_id, running.shown)
            elsewhere = _running_elsewhere(workdir / "runs", path.name)
            if elsewhere is not None:  # ``nb2pipe run`` in a terminal, or another server
                raise RunInProgress(elsewhere, self._shown(path))
            # checked again here, next to the writes: the route checked before compiling
            if self.root is not None and not workdir.resolve().is_relative_to(self.root):
                raise RunFolderOutsideRoot(f"{self._shown(path)}: its .nb2pipe folder leads outside the root")
            run_id = new_run_id(workdir / "runs", plan.name, taken=self._runs.keys())
            log = workdir / "logs" / f"{run_id}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, "-m", "nb2pipe", "run", str(path), "--workdir", str(workdir)]
            # no --json: the log keeps the progress lines and ends in readable text; the
            # view reads the run's outcome from run.json
            command += ["--run-id", run_id]
            for assignment in assignments:
                command += ["--param", assignment]
            # a session of its own: the run outlives the server, and a signal to the
            # server's process group does not reach it
            process = spawn(command, log=log, env=environment, cwd=path.parent)
            started = _Started(run_id, self._shown(path), workdir / "runs" / run_id, log, process, order, path)
            self._runs[run_id] = started
        # wait() in a thread reaps the child the moment it ends: no zombie while nobody asks
        threading.Thread(target=process.wait, name=f"nb2pipe-run-{run_id}", daemon=True).start()
        return RunView(run_id, started.shown, STARTING)

    def get(self, run_id: str) -> RunView:
        """How the run stands; :class:`UnknownRun` for an id this object did not start."""
        with self._lock:
            self._reap()
            started = self._runs.get(run_id)
        if started is None:
            raise UnknownRun(f"no run {run_id!r} was started by this server")
        return _view(started, started.process.poll())

    def report(self, run_id: str, step: str | None = None, notebook: Path | None = None) -> bytes:
        """The HTML of the run's overview (``index.html``), or of ``step``'s report (a step or
        task name). A run this object did not start is looked for beside ``notebook``.
        :class:`NoReport` when there is none (yet), :class:`UnknownRun` for no such run;
        a report that leads out of the run folder or the root is no report."""
        run_dir = self._run_dir(run_id, notebook)
        if step is None:
            target = run_dir / INDEX_FILE
        else:
            try:
                run = states.RunState.load(run_dir)
            except (Nb2PipeError, TypeError, KeyError):
                raise NoReport(f"run {run_id} has no record yet") from None
            tasks = [s.task for s in run.steps.values() if step in (s.task, s.step)]
            if not tasks:
                raise NoReport(f"run {run_id} has no step {step!r}")
            target = run_dir / tasks[0] / STEP_REPORT
        shown = f"step {step!r} of run {run_id}" if step else f"run {run_id}"
        leads = target.resolve()
        inside = leads.is_relative_to(run_dir.resolve()) and (self.root is None or leads.is_relative_to(self.root))
        if not inside:
            raise NoReport(f"the report of {shown} leads outside its run folder")
        try:
            return read_regular_file(leads)
        except FileNotFoundError:
            raise NoReport(f"no report of {shown} yet") from None
        except OSError as exc:
            raise NoReport(f"the report of {shown} cannot be read ({exc.strerror})") from None

    def history(self, notebook: Path, limit: int = HISTORY_RUNS) -> list[dict[str, Any]]:
        """The notebook's last ``limit`` runs, newest first, from its ``.nb2pipe/runs/``
        (runs from a terminal or an earlier server included): run id, status, started and
        finished (epoch seconds, or null). A run this object started reads as its view does
        (a record left running by a dead process is interrupted)."""
        path = Path(notebook).resolve()
        with self._lock:
            self._reap()
            live = {run_id: started for run_id, started in self._runs.items() if started.notebook == path}
        rows = []
        for run in recent_runs(path.parent / ".nb2pipe" / "runs", path.name, limit):
            status = run.status
            started = live.get(run.run_id)
            if started is not None and status == states.RUNNING and started.process.poll() is not None:
                status = states.INTERRUPTED
            finished = run_finished(run) if status == run.status else None
            rows.append({"run_id": run.run_id, "status": status, "started": run_started(run), "finished": finished})
        return rows

    def _run_dir(self, run_id: str, notebook: Path | None) -> Path:
        with self._lock:
            started = self._runs.get(run_id)
        if started is not None:
            return started.run_dir
        if notebook is not None:
            try:
                run_dir = Path(notebook).resolve().parent / ".nb2pipe" / "runs" / check_run_id(run_id)
            except Nb2PipeError:
                raise UnknownRun(f"no run {run_id!r}: not a run id") from None
            if (run_dir / states.STATE_FILE).is_file():
                return run_dir
        raise UnknownRun(
            f"no run {run_id!r} was started by this server" + (" or kept beside the notebook" if notebook else "")
        )

    def run_ids(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def _running(self, notebook: Path) -> _Started | None:
        """The run of ``notebook`` whose process still runs (its exit, a crash included, ends it)."""
        for started in self._runs.values():
            if started.notebook == notebook and started.process.poll() is None:
                return started
        return None

    def _reap(self) -> None:
        """Collect the exit status of every finished child (the waiting threads do too)."""
        for started in self._runs.values():
            started.process.poll()

    def _shown(self, path: Path) -> str:
        if self.root is not None and path.is_relative_to(self.root):
            return path.relative_to(self.root).as_posix()
        return str(path)


def _view(started: _Started, exit_code: int | None) -> RunView:
    record = started.run_dir / states.STATE_FILE
    run = None
    if record.is_file():
        try:
            run = states.RunState.load(started.run_dir)
        except (Nb2PipeError, TypeError):  # written atomically; damaged only by hand
            run = None
    if run is None:
        if exit_code is None:
            return RunView(started.run_id, started.shown, STARTING)
        return RunView(started.run_id, started.shown, states.FAILED, log=_tail(started.log))
    status = run.status
    if status == states.RUNNING and exit_code is not None:
        status = states.INTERRUPTED  # the process ended (killed) without finishing its record
    rank = {name: index for index, name in enumerate(started.order)}
    ordered = sorted(
        run.steps.values(), key=lambda s: (rank.get(s.step, rank.get(s.task, len(rank))), s.started or 0.0, s.task)
    )
    metrics: dict[str, Any] = {}
    failures, endpoints = [], []
    failure: dict[str, Any] | None = None
    for step in ordered:
        for output_name, output in sorted(step.outputs.items()):
            if output.get("schema_title") == METRICS_SCHEMA:
                metrics.update(output.get("metadata", {}))
            elif output_name == DEPLOYMENT_OUTPUT:
                served = output.get("metadata", {})
                if served.get("deployed") and served.get("url"):
                    endpoints.append({"service": served.get("service"), "url": served["url"]})
        if step.error:
            failures.append({"step": step.step, "message": step.error.get("message", "")})
            if failure is None:  # the first in graph order: where the notebook went wrong
                failure = {
                    "step": step.step,
                    "cell": step.error.get("cell"),
                    "line": step.error.get("line"),
                    "message": step.error.get("message", ""),
                }
    return RunView(
        run_id=started.run_id,
        notebook=started.shown,
        status=status,
        steps=tuple(StepView(s.step, s.status, s.seconds, s.waiting and s.status == states.RUNNING) for s in ordered),
        metrics=metrics,
        failures=tuple(failures),
        endpoints=tuple(endpoints),
        log=_tail(started.log) if status in (states.FAILED, states.INTERRUPTED) else None,
        failure=failure if status == states.FAILED else None,
    )


def _tail(log: Path, lines: int = _LOG_LINES) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _running_elsewhere(runs_dir: Path, notebook_name: str) -> str | None:
    """The id of a run of the notebook that a process still runs, started anywhere."""
    for run in recent_runs(runs_dir, notebook_name):
        if run.status == states.RUNNING and is_running(runs_dir / run.run_id):
            return run.run_id
    return None
