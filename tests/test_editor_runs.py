"""Background local runs for the editor, ``nb2pipe run --run-id``, and how a run's view reads
its record and its process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nb2pipe.cli import main
from nb2pipe.editor.runs import BackgroundRuns, RunFolderOutsideRoot, UnknownRun, _Started, _view
from nb2pipe.errors import CompileError, Nb2PipeError
from nb2pipe.runners.state import RunState, StepState
from nb2pipe.store.registry import TRACKING_ENV, tracking_uri
from tests.support.nbtools import EXAMPLES, code, notebook, notebook_text


def _copy(tmp_path: Path, name: str = "parameters_metrics.ipynb") -> Path:
    target = tmp_path / name
    shutil.copy(EXAMPLES / name, target)
    return target


def _wait(runs: BackgroundRuns, run_id: str, seconds: float = 180):
    deadline = time.monotonic() + seconds
    view = runs.get(run_id)
    while not view.done and time.monotonic() < deadline:
        time.sleep(0.3)
        view = runs.get(run_id)
    return view


@pytest.mark.slow
def test_a_background_run_reaches_succeeded(tmp_path: Path):
    path = _copy(tmp_path)
    runs = BackgroundRuns(tmp_path)
    started = runs.start(path, {"noise": "0.1"})
    assert started.status == "starting" and started.notebook == "parameters_metrics.ipynb"
    view = _wait(runs, started.run_id)
    assert view.status == "succeeded", view.log
    assert [(s.name, s.status) for s in view.steps] == [("generate", "succeeded"), ("fit", "succeeded")]
    assert set(view.metrics) == {"mse", "r2"} and view.log is None
    record = RunState.load(tmp_path / ".nb2pipe" / "runs" / started.run_id)
    assert record.parameters == {"noise": 0.1}
    assert (tmp_path / ".nb2pipe" / "logs" / f"{started.run_id}.log").is_file()
    process = runs._runs[started.run_id].process
    process.wait(10)
    assert process.returncode == 0  # reaped: no zombie is left
    # a second run started at once gets an id of its own
    again = runs.start(path)
    assert again.run_id != started.run_id
    assert _wait(runs, again.run_id).status == "succeeded"


def test_nothing_starts_when_the_notebook_or_a_parameter_is_wrong(tmp_path: Path):
    runs = BackgroundRuns(tmp_path)
    broken = tmp_path / "broken.ipynb"
    broken.write_text(notebook_text(notebook(code("x = 1", "step:a"), code("y = x", "gpu:many"))), encoding="utf-8")
    with pytest.raises(CompileError) as caught:
        runs.start(broken)
    assert caught.value.diagnostics[0].location.cell == 1
    with pytest.raises(Nb2PipeError, match="no such parameter"):
        runs.start(_copy(tmp_path), {"nosie": "1"})
    assert runs.run_ids() == [] and not (tmp_path / ".nb2pipe").exists()


def test_an_unknown_run_is_a_key_error_and_an_nb2pipe_error():
    runs = BackgroundRuns()
    with pytest.raises(UnknownRun) as caught:
        runs.get("nope")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, Nb2PipeError)
    assert "nope" in str(caught.value)


def _started(tmp_path: Path, script: str) -> _Started:
    log = tmp_path / "run.log"
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-c", script], stdout=output, stderr=subprocess.STDOUT)
    process.wait(30)
    return _Started("r1", "nb.ipynb", tmp_path / "runs" / "r1", log, process, ("a", "b"))


def test_a_process_that_ends_without_a_record_failed_with_its_log(tmp_path: Path):
    started = _started(tmp_path, "print('nb2pipe: cannot start'); raise SystemExit(1)")
    view = _view(started, started.process.poll())
    assert view.status == "failed" and view.done and "cannot start" in (view.log or "")


def test_a_record_left_running_by_a_dead_process_is_interrupted(tmp_path: Path):
    started = _started(tmp_path, "raise SystemExit(-9)")
    started.run_dir.mkdir(parents=True)
    record = RunState("r1", "nb.ipynb", "p", {})
    record.steps = {"b": StepState("b", "b", "pending"), "a": StepState("a", "a", "running", started=1.0)}
    record.save(started.run_dir)
    view = _view(started, started.process.poll())
    assert view.status == "interrupted" and [s.name for s in view.steps] == ["a", "b"]
    # while the process lives, the same record reads as running
    assert _view(started, None).status == "running"


def test_run_id_names_the_run_and_is_never_reused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = _copy(tmp_path)
    workdir = tmp_path / "work"
    assert main(["run", str(path), "--workdir", str(workdir), "--run-id", "mine-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "mine-1"
    assert (workdir / "runs" / "mine-1" / "run.json").is_file()
    assert main(["run", str(path), "--workdir", str(workdir), "--run-id", "mine-1"]) == 1
    assert "run mine-1 already exists" in capsys.readouterr().err
    assert main(["run", str(path), "--workdir", str(workdir), "--run-id", "../escape"]) == 1
    assert "run id '../escape'" in capsys.readouterr().err
    assert main(["run", str(path), "--workdir", str(workdir), "--run-id", "x", "--resume", "mine-1"]) == 1
    assert "--run-id names a new run" in capsys.readouterr().err


def test_the_notebook_tracking_uri_yields_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    assert tracking_uri(tmp_path, "http://mlflow:5000") == "http://mlflow:5000"
    assert tracking_uri(tmp_path, None) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv(TRACKING_ENV, "http://from-env")
    assert tracking_uri(tmp_path, "http://mlflow:5000") == "http://from-env"


def test_a_second_run_of_a_running_notebook_is_refused_until_it_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The runs' processes are stand-ins: each lives until its file ``stop-N`` appears."""
    import nb2pipe.editor.runs as runs_module
    from nb2pipe.editor.runs import RunInProgress
    from nb2pipe.processes import spawn, stop_group

    spawned: list[subprocess.Popen[bytes]] = []

    def stand_in(command: list[str], *, log: Path, **_: object) -> subprocess.Popen[bytes]:
        stop = tmp_path / f"stop-{len(spawned)}"
        wait = f"import os, time\nwhile not os.path.exists({str(stop)!r}): time.sleep(0.05)"
        spawned.append(spawn([sys.executable, "-c", wait], log=log))
        return spawned[-1]

    monkeypatch.setattr(runs_module, "spawn", stand_in)
    path = _copy(tmp_path)
    (tmp_path / "sub").mkdir()
    runs = BackgroundRuns(tmp_path)
    try:
        first = runs.start(path)
        with pytest.raises(RunInProgress) as refused:
            runs.start(tmp_path / "sub" / ".." / path.name, {"noise": "0.1"})  # the same notebook
        assert refused.value.run_id == first.run_id and first.run_id in str(refused.value)
        assert isinstance(refused.value, Nb2PipeError) and runs.run_ids() == [first.run_id]
        other = runs.start(_copy(tmp_path, "lifecycle.ipynb"))  # another notebook runs alongside
        (tmp_path / "stop-0").touch()  # the first run ends
        spawned[0].wait(10)
        second = runs.start(path)
        assert second.run_id not in (first.run_id, other.run_id)
        stop_group(spawned[2])  # a run that crashes (killed) blocks nothing either
        assert runs.start(path).run_id not in runs.run_ids()[:3]
    finally:
        for process in spawned:
            stop_group(process)


def test_a_run_folder_leading_out_of_the_root_is_refused_before_anything_is_written(tmp_path: Path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    path = _copy(root)
    (root / ".nb2pipe").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunFolderOutsideRoot, match="leads outside the root"):
        BackgroundRuns(root).start(path)
    assert list(outside.iterdir()) == []


# --- what a run shows in the panel: waiting steps, the failing cell, reports, history, log ---


def _failed_record(run_dir: Path, run_id: str = "r1", notebook: str = "/x/nb.ipynb") -> RunState:
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunState(run_id, notebook, "p", {}, status="failed")
    error = {"step": "b", "message": "ZeroDivisionError: division by zero", "traceback": "", "log": "b/step.log"}
    record.steps = {
        "a": StepState("a", "a", "succeeded", started=10.0, finished=12.0),
        "b": StepState("b", "b", "failed", started=12.0, finished=13.0, error={**error, "cell": 4, "line": 2}),
    }
    record.save(run_dir)
    return record


def test_a_failed_run_names_the_cell_and_a_waiting_step_is_told_apart(tmp_path: Path):
    started = _started(tmp_path, "raise SystemExit(1)")
    _failed_record(started.run_dir)
    view = _view(started, started.process.poll()).to_json()
    assert view["failure"] == {"step": "b", "cell": 4, "line": 2, "message": "ZeroDivisionError: division by zero"}
    assert [s["waiting"] for s in view["steps"]] == [False, False]
    record = RunState("r1", "nb.ipynb", "p", {})
    record.steps = {
        "a": StepState("a", "a", "running", started=1.0),
        "b": StepState("b", "b", "running", started=1.0, waiting=True),
    }
    record.save(started.run_dir)
    running = _view(started, None).to_json()
    assert running["status"] == "running" and running["failure"] is None
    assert [(s["name"], s["status"], s["waiting"]) for s in running["steps"]] == [
        ("a", "running", False),
        ("b", "running", True),
    ]


def _runs_with(tmp_path: Path, started: _Started) -> BackgroundRuns:
    runs = BackgroundRuns(tmp_path)
    runs._runs[started.run_id] = started
    return runs


def test_the_report_of_a_run_and_of_a_step(tmp_path: Path):
    from nb2pipe.editor.runs import NoReport

    started = _started(tmp_path, "pass")
    runs = _runs_with(tmp_path, started)
    _failed_record(started.run_dir)
    with pytest.raises(NoReport, match="no report of run r1 yet"):
        runs.report("r1")
    (started.run_dir / "index.html").write_text("<h1>r1</h1>", encoding="utf-8")
    (started.run_dir / "a").mkdir()
    (started.run_dir / "a" / "report.html").write_text("<p>a</p>", encoding="utf-8")
    assert runs.report("r1") == b"<h1>r1</h1>" and runs.report("r1", "a") == b"<p>a</p>"
    with pytest.raises(NoReport, match="no report of step 'b'"):
        runs.report("r1", "b")
    with pytest.raises(NoReport, match="has no step 'zz'"):
        runs.report("r1", "zz")
    with pytest.raises(UnknownRun):
        runs.report("r2")
    # a report that is a link out of the run folder, or a folder, is no report
    secret = tmp_path / "secret.html"
    secret.write_text("secret", encoding="utf-8")
    (started.run_dir / "b").mkdir()
    (started.run_dir / "b" / "report.html").symlink_to(secret)
    with pytest.raises(NoReport, match="leads outside its run folder"):
        runs.report("r1", "b")
    (started.run_dir / "index.html").unlink()
    (started.run_dir / "index.html").mkdir()
    with pytest.raises(NoReport, match="cannot be read"):
        runs.report("r1")


def test_a_run_kept_beside_the_notebook_is_found_by_its_notebook(tmp_path: Path):
    notebook = tmp_path / "nb.ipynb"
    run_dir = tmp_path / ".nb2pipe" / "runs" / "old-1"
    _failed_record(run_dir, "old-1", str(notebook))
    (run_dir / "index.html").write_text("old", encoding="utf-8")
    runs = BackgroundRuns(tmp_path)
    assert runs.report("old-1", notebook=notebook) == b"old"
    with pytest.raises(UnknownRun):
        runs.report("old-1")  # without the notebook: not a run of this server
    with pytest.raises(UnknownRun, match="not a run id"):
        runs.report("../old-1", notebook=notebook)


def test_the_history_lists_the_notebooks_runs_newest_first(tmp_path: Path):
    notebook = tmp_path / "nb.ipynb"
    runs_dir = tmp_path / ".nb2pipe" / "runs"
    for index in range(23):
        record = RunState(f"nb-{index}", str(notebook), "p", {}, status="succeeded")
        record.steps = {"a": StepState("a", "a", "succeeded", started=100.0 + index, finished=105.0 + index)}
        (runs_dir / record.run_id).mkdir(parents=True)
        record.save(runs_dir / record.run_id)
    other = RunState("other-1", str(tmp_path / "other.ipynb"), "p", {}, status="succeeded")
    other.steps = {"a": StepState("a", "a", "succeeded", started=500.0, finished=501.0)}
    (runs_dir / "other-1").mkdir()
    other.save(runs_dir / "other-1")
    outside = tmp_path / "outside"
    _failed_record(outside, "planted", str(notebook))
    (runs_dir / "planted").symlink_to(outside, target_is_directory=True)  # a link is left out
    (runs_dir / "damaged").mkdir()
    (runs_dir / "damaged" / "run.json").write_text("{", encoding="utf-8")
    history = BackgroundRuns(tmp_path).history(notebook)
    assert len(history) == 20 and [row["run_id"] for row in history[:2]] == ["nb-22", "nb-21"]
    assert history[0] == {"run_id": "nb-22", "status": "succeeded", "started": 122.0, "finished": 127.0}
    every = [row["run_id"] for row in BackgroundRuns(tmp_path).history(notebook, limit=100)]
    assert sorted(every) == sorted(f"nb-{index}" for index in range(23))  # no link, damaged record, other notebook
    assert BackgroundRuns(tmp_path).history(tmp_path / "none.ipynb") == []


def test_a_run_of_this_server_left_running_by_a_dead_process_is_interrupted_in_the_history(tmp_path: Path):
    notebook = tmp_path / "nb.ipynb"
    started = _started(tmp_path, "raise SystemExit(-9)")
    started.notebook = notebook.resolve()
    started.run_dir = tmp_path / ".nb2pipe" / "runs" / "r1"
    started.run_dir.mkdir(parents=True)
    record = RunState("r1", str(notebook), "p", {})
    record.steps = {"a": StepState("a", "a", "running", started=1.0)}
    record.save(started.run_dir)
    assert BackgroundRuns(tmp_path).history(notebook)[0]["status"] == "running"  # another process's: as recorded
    assert _runs_with(tmp_path, started).history(notebook) == [
        {"run_id": "r1", "status": "interrupted", "started": 1.0, "finished": None}
    ]


def test_the_background_run_logs_readable_lines_not_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import nb2pipe.editor.runs as runs_module
    from nb2pipe.processes import spawn

    commands: list[list[str]] = []

    def stand_in(command: list[str], *, log: Path, **_: object) -> subprocess.Popen[bytes]:
        commands.append(command)
        return spawn([sys.executable, "-c", "pass"], log=log)

    monkeypatch.setattr(runs_module, "spawn", stand_in)
    runs = BackgroundRuns(tmp_path)
    started = runs.start(_copy(tmp_path))
    runs._runs[started.run_id].process.wait(10)
    assert "--json" not in commands[0] and commands[0][commands[0].index("--run-id") + 1] == started.run_id


@pytest.mark.slow
def test_a_run_started_in_a_terminal_is_in_progress_for_the_sidebar_until_its_process_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """``nb2pipe run`` in a terminal holds its run's lock: the sidebar answers 409 (RunInProgress)
    and ``--resume`` of it is refused while it runs; killed, it blocks nothing though its
    record still says running."""
    import nb2pipe.editor.runs as runs_module
    from nb2pipe.editor.runs import RunInProgress
    from nb2pipe.processes import spawn, stop_group
    from nb2pipe.runners.run_folder import is_running

    stop = tmp_path / "stop"
    wait = f"import os, time\nwhile not os.path.exists({str(stop)!r}):\n    time.sleep(0.05)"
    path = tmp_path / "waits.ipynb"
    path.write_text(notebook_text(notebook(code(wait, "step:wait"))), encoding="utf-8")
    workdir = tmp_path / ".nb2pipe"
    command = [sys.executable, "-m", "nb2pipe", "run", str(path), "--workdir", str(workdir), "--run-id", "terminal"]
    terminal = spawn(command, log=tmp_path / "terminal.log", cwd=tmp_path)
    run_dir = workdir / "runs" / "terminal"
    try:
        deadline = time.monotonic() + 120
        while not ((run_dir / "run.json").is_file() and is_running(run_dir)) and time.monotonic() < deadline:
            assert terminal.poll() is None, (tmp_path / "terminal.log").read_text()
            time.sleep(0.1)
        assert is_running(run_dir)
        monkeypatch.setattr(runs_module, "spawn", lambda *_, **__: pytest.fail("a second run started"))
        with pytest.raises(RunInProgress) as refused:
            BackgroundRuns(tmp_path).start(path)
        assert refused.value.run_id == "terminal"
        assert main(["run", str(path), "--workdir", str(workdir), "--resume", "terminal"]) == 1
        assert "nb2pipe: run terminal is running in another process" in capsys.readouterr().err
        assert stop.exists() is False and terminal.poll() is None  # the refused resume cleared nothing
        os.killpg(terminal.pid, signal.SIGKILL)  # no chance to record its end
        terminal.wait(30)
    finally:
        stop_group(terminal)
    # its step process, which shares the lock, notices its runner's death and ends too
    deadline = time.monotonic() + 30
    while is_running(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert RunState.load(run_dir).status == "running" and not is_running(run_dir)
    started: list[list[str]] = []

    def stand_in(command: list[str], *, log: Path, **_: object) -> subprocess.Popen[bytes]:
        started.append(command)
        return spawn([sys.executable, "-c", "pass"], log=log)

    monkeypatch.setattr(runs_module, "spawn", stand_in)
    BackgroundRuns(tmp_path).start(path)
    assert len(started) == 1
