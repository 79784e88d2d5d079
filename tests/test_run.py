"""`nb2pipe run`: the compiled pipeline on kfp.local gives the notebook's results."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nb2pipe.analysis.names import analyze_cell
from nb2pipe.compiler import compile_source
from nb2pipe.errors import Nb2PipeError
from nb2pipe.runners.local import run_notebook
from nb2pipe.runners.run_folder import load_variables
from nb2pipe.runners.state import RunState
from tests.support.equivalence import notebook_final_variables, same
from tests.support.example_runs import ExampleRun
from tests.support.nbtools import EXAMPLES, code, notebook, write_notebook
from tests.support.step_processes import record_pids, recorded_pids, wait_until_ended

pytestmark = pytest.mark.slow  # every test runs notebooks on kfp.local

EXAMPLE_NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


@pytest.mark.parametrize("path", EXAMPLE_NOTEBOOKS, ids=[p.stem for p in EXAMPLE_NOTEBOOKS])
def test_pipeline_run_leaves_the_notebooks_final_variables_and_metrics(
    path: Path, tmp_path: Path, example_run: ExampleRun
):
    result, _ = example_run(path)
    assert result.status == "succeeded", result.failures
    pipeline = load_variables(result.run_dir)
    expected = notebook_final_variables(path, tmp_path)

    plan = compile_source(path.read_text(), path.name).plan
    outside_steps = {p.name for p in plan.parameters} | {
        e.name for block in plan.prelude for e in analyze_cell(block.source).events if e.kind == "bind"
    }
    assert set(pipeline) == set(expected) - outside_steps
    assert pipeline, "the example leaves no variables to compare"
    for name in sorted(pipeline):
        same(pipeline[name], expected[name], name)
    metric_names = [m for step in plan.steps for m in step.metrics]
    # nb2pipe's own drift and explain tasks log metrics of their own beside the notebook's
    logged = {name: value for name, value in result.metrics.items() if name in metric_names}
    assert logged == {name: pytest.approx(float(expected[name]), rel=0, abs=0) for name in metric_names}


def test_param_changes_what_the_metrics_report(tmp_path: Path):
    example = EXAMPLES / "parameters_metrics.ipynb"
    default = run_notebook(example, workdir=tmp_path)
    noisy = run_notebook(example, workdir=tmp_path, parameters=["noise=2.0", "n_samples=400"])
    assert default.status == noisy.status == "succeeded"
    assert noisy.metrics["mse"] > default.metrics["mse"] * 4
    assert RunState.load(noisy.run_dir).parameters == {"noise": 2.0, "n_samples": 400}
    with pytest.raises(Nb2PipeError, match="no such parameter; parameters are: coefficients"):
        run_notebook(example, workdir=tmp_path, parameters=["nosie=1"])
    with pytest.raises(Nb2PipeError, match="n_samples is a int parameter"):
        run_notebook(example, workdir=tmp_path, parameters=["n_samples=many"])


def test_cli_json_report_steps_metrics_and_html(tmp_path: Path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nb2pipe",
            "run",
            str(EXAMPLES / "sklearn_train.ipynb"),
            "--json",
            "--workdir",
            str(tmp_path),
            "--param",
            "n_estimators=20",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded"
    assert [s["name"] for s in report["steps"]] == ["load_data", "preprocess", "train", "evaluate"]
    assert all(s["status"] == "succeeded" and s["seconds"] >= 0 for s in report["steps"])
    assert set(report["metrics"]) == {"accuracy", "f1"}
    run_dir = Path(report["outputs_dir"])
    assert run_dir.parent == tmp_path / "runs"
    html = (run_dir / "load-data" / "report.html").read_text()
    assert "<table" in html and "mean radius" in html  # df.head() shown as a table
    assert "accuracy=" in (run_dir / "evaluate" / "report.html").read_text()  # printed output
    assert (run_dir / "train" / "model" / "model.joblib").is_file()
    assert "evaluate" in (run_dir / "index.html").read_text()


def failing_notebook(folder: Path, broken: bool) -> Path:
    cell = "value = base * 2\nraise ValueError('bad value')" if broken else "value = base * 2"
    nb = notebook(
        code("import time", "imports"),
        code("base = 21\nopen('first-ran.txt', 'a').write('x')", "step:first"),
        code(cell, "step:second"),
        code("result = value + 1", "step:third"),
        code("result", "metrics"),
    )
    return write_notebook(folder, nb, "failing.ipynb")


def test_failure_names_cell_and_line_and_resume_finishes_without_rerunning(tmp_path: Path):
    path = failing_notebook(tmp_path, broken=True)
    done = subprocess.run([sys.executable, "-m", "nb2pipe", "run", str(path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "step 'second' failed at failing.ipynb, cell 3, line 2:" in done.stderr
    assert 'File "<failing.ipynb cell 3>", line 2' in done.stderr and "ValueError: bad value" in done.stderr
    assert "--resume" in done.stderr
    run_dir = Path(done.stdout.split("outputs: ")[1].strip())
    state = RunState.load(run_dir)
    assert {n: s.status for n, s in state.steps.items()} == {
        "first": "succeeded",
        "second": "failed",
        "third": "skipped",
    }
    assert (run_dir / "first" / "base").is_dir()  # completed steps keep what they made

    failing_notebook(tmp_path, broken=False)
    result = run_notebook(path, resume=state.run_id)
    assert result.status == "succeeded"
    assert {s.step: s.reused for s in result.steps} == {"first": True, "second": False, "third": False}
    assert (tmp_path / "first-ran.txt").read_text() == "x"  # the first step ran once
    assert result.metrics == {"result": 43.0}
    # the reused step keeps the outputs it made in the first run, in the run's state too
    resumed = RunState.load(run_dir.parent / result.run_id)
    first = resumed.steps["first"]
    assert first.reused and not first.waiting
    assert first.outputs == state.steps["first"].outputs and "base" in first.outputs


def test_ctrl_c_stops_cleanly_and_resume_works(tmp_path: Path):
    flag, slow_pids = tmp_path / "slow.flag", tmp_path / "slow.pids"
    flag.write_text("on")
    nb = notebook(
        code("import os\nimport time", "imports"),
        code("items = list(range(5))", "step:quick"),
        code(
            f"{record_pids(slow_pids)}\nwhile os.path.exists('slow.flag'):\n    time.sleep(0.05)\ntotal = sum(items)",
            "step:slow",
        ),
        code("print(total)", "step:after"),
    )
    path = write_notebook(tmp_path, nb, "slow.ipynb")
    process = subprocess.Popen(
        [sys.executable, "-m", "nb2pipe", "run", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 60
    state_file = None
    while time.time() < deadline:
        found = list((tmp_path / ".nb2pipe" / "runs").glob("*/run.json"))
        steps = json.loads(found[0].read_text())["steps"] if found else {}
        if steps and steps["quick"]["status"] == "succeeded" and steps["slow"]["status"] == "running":
            state_file = found[0]
            break
        time.sleep(0.1)
    assert state_file is not None, "the slow step never started"
    recorded_pids(slow_pids)  # the step's code is running
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "--resume" in err
    state = RunState.load(state_file.parent)
    assert state.status == "interrupted"
    assert state.steps["quick"].status == "succeeded" and state.steps["slow"].status == "interrupted"
    assert not list(state_file.parent.rglob("*.partial*"))
    assert not (state_file.parent / "slow").exists()
    assert not wait_until_ended(recorded_pids(slow_pids, timeout=0), timeout=5)

    flag.unlink()
    result = run_notebook(path, resume=state.run_id)
    assert result.status == "succeeded"
    assert {s.step: s.reused for s in result.steps} == {"quick": True, "slow": False, "after": False}


def test_independent_steps_run_at_the_same_time(tmp_path: Path):
    result = run_notebook(EXAMPLES / "kale_five_models.ipynb", workdir=tmp_path, parallel=2)
    assert result.status == "succeeded"
    models = [
        s for s in result.steps if s.step in ("decisiontree", "naivebayes", "logisticregression", "randomforest", "knn")
    ]
    overlapping = [
        (a.step, b.step)
        for i, a in enumerate(models)
        for b in models[i + 1 :]
        if a.started < b.finished and b.started < a.finished
    ]
    assert overlapping
