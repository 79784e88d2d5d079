"""Large values through the pipeline's workspace (issue 23 item 2): ``metadata.nb2pipe.workspace``
compiles to KFP's PipelineConfig workspace, every step takes the workspace's path, and a value whose
saved files exceed the threshold is kept there, its artifact holding only a pointer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import json_format

from nb2pipe.emit.dsl_text import emit_dsl_text
from nb2pipe.emit.kfp import emit_pipeline_yaml
from nb2pipe.errors import Diagnostic
from nb2pipe.ir import WORKSPACE_INPUT, PipelinePlan, Workspace
from nb2pipe.notebook.pipeline_settings import pipeline_settings
from nb2pipe.notebook.read import parse_notebook
from nb2pipe.runners.local import LocalRun
from nb2pipe.runners.run_folder import load_variables
from nb2pipe.runners.workspace import WORKSPACE_FOLDER, WORKSPACE_PATH_PLACEHOLDER
from nb2pipe.runtime.values import VALUE_SIDECAR, WORKSPACE_KEY, StepError, Workspace as Large, load_value, save_value
from tests.support.kfpspec import parse_ir
from tests.support.nbtools import code, notebook, notebook_text, plan_of, write_notebook

MIB = 2**20


def _steps() -> dict[str, Any]:
    return notebook(
        code("import numpy as np\nbig = np.arange(5 * 2**20 // 8, dtype='float64')\nsmall = [1, 2, 3]", "step:make"),
        code("total = float(big.sum()) + sum(small)", "step:use"),
    )


def _with_workspace(plan: PipelinePlan, threshold: int = MIB, storage_class: str | None = "fast") -> PipelinePlan:
    return replace(plan, workspace=Workspace("20Gi", storage_class, threshold))


# -- metadata --------------------------------------------------------------------------------------


def _settings(workspace: Any) -> tuple[Any, list[Diagnostic]]:
    nb = notebook(code("x = 1", "step:a"), metadata={"nb2pipe": {"workspace": workspace}})
    diagnostics: list[Diagnostic] = []
    settings = pipeline_settings(
        parse_notebook(notebook_text(nb), "nb.ipynb"), diagnostics, name=None, image=None, fallback_image=None
    )
    return settings, diagnostics


def test_the_workspace_metadata_sets_size_storage_class_and_threshold():
    settings, diagnostics = _settings({"size": "20Gi", "storage_class": "nfs", "large_value_mb": 1.5})
    assert diagnostics == []
    assert settings.workspace == Workspace("20Gi", "nfs", int(1.5 * MIB))
    assert _settings({"size": "5Gi"})[0].workspace == Workspace("5Gi", None, 64 * MIB)
    assert _settings(None)[0].workspace is None


@pytest.mark.parametrize(
    ("workspace", "says"),
    [
        ({"size": "lots"}, "nb2pipe.workspace.size must be a Kubernetes quantity, not 'lots'"),
        ({"storage_class": "nfs"}, "nb2pipe.workspace.size must be a Kubernetes quantity, and it is missing"),
        ({"size": "1Gi", "large_value_mb": -1}, "nb2pipe.workspace.large_value_mb must be at least 0"),
        ({"size": "1Gi", "large_value": 3}, "nb2pipe.workspace has no setting 'large_value'"),
    ],
)
def test_bad_workspace_metadata_is_an_error_naming_the_setting(workspace: dict[str, Any], says: str):
    _, diagnostics = _settings(workspace)
    assert any(says in d.message for d in diagnostics), [d.message for d in diagnostics]


def test_the_metadata_workspace_reaches_the_plan():
    nb = _steps()
    nb["metadata"]["nb2pipe"] = {"workspace": {"size": "20Gi", "large_value_mb": 1}}
    assert plan_of(nb).workspace == Workspace("20Gi", None, MIB)


# -- the compiled pipeline -------------------------------------------------------------------------


def test_the_compiled_pipeline_has_the_workspace_and_each_step_its_path():
    spec, platform = parse_ir(emit_pipeline_yaml(_with_workspace(plan_of(_steps()))))
    assert platform is not None
    config = json_format.MessageToDict(platform.platforms["kubernetes"])["pipelineConfig"]
    assert config == {"workspace": {"size": "20Gi", "kubernetes": {"pvcSpecPatch": {"storageClassName": "fast"}}}}
    for name in ("make", "use"):
        task = spec.root.dag.tasks[name]
        assert task.inputs.parameters[WORKSPACE_INPUT].runtime_value.constant.string_value == WORKSPACE_PATH_PLACEHOLDER
        component = spec.components[task.component_ref.name]
        assert WORKSPACE_INPUT in component.input_definitions.parameters
    # a step that hands values on is not cached: its pointer would outlive the run's workspace
    assert spec.root.dag.tasks["make"].caching_options.enable_cache is False
    assert spec.root.dag.tasks["use"].caching_options.enable_cache is True
    executor = spec.deployment_spec.fields["executors"].struct_value.fields["exec-make"]
    source = executor.struct_value.fields["container"].struct_value.fields["command"].list_value.values[-1]
    assert f"workspace={WORKSPACE_INPUT})" in source.string_value
    assert f"'large_value_bytes': {MIB}" in source.string_value


def test_without_a_workspace_nothing_asks_for_one():
    spec, platform = parse_ir(emit_pipeline_yaml(plan_of(_steps())))
    assert all(WORKSPACE_INPUT not in task.inputs.parameters for task in spec.root.dag.tasks.values())
    assert platform is None or "pipelineConfig" not in json_format.MessageToDict(platform.platforms["kubernetes"])


def test_the_dsl_file_compiles_to_the_same_workspace(tmp_path: Path):
    plan = _with_workspace(plan_of(_steps()), storage_class=None)
    (tmp_path / "nb_dsl.py").write_text(emit_dsl_text(plan, "theirs.yaml"), encoding="utf-8")
    subprocess.run([sys.executable, "nb_dsl.py"], cwd=tmp_path, check=True, capture_output=True)
    ours_spec, ours = parse_ir(emit_pipeline_yaml(plan))
    theirs_spec, theirs = parse_ir((tmp_path / "theirs.yaml").read_text())
    assert ours is not None and theirs is not None
    configs = [json_format.MessageToDict(p.platforms["kubernetes"])["pipelineConfig"] for p in (ours, theirs)]
    assert configs[0] == configs[1] == {"workspace": {"size": "20Gi", "kubernetes": {"pvcSpecPatch": {}}}}
    for name in ("make", "use"):
        ours_task, theirs_task = ours_spec.root.dag.tasks[name], theirs_spec.root.dag.tasks[name]
        assert ours_task.inputs.parameters == theirs_task.inputs.parameters
        assert ours_task.caching_options == theirs_task.caching_options


# -- a local run -----------------------------------------------------------------------------------


def _local_run(tmp_path: Path, nb: dict[str, Any]) -> LocalRun:
    """A local run of ``nb`` with a workspace, keeping the steps' variables to read back."""
    return LocalRun(
        notebook=write_notebook(tmp_path, nb),
        pipeline_yaml=emit_pipeline_yaml(_with_workspace(plan_of(nb))),
        workdir=tmp_path / "work",
        parameters={},
        keep_variables=True,
    )


def test_a_local_run_passes_a_big_value_through_the_workspace_folder(tmp_path: Path):
    nb = _steps()
    run = _local_run(tmp_path, nb)
    result = run.start()
    assert result.status == "succeeded", result.failures
    expected = float(np.arange(5 * MIB // 8, dtype="float64").sum()) + 6
    assert load_variables(result.run_dir)["total"] == expected
    kept = result.run_dir / WORKSPACE_FOLDER / "nb2pipe-values" / "make" / "big" / "value.npy"
    assert kept.stat().st_size > 5 * MIB
    big = next(result.run_dir.glob("make/**/big"))
    assert sorted(os.listdir(big)) == [VALUE_SIDECAR]  # the artifact holds only the pointer
    pointer = json.loads((big / VALUE_SIDECAR).read_text())[WORKSPACE_KEY]
    assert pointer == {"path": "nb2pipe-values/make/big", "bytes": kept.stat().st_size, "step": "make"}
    small = next(result.run_dir.glob("make/**/small"))
    assert sorted(os.listdir(small)) == [VALUE_SIDECAR, "value.json"]
    assert not (result.run_dir / WORKSPACE_FOLDER / "nb2pipe-values" / "make" / "small").exists()


# -- the runtime -----------------------------------------------------------------------------------


def _saved_size(value: Any, folder: Path) -> int:
    save_value(value, str(folder), "probe")
    return sum(entry.stat().st_size for entry in folder.iterdir() if entry.name != VALUE_SIDECAR)


def test_a_value_as_large_as_the_threshold_stays_in_the_artifact_and_one_byte_more_moves(tmp_path: Path):
    value = np.arange(1000, dtype="int64")
    size = _saved_size(value, tmp_path / "probe")
    workspace = tmp_path / "workspace"
    at = save_value(value, str(tmp_path / "at"), "x", Large(str(workspace), "train", size))
    assert WORKSPACE_KEY not in at and (tmp_path / "at" / "value.npy").is_file()
    above = save_value(value, str(tmp_path / "above"), "x", Large(str(workspace), "train", size - 1))
    assert above[WORKSPACE_KEY] == {"path": "nb2pipe-values/train/x", "bytes": size, "step": "train"}
    assert sorted(os.listdir(tmp_path / "above")) == [VALUE_SIDECAR]
    assert np.array_equal(load_value(str(tmp_path / "above"), workspace=str(workspace), name="x"), value)
    assert np.array_equal(load_value(str(tmp_path / "at"), workspace=str(workspace), name="x"), value)
    # saved again small, the earlier large copy is removed from the workspace
    save_value(value, str(tmp_path / "above"), "x", Large(str(workspace), "train", size))
    assert not (workspace / "nb2pipe-values" / "train" / "x").exists()
    assert not [p for p in (workspace / "nb2pipe-values" / "train").iterdir()]  # no partial left


def test_a_pointer_to_a_missing_value_names_the_value_and_its_step(tmp_path: Path):
    workspace = tmp_path / "workspace"
    save_value(np.zeros(100), str(tmp_path / "out"), "features", Large(str(workspace), "prepare", 0))
    (workspace / "nb2pipe-values" / "prepare" / "features" / "value.npy").unlink()
    with pytest.raises(StepError) as caught:
        load_value(str(tmp_path / "out"), workspace=str(workspace), name="features")
    text = str(caught.value)
    assert "'features' (saved by step 'prepare')" in text and "no longer has it" in text
    with pytest.raises(StepError, match="this step was given none"):
        load_value(str(tmp_path / "out"), name="features")


def test_a_planted_symlink_in_the_workspace_is_refused(tmp_path: Path):
    workspace, elsewhere = tmp_path / "workspace", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (workspace / "nb2pipe-values").mkdir(parents=True)
    (workspace / "nb2pipe-values" / "train").symlink_to(elsewhere)
    with pytest.raises(StepError, match="symbolic link"):
        save_value(np.zeros(100), str(tmp_path / "out"), "x", Large(str(workspace), "train", 0))
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "out").exists()


def test_a_resumed_local_run_reads_the_reused_steps_values_from_the_workspace(tmp_path: Path):
    flag = tmp_path / "fail-once"
    flag.write_text("")
    nb = notebook(
        code("import numpy as np\nbig = np.ones(300_000)", "step:make"),
        code(
            f"import os\nassert not os.path.exists({str(flag)!r}), 'asked to fail'\ntotal = float(big.sum())",
            "step:use",
        ),
    )
    run = _local_run(tmp_path, nb)
    first = run.start()
    assert first.status == "failed"
    flag.unlink()
    second = run.resume(first.run_id)
    assert second.status == "succeeded", second.failures
    assert {s.step: s.reused for s in second.steps} == {"make": True, "use": False}
    assert load_variables(second.run_dir)["total"] == 300_000.0
    assert (second.run_dir / WORKSPACE_FOLDER / "nb2pipe-values" / "make" / "big" / "value.npy").is_file()


@pytest.mark.slow
def test_a_sub_pipeline_hands_a_big_value_on_through_the_outer_workspace(tmp_path: Path):
    """The workspace is the run's: the steps of a ``notebook:`` sub-pipeline use it as well."""
    from nb2pipe.runners.local import run_notebook
    from tests.support.nbtools import notebook_text

    child = notebook(
        code("import numpy as np", "imports"),
        code("big = np.arange(5 * 2**20 // 8, dtype='float64')", "step:make"),
    )
    (tmp_path / "child.ipynb").write_text(notebook_text(child), encoding="utf-8")
    parent = notebook(
        code("", "notebook:child.ipynb"),
        code("total = float(big.sum())", "step:use"),
        metadata={"nb2pipe": {"workspace": {"size": "1Gi", "large_value_mb": 1}}},
    )
    (tmp_path / "parent.ipynb").write_text(notebook_text(parent), encoding="utf-8")
    result = run_notebook(tmp_path / "parent.ipynb", workdir=tmp_path / "work", keep_variables=True)
    assert result.status == "succeeded", result.failures
    assert load_variables(result.run_dir)["total"] == float(np.arange(5 * MIB // 8, dtype="float64").sum())
    kept = result.run_dir / WORKSPACE_FOLDER / "nb2pipe-values" / "make" / "big" / "value.npy"
    assert kept.stat().st_size > 5 * MIB
