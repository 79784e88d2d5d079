"""`nb2pipe run` always ends: steps that end the process early, end without their outputs,
run past their timeout or outlive their runner fail clearly; values only their library can
save are handed on; a step's report shows each displayed value once."""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nb2pipe.runners.local import RunResult, run_notebook
from nb2pipe.runners.state import RunState
from nb2pipe.runtime.step import ERROR_MARKER, StepError, load_value, run_step, save_value
from tests.support.nbtools import code, notebook, write_notebook
from tests.support.step_processes import alive, descendants, record_pids, recorded_pids, wait_until_ended

#: far beyond what any of these runs needs (1-3 s), short of a hang
RUN_LIMIT_SECONDS = 90


@pytest.fixture
def bounded() -> Iterator[None]:
    """A run that hangs fails the test instead of stopping the suite."""

    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError(f"the run did not end within {RUN_LIMIT_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(RUN_LIMIT_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def statuses(result: RunResult) -> dict[str, str]:
    return {step.step: step.status for step in result.steps}


def three_steps(folder: Path, middle: str, *tags: str, name: str = "nb.ipynb") -> Path:
    """first -> second (``middle`` at its line 2) -> third, which reads second's value."""
    nb = notebook(
        code("import os\nimport sys", "imports"),
        code("base = 20", "step:first"),
        code(f"value = base + 1\n{middle}\nvalue += 1", "step:second", *tags),
        code("result = value * 2", "step:third"),
        code("result", "metrics"),
    )
    return write_notebook(folder, nb, name)


# --- 1. a step cannot end the process early ---------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("form", "told"),
    [
        ("exit()", "the cell called exit();"),
        ("quit()", "the cell called quit();"),
        ("sys.exit(0)", "the cell called sys.exit(0);"),
        ("raise SystemExit", "the cell ran raise SystemExit;"),
        ("sys.exit('no more')", "the cell called sys.exit('no more');"),
    ],
)
def test_ending_the_process_fails_the_step_at_its_cell_and_resume_reruns_it(
    tmp_path: Path, bounded: None, form: str, told: str
):
    path = three_steps(tmp_path, form)
    started = time.monotonic()
    result = run_notebook(path, workdir=tmp_path / "work")
    assert time.monotonic() - started < 30
    assert result.status == "failed"
    assert statuses(result) == {"first": "succeeded", "second": "failed", "third": "skipped"}
    (failure,) = result.failures
    assert (failure.step, failure.notebook, failure.cell, failure.line) == ("second", "nb.ipynb", 2, 2)
    assert failure.message.startswith(told)
    assert "a pipeline step cannot end the process early: remove it, or raise an exception" in failure.message
    assert 'File "<nb.ipynb cell 3>", line 2' in failure.traceback and form in failure.traceback
    assert "step 'second' failed at nb.ipynb, cell 3, line 2:" in failure.describe()
    assert told in (result.run_dir / "second" / "report.html").read_text()

    # the fix keeps `sys` in use where the form used it: an import nothing uses runs in every
    # step (it may be there for its side effects), which would change the first step too
    three_steps(tmp_path, "sys.stdout.flush()" if "sys" in form else "pass")
    resumed = run_notebook(path, workdir=tmp_path / "work", resume=result.run_id)
    assert resumed.status == "succeeded"
    assert {s.step: s.reused for s in resumed.steps} == {"first": True, "second": False, "third": False}
    assert resumed.metrics == {"result": 44.0}


def test_system_exit_in_the_runtime_is_a_step_error_with_its_cell_and_line(capsys: pytest.CaptureFixture[str]):
    spec = {"step": "s", "notebook": "nb.ipynb", "prelude": [], "replays": [], "metrics": []}
    spec["cells"] = [[4, 7, 3, "import sys\nif True:\n    sys.exit(3)"]]
    with pytest.raises(StepError, match=r"the cell called sys.exit\(3\); a pipeline step cannot end"):
        run_step(spec, parameters={}, inputs={}, outputs={})
    record = json.loads(capsys.readouterr().err.split(ERROR_MARKER)[1])
    assert (record["cell"], record["line"], record["error"]) == (4, 5, "StepError")


# --- 1b. a step that ends without its outputs failed -------------------------------------


@pytest.mark.slow
def test_a_step_that_exits_0_without_its_outputs_fails_and_its_children_are_skipped(tmp_path: Path, bounded: None):
    # os._exit skips everything: the component process ends with 0 and kfp.local calls it a success
    path = three_steps(tmp_path, "os._exit(0)")
    result = run_notebook(path, workdir=tmp_path / "work")
    assert statuses(result) == {"first": "succeeded", "second": "failed", "third": "skipped"}
    log = (result.run_dir / "second" / "step.log").read_text()
    assert "finished with status" in log and "SUCCESS" in log
    (failure,) = result.failures
    assert failure.message == "step 'second' ended without writing its outputs nb2pipe_report, value"
    assert failure.describe().startswith(failure.message + " (see ")
    state = RunState.load(result.run_dir)
    assert state.steps["second"].error["message"] == failure.message
    assert state.steps["second"].outputs == {}


# --- 1c. a waiting step never waits for a runner that is gone ----------------------------


def test_waiting_for_an_input_gives_up_when_the_runner_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    monkeypatch.setenv("NB2PIPE_RUNNER_PID", str(gone.pid))
    started = time.monotonic()
    with pytest.raises(StepError, match="the run that started this step has ended"):
        load_value(str(tmp_path / "never-written"), wait=True)
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_steps_end_on_their_own_when_the_runner_is_killed(tmp_path: Path):
    producer, waiter = tmp_path / "producer.pids", tmp_path / "waiter.pids"
    nb = notebook(
        code("import os\nimport time", "imports"),
        code(
            f"{record_pids(producer)}\nwhile not os.path.exists('go.flag'):\n    time.sleep(0.05)\nitems = [1]",
            "step:slow",
        ),
        code(f"{record_pids(waiter)}\ntotal = sum(items)", "step:reader"),
    )
    path = write_notebook(tmp_path, nb, "orphan.ipynb")
    runner = subprocess.Popen(
        [sys.executable, "-m", "nb2pipe", "run", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline, steps = time.time() + 60, {}
        while time.time() < deadline:
            found = list((tmp_path / ".nb2pipe" / "runs").glob("*/run.json"))
            steps = json.loads(found[0].read_text())["steps"] if found else {}
            if steps and steps["slow"]["status"] == steps["reader"]["status"] == "running":
                break
            time.sleep(0.1)
        assert steps["reader"]["waiting"], "the reader should have started early, waiting for its input"
        pids = recorded_pids(producer)
        assert alive(pids) == pids, "the producing step should still be waiting for its flag"
        below = descendants(runner.pid)
        assert set(pids) <= set(below)
    finally:
        runner.kill()
        runner.wait()
    assert not waiter.exists(), "the reader's code must not start: its input never came"
    assert not wait_until_ended(below, timeout=10), "steps (or the fork server) outlived their runner"


# --- 1d. timeout: -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_step_past_its_timeout_is_stopped_and_fails(tmp_path: Path, bounded: None):
    spinner = tmp_path / "spinner.pids"
    path = three_steps(tmp_path, f"{record_pids(spinner)}\nwhile True:\n    pass", "timeout:1")
    started = time.monotonic()
    result = run_notebook(path, workdir=tmp_path / "work")
    assert time.monotonic() - started < 30
    assert statuses(result) == {"first": "succeeded", "second": "failed", "third": "skipped"}
    (failure,) = result.failures
    assert failure.message == "step 'second' timed out after 1 s and was stopped"
    assert failure.describe().startswith(failure.message + " (see ")
    assert 1.0 <= result.steps[1].seconds < 10
    assert not alive(recorded_pids(spinner, timeout=0))


@pytest.mark.slow
def test_input_in_a_step_fails_instead_of_waiting_for_a_keyboard(tmp_path: Path, bounded: None):
    path = three_steps(tmp_path, "answer = input('continue? ')")
    result = run_notebook(path, workdir=tmp_path / "work")
    assert statuses(result) == {"first": "succeeded", "second": "failed", "third": "skipped"}
    (failure,) = result.failures
    assert (failure.cell, failure.line, failure.error) == (2, 2, "EOFError")


# --- 2. values only their own library can save -------------------------------------------


def test_an_xgboost_dmatrix_is_saved_in_xgboosts_own_format(tmp_path: Path):
    import xgboost as xgb

    features = np.arange(12, dtype=float).reshape(6, 2)
    matrix = xgb.DMatrix(features, label=[0, 1, 0, 1, 0, 1], feature_names=["f", "g"])
    described = save_value(matrix, str(tmp_path / "dtrain"), "dtrain")
    assert (described["format"], described["file"]) == ("xgboost-dmatrix", "value.dmatrix")
    loaded = load_value(str(tmp_path / "dtrain"))
    assert isinstance(loaded, xgb.DMatrix)
    assert (loaded.num_row(), loaded.num_col(), loaded.feature_names) == (6, 2, ["f", "g"])
    assert loaded.get_label().tolist() == [0, 1, 0, 1, 0, 1]
    booster = xgb.train({"max_depth": 2}, loaded, num_boost_round=2)
    assert save_value(booster, str(tmp_path / "booster"))["format"] == "joblib"  # models still go to joblib


def test_a_lightgbm_dataset_is_saved_in_lightgbms_own_format(tmp_path: Path):
    import lightgbm as lgb

    features = np.arange(40, dtype=float).reshape(20, 2)
    data = lgb.Dataset(features, label=np.arange(20) % 2, feature_name=["f", "g"], params={"verbose": -1})
    described = save_value(data, str(tmp_path / "data"), "data")
    assert (described["format"], described["file"]) == ("lightgbm-dataset", "value.lgbdata")
    loaded = load_value(str(tmp_path / "data"))
    assert isinstance(loaded, lgb.Dataset)
    loaded.construct()
    assert (loaded.num_data(), loaded.num_feature(), loaded.feature_name) == (20, 2, ["f", "g"])
    assert loaded.get_label().tolist() == (np.arange(20) % 2).tolist()


def test_a_value_that_cannot_be_saved_is_named_with_its_type_and_a_fix(tmp_path: Path):
    import xgboost as xgb

    quantiles = xgb.QuantileDMatrix(np.arange(12, dtype=float).reshape(6, 2), label=[0, 1] * 3)
    for name, value, kind in [
        ("dtrain", quantiles, "xgboost.core.QuantileDMatrix"),
        ("handle", ctypes.c_char_p(b"x"), "ctypes.c_char_p"),
    ]:
        with pytest.raises(StepError) as caught:
            save_value(value, str(tmp_path / name), name)
        message = str(caught.value)
        assert message.startswith(f"{name!r} (a {kind}) cannot be saved for the steps after this one")
        assert "pass the data it is built from" in message
        assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_dmatrix_passes_between_steps_of_a_run(tmp_path: Path, bounded: None):
    nb = notebook(
        code("import numpy as np\nimport xgboost as xgb", "imports"),
        code(
            "features = np.arange(40, dtype=float).reshape(20, 2)\n"
            "dtrain = xgb.DMatrix(features, label=(np.arange(20) % 2).astype(float))",
            "step:data",
        ),
        code("booster = xgb.train({'max_depth': 2}, dtrain, num_boost_round=3)\nrows = dtrain.num_row()", "step:train"),
        code("rows", "metrics"),
    )
    result = run_notebook(write_notebook(tmp_path, nb, "xgb.ipynb"), workdir=tmp_path / "work")
    assert result.status == "succeeded", result.failures
    assert result.metrics == {"rows": 20.0}
    assert (result.run_dir / "data" / "dtrain" / "value.dmatrix").is_file()


# --- 3. the report shows each value once ------------------------------------------------


def test_the_report_shows_each_displayed_value_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    report = SimpleNamespace(path=str(tmp_path / "report.html"), metadata={})
    cells = [
        # the values are built from parts: the report also shows each cell's source
        [1, 1, 1, "import pandas as pd\nframe = pd.DataFrame({'unique' + '_column': [12345]})\nframe"],
        [2, 2, 1, "class Thing:\n    def __repr__(self):\n        return 'Thing-' + 'repr-42'\ndisplay(Thing())"],
        [3, 3, 1, "print('printed' + '-once')\n'a-string' + '-value'"],
    ]
    spec = {"step": "s", "notebook": "nb.ipynb", "prelude": [], "replays": [], "cells": cells, "metrics": []}
    run_step(spec, parameters={}, inputs={}, outputs={}, report=report)
    html = Path(report.path).read_text()
    assert html.count("unique_column") == 1 and "<table" in html
    assert html.count("Thing-repr-42") == 1
    assert html.count("printed-once") == 1 and html.count("a-string-value") == 1
    printed = capsys.readouterr().out  # the step's log still shows every value
    assert "unique_column" in printed and "Thing-repr-42" in printed and "a-string-value" in printed
