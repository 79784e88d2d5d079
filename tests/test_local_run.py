"""A compiled pipeline really runs on the embedded engine (kfp.local, subprocess runner)
and gives the values a top-to-bottom notebook run gives."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from nb2pipe.compiler import compile_source
from tests.support.nbtools import EXAMPLES

pytestmark = pytest.mark.slow  # runs notebooks in a kernel and on kfp.local


def notebook_values(path: Path, names: list[str], workdir: Path) -> dict[str, float]:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(f"import json; print(json.dumps({{n: globals()[n] for n in {names!r}}}))")
    )
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    return json.loads(nb.cells[-1].outputs[0]["text"])


def test_parameters_metrics_pipeline_runs_locally_and_matches_the_notebook(tmp_path: Path, monkeypatch):
    from kfp import local
    from kfp.components import load_component_from_text

    monkeypatch.chdir(tmp_path)
    example = EXAMPLES / "parameters_metrics.ipynb"
    compiled = compile_source(example.read_text(), example.name)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    pipeline = load_component_from_text(compiled.yaml)
    pipeline()

    (fit_output,) = (tmp_path / "root").glob("*/fit/executor_output.json")
    metrics = json.loads(fit_output.read_text())["artifacts"]["nb2pipe_metrics"]["artifacts"][0]["metadata"]
    expected = notebook_values(example, ["mse", "r2"], tmp_path)
    assert metrics == pytest.approx(expected, rel=1e-12)
    assert 0.9 < metrics["r2"] < 1.0


def test_mutations_replays_and_awkward_names_survive_a_local_run(tmp_path: Path, monkeypatch):
    from kfp import local
    from kfp.components import load_component_from_text

    from tests.support.nbtools import code, notebook, write_notebook

    nb = notebook(
        code("import math", "imports"),
        code("factor = 3", "parameters"),
        code(
            "items = [1, 2]\nrun_step = 10\nfrom sklearn.linear_model import LinearRegression\n"
            "model = LinearRegression()\ndef scaled(x):\n    return x * factor * run_step",
            "step:make",
        ),
        code("items.append(5)\nmodel.fit([[0.0], [1.0], [2.0]], [0.0, 2.0, 4.0])", "step:change"),
        code("class Box:\n    def __init__(self, v):\n        self.v = v\nbox = Box(len(items))", "step:boxes"),
        code(
            "total = sum(items) + scaled(1) + box.v\nslope = float(model.coef_[0])\narea = math.pi * run_step",
            "step:summarise",
        ),
        code("total\nslope\narea", "metrics"),
    )
    path = write_notebook(tmp_path, nb, "awkward.ipynb")
    monkeypatch.chdir(tmp_path)
    compiled = compile_source(path.read_text(), path.name)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    load_component_from_text(compiled.yaml)()

    (output,) = (tmp_path / "root").glob("*/summarise/executor_output.json")
    metrics = json.loads(output.read_text())["artifacts"]["nb2pipe_metrics"]["artifacts"][0]["metadata"]
    assert metrics == pytest.approx(notebook_values(path, ["total", "slope", "area"], tmp_path))
    assert metrics["total"] == 8 + 30 + 3
