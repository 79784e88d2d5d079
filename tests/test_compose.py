"""Notebook composition: a ``notebook:PATH`` cell runs another notebook's pipeline as a
sub-pipeline (issue 23 item 1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from nb2pipe.compiler import compile_source, plan_source
from nb2pipe.errors import CompileError, Diagnostic, Nb2PipeError
from nb2pipe.runners.graph import task_graph
from tests.support.nbtools import EXAMPLES, code, notebook, write_notebook

COMPOSE = EXAMPLES / "compose"
GOLDEN = Path(__file__).parent / "golden" / "compose" / "pipeline.pipeline.yaml"


def compiled(path: Path) -> Any:
    return compile_source(path.read_text(encoding="utf-8"), str(path))


def errors_of(path: Path) -> list[Diagnostic]:
    with pytest.raises(CompileError) as caught:
        plan_source(path.read_text(encoding="utf-8"), str(path))
    return list(caught.value.diagnostics)


def test_composed_example_matches_its_golden(update_golden: bool):
    produced = compiled(COMPOSE / "pipeline.ipynb").yaml
    if update_golden:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(produced, encoding="utf-8")
    assert produced == GOLDEN.read_text(encoding="utf-8"), "the composed golden is stale: run pytest --update-golden"


def test_child_is_a_dag_component_with_its_parameters_in_and_its_values_out():
    result = compiled(COMPOSE / "pipeline.ipynb")
    spec = yaml.safe_load(result.yaml)
    train = spec["components"]["comp-train"]["dag"]
    assert sorted(train["outputs"]["artifacts"]) == ["model", "score"]
    selector = train["outputs"]["artifacts"]["model"]["artifactSelectors"][0]
    assert selector == {"outputArtifactKey": "model", "producerSubtask": "fit"}
    # nesting: train runs features as a sub-pipeline of its own (Kale's spelling, notebook:features)
    assert train["tasks"]["features"]["componentRef"]["name"] == "comp-features"
    assert "frame" in spec["components"]["comp-features"]["dag"]["outputs"]["artifacts"]
    root = spec["root"]["dag"]["tasks"]
    assert root["train"]["inputs"]["parameters"] == {
        "alpha": {"componentInputParameter": "alpha"},
        "seed": {"componentInputParameter": "seed"},
    }
    report = root["report"]["inputs"]["artifacts"]
    assert report["model"] == {"taskOutputArtifact": {"outputArtifactKey": "model", "producerTask": "train"}}
    assert sorted(root["report"]["dependentTasks"]) == ["setup", "train"]
    # the child's own defaults stay on its DAG for the parameters the parent does not pass
    features_inputs = spec["components"]["comp-features"]["inputDefinitions"]["parameters"]
    assert features_inputs["rows"]["defaultValue"] == 40
    plan = result.plan
    assert [s.name for s in plan.steps] == ["setup", "report"]
    assert plan.subpipelines[0].plan.subpipelines[0].task == "features"
    assert {"pandas", "sklearn"} <= set(plan.modules)  # the children's imports pin the image too


def test_local_graph_lifts_the_sub_pipelines_tasks_and_reads_through_their_outputs():
    spec = _pipeline_spec(compiled(COMPOSE / "pipeline.ipynb").yaml)
    nodes = task_graph(spec)
    assert sorted(nodes) == ["report", "setup", "train.features.make-features", "train.fit"]
    assert nodes["report"].artifact_inputs["model"] == ("train.fit", "model")
    assert nodes["report"].upstream == ("setup", "train.features.make-features", "train.fit")
    assert nodes["train.fit"].artifact_inputs["frame"] == ("train.features.make-features", "frame")
    assert nodes["train.features.make-features"].parameter_inputs == {"seed": "seed"}
    assert nodes["train.features.make-features"].literal_inputs == {"rows": 40}  # the child's default


def _pipeline_spec(text: str) -> Any:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return json_format.ParseDict(next(yaml.safe_load_all(text)), pipeline_spec_pb2.PipelineSpec())


def test_a_referenced_notebook_still_compiles_on_its_own():
    plan = compiled(COMPOSE / "train.ipynb").plan
    assert [p.name for p in plan.parameters] == ["seed", "alpha"]
    assert [s.name for s in plan.steps] == ["fit"]
    assert plan.subpipelines[0].outputs[0].name == "frame"


def test_notebooks_that_include_each_other_are_a_cycle(tmp_path: Path):
    write_notebook(tmp_path, notebook(code("", "notebook:b.ipynb"), code("x = 1", "step:a")), "a.ipynb")
    write_notebook(tmp_path, notebook(code("", "notebook:a"), code("y = 2", "step:b")), "b.ipynb")
    found = [d for d in errors_of(tmp_path / "a.ipynb") if d.code == "notebook-cycle"]
    assert len(found) == 1
    assert found[0].message.endswith(f"{tmp_path}/a.ipynb -> {tmp_path}/b.ipynb -> {tmp_path}/a.ipynb")
    assert found[0].location.notebook == f"{tmp_path}/b.ipynb" and found[0].location.cell == 0


def test_a_missing_notebook_names_the_cell_and_the_path(tmp_path: Path):
    path = write_notebook(tmp_path, notebook(code("x = 1", "step:a"), code("", "notebook:gone.ipynb")), "a.ipynb")
    (found,) = [d for d in errors_of(path) if d.code == "missing-notebook"]
    assert "gone.ipynb" in found.message and found.location.cell == 1 and found.location.notebook == str(path)


def test_a_value_a_step_computes_cannot_feed_a_childs_parameter(tmp_path: Path):
    write_notebook(tmp_path, notebook(code("n = 3", "parameters"), code("out = n * 2", "step:double")), "child.ipynb")
    parent = notebook(code("n = len('abcd')", "step:count"), code("", "notebook:child.ipynb"))
    (found,) = [d for d in errors_of(write_notebook(tmp_path, parent, "p.ipynb")) if d.severity.value == "error"]
    assert found.code == "computed-notebook-argument" and "'count'" in found.message and found.location.cell == 1


def test_a_parameter_of_another_type_is_refused(tmp_path: Path):
    write_notebook(tmp_path, notebook(code("n = 3", "parameters"), code("out = n * 2", "step:double")), "child.ipynb")
    parent = notebook(code("n = 'x'", "parameters"), code("", "notebook:child.ipynb"), code("print(out)", "step:s"))
    codes = [d.code for d in errors_of(write_notebook(tmp_path, parent, "p.ipynb"))]
    assert codes == ["notebook-argument-type"]


def test_code_on_a_notebook_cell_and_untagged_cells_after_it_are_errors(tmp_path: Path):
    write_notebook(tmp_path, notebook(code("out = 1", "step:one")), "child.ipynb")
    parent = notebook(code("x = 1", "step:a"), code("y = 2", "notebook:child"), code("print(out)"))
    codes = sorted(d.code for d in errors_of(write_notebook(tmp_path, parent, "p.ipynb")))
    assert codes == ["notebook-cell-code", "untagged-after-notebook"]


def test_a_childs_compile_errors_are_reported_with_the_chain(tmp_path: Path):
    write_notebook(tmp_path, notebook(code("print(undefined_thing)", "step:one")), "child.ipynb")
    path = write_notebook(tmp_path, notebook(code("", "notebook:child.ipynb")), "p.ipynb")
    found = {d.code: d for d in errors_of(path)}
    assert found["undefined-name"].location.notebook == f"{tmp_path}/child.ipynb"
    assert found["notebook-does-not-compile"].location.notebook == str(path)


def test_the_dsl_file_is_refused_for_a_composed_notebook():
    path = COMPOSE / "pipeline.ipynb"
    with pytest.raises(Nb2PipeError, match="sub-pipelines"):
        compile_source(path.read_text(encoding="utf-8"), str(path), dsl_yaml_name="pipeline.yaml")


def _in_order(path: Path, overrides: dict[str, str] | None = None) -> list[Any]:
    """The cells a top-to-bottom run meets: a notebook: cell replaced by the child's cells, its
    parameters cell followed by the values the parent passes (as a sub-pipeline's inputs)."""
    nb = nbformat.read(path, as_version=4)
    parameter_cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    own = {line.split("=")[0].strip() for line in parameter_cell.source.splitlines() if "=" in line}
    cells: list[Any] = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        refs = [t.split(":", 1)[1] for t in tags if t.startswith("notebook:")]
        if refs:
            child = path.parent / (refs[0] if refs[0].endswith(".ipynb") else f"{refs[0]}.ipynb")
            cells += _in_order(child, {name: name for name in own})
            continue
        cells.append(cell)
        if cell is parameter_cell and overrides:
            passed = "\n".join(f"{name} = _parent_{name}" for name in overrides)
            cells.insert(-1, nbformat.v4.new_code_cell("\n".join(f"_parent_{n} = {n}" for n in overrides)))
            cells.append(nbformat.v4.new_code_cell(passed))
    return cells


@pytest.mark.slow
def test_a_composed_pipeline_run_locally_equals_the_notebooks_run_in_order(tmp_path: Path):
    from nb2pipe.runners.local import run_notebook

    piped, kernel = tmp_path / "piped", tmp_path / "kernel"
    shutil.copytree(COMPOSE, piped)
    shutil.copytree(COMPOSE, kernel)
    result = run_notebook(piped / "pipeline.ipynb", workdir=tmp_path / "work")
    assert result.status == "succeeded", result.failures
    assert {s.step for s in result.steps} == {"setup", "train.features.make_features", "train.fit", "report"}

    flat = nbformat.v4.new_notebook()
    flat.cells = _in_order(kernel / "pipeline.ipynb")
    NotebookClient(flat, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(kernel)}}).execute()
    expected = json.loads((kernel / "summary.json").read_text())
    assert json.loads((piped / "summary.json").read_text()) == expected
    assert expected["label"] == "ridge-0.5" and 2.5 < expected["slope"] < 3.5


@pytest.mark.slow
def test_a_referenced_notebook_runs_on_its_own(tmp_path: Path):
    from nb2pipe.runners.local import run_notebook

    shutil.copytree(COMPOSE, tmp_path / "nb")
    result = run_notebook(tmp_path / "nb" / "train.ipynb", workdir=tmp_path / "work", parameters=["alpha=2.0"])
    assert result.status == "succeeded", result.failures
    assert [s.step for s in result.steps] == ["features.make_features", "fit"]


def test_the_editor_graph_groups_a_sub_pipelines_tasks_under_its_node():
    from nb2pipe.editor.graph import describe_source

    path = COMPOSE / "pipeline.ipynb"
    graph = describe_source(path.read_text(encoding="utf-8"), str(path)).to_json()
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert nodes["train"]["kind"] == "notebook" and nodes["train"]["cells"] == [4]  # cell 0 is markdown
    assert nodes["train.fit"]["group"] == "train"
    assert nodes["train.features.make_features"]["group"] == "train.features"
    assert "group" not in nodes["report"]
    edges = {(edge["source"], edge["target"]): edge["variables"] for edge in graph["edges"]}
    assert edges[("train", "report")] == ["model", "score"]
    assert edges[("train.features", "train.fit")] == ["frame"]
    assert {"cell": 4, "step": None, "role": "notebook"} in graph["cells"]
    # each edge out of a sub-pipeline names the task inside it that makes each value, nested ones resolved
    made_by = {(edge["source"], edge["target"]): edge.get("from_tasks") for edge in graph["edges"]}
    assert made_by[("train", "report")] == {"model": "train.fit", "score": "train.fit"}
    assert made_by[("train.features", "train.fit")] == {"frame": "train.features.make_features"}
    assert made_by[("setup", "report")] is None  # between the parent's own steps: no new field


def test_the_editor_graph_names_each_value_s_producer_inside_a_sub_pipeline_not_its_last_task(tmp_path: Path):
    from nb2pipe.editor.graph import describe_source

    shutil.copytree(COMPOSE, tmp_path / "nb")
    child = tmp_path / "nb" / "train.ipynb"
    nb = nbformat.read(child, as_version=4)
    # a last task that reads fit's score: the sub-pipeline's only sink, yet it makes none of model and score
    nb.cells.append(nbformat.from_dict(code("checked = score > 0.5", "step:check")))
    nbformat.write(nb, child)
    parent = _variant(tmp_path / "p", lambda nb: nb.cells.append(code("print(checked, model)", "step:show")))
    shutil.copy(child, parent.parent / "train.ipynb")

    graph = describe_source(parent.read_text(encoding="utf-8"), str(parent)).to_json()
    edges = {(edge["source"], edge["target"]): edge for edge in graph["edges"]}
    assert edges[("train.fit", "train.check")]["variables"] == ["score"]
    assert edges[("train", "report")]["from_tasks"] == {"model": "train.fit", "score": "train.fit"}
    assert edges[("train", "show")]["variables"] == ["checked", "model"]
    assert edges[("train", "show")]["from_tasks"] == {"checked": "train.check", "model": "train.fit"}


def _variant(tmp_path: Path, edit: Any) -> Path:
    """A copy of the composed example with its parent notebook changed by ``edit``."""
    shutil.copytree(COMPOSE, tmp_path / "nb")
    path = tmp_path / "nb" / "pipeline.ipynb"
    nb = nbformat.read(path, as_version=4)
    edit(nb)
    nbformat.write(nb, path)
    return path


def test_after_a_sub_pipeline_waits_for_it_and_its_values_cannot_be_parent_metrics(tmp_path: Path):
    def wait_and_log(nb: Any) -> None:
        nb.cells.append(code("marker = 1", "step:later", "after:train"))

    spec = yaml.safe_load(compiled(_variant(tmp_path / "a", wait_and_log)).yaml)
    assert spec["root"]["dag"]["tasks"]["later"]["dependentTasks"] == ["train"]

    def log_score(nb: Any) -> None:
        nb.cells.append(code("score", "metrics"))

    (found,) = errors_of(_variant(tmp_path / "b", log_score))
    assert found.code == "undefined-metric" and "sub-pipeline 'train'" in found.message


def test_the_parent_registers_a_model_its_sub_pipeline_hands_back(tmp_path: Path):
    def register(nb: Any) -> None:
        nb.cells[-1].metadata["tags"] = ["step:report", "register:ridge:model"]

    result = compiled(_variant(tmp_path, register))
    (task,) = result.plan.lifecycle
    assert (task.model.source_step, task.model.source_output) == ("train", "model")
    spec = yaml.safe_load(result.yaml)
    model = spec["root"]["dag"]["tasks"]["register-ridge"]["inputs"]["artifacts"]["model"]
    assert model == {"taskOutputArtifact": {"outputArtifactKey": "model", "producerTask": "train"}}
