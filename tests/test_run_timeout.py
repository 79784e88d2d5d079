"""Kale's pipeline ``timeout`` (and ``metadata.nb2pipe.timeout``): the whole run's limit, as KFP's
PipelineConfig activeDeadlineSeconds on a cluster, and enforced by ``nb2pipe run`` here."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nb2pipe.compiler import compile_source
from nb2pipe.runners.local import RunInterrupted, run_notebook
from nb2pipe.runners.state import RunState
from tests.support.nbtools import code, diagnostics_of, notebook, notebook_text, write_notebook


def platform_config(yaml_text: str) -> dict:
    documents = list(yaml.safe_load_all(yaml_text))
    return documents[1]["platforms"]["kubernetes"].get("pipelineConfig", {}) if len(documents) > 1 else {}


@pytest.mark.parametrize("section", ["kubeflow_notebook", "nb2pipe"])
def test_the_timeout_becomes_the_runs_active_deadline(section: str):
    nb = notebook(code("x = 1", "step:one"), code("y = x", "step:two"), metadata={section: {"timeout": 3600}})
    assert platform_config(compile_source(notebook_text(nb), "nb.ipynb").yaml) == {"activeDeadlineSeconds": 3600}


def test_without_a_timeout_there_is_no_pipeline_config():
    nb = notebook(code("x = 1", "step:one"))
    assert platform_config(compile_source(notebook_text(nb), "nb.ipynb").yaml) == {}


@pytest.mark.parametrize("value", [0, -5, 1.5, "3600", True])
def test_a_timeout_that_is_no_positive_whole_number_is_an_error(value: object):
    nb = notebook(code("x = 1", "step:one"), metadata={"kubeflow_notebook": {"timeout": value}})
    (found,) = [d for d in diagnostics_of(nb) if d.code == "invalid-metadata"]
    assert "kubeflow_notebook.timeout" in found.message


def test_the_dsl_file_sets_the_same_timeout(tmp_path: Path):
    from nb2pipe.compiler import compile_notebook

    nb = notebook(code("x = 1", "step:one"), metadata={"kubeflow_notebook": {"timeout": 120}})
    path = write_notebook(tmp_path, nb)
    compile_notebook(path, dsl=tmp_path / "nb_dsl.py")
    scratch = tmp_path / "dsl"
    scratch.mkdir()
    subprocess.run([sys.executable, str(tmp_path / "nb_dsl.py")], cwd=scratch, check=True, capture_output=True)
    (compiled,) = scratch.glob("*.yaml")
    assert platform_config(compiled.read_text()) == {"activeDeadlineSeconds": 120}


@pytest.mark.slow
def test_a_local_run_stops_at_the_timeout_and_can_be_resumed(tmp_path: Path):
    nb = notebook(
        code("import time", "imports"),
        code("x = 1", "step:quick"),
        code("time.sleep(60)\ny = x", "step:slow"),
        metadata={"kubeflow_notebook": {"timeout": 3}},
    )
    path = write_notebook(tmp_path, nb)
    began = time.monotonic()
    with pytest.raises(RunInterrupted, match=r"the pipeline's timeout of 3 s passed.*--resume"):
        run_notebook(path, workdir=tmp_path / "work")
    assert time.monotonic() - began < 30  # not the step's 60 s
    (run_dir,) = (tmp_path / "work" / "runs").iterdir()
    state = RunState.load(run_dir)
    assert state.status == "interrupted"
    assert state.steps["slow"].status == "interrupted"
