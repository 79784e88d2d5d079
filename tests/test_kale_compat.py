"""Notebooks shaped as Kale's compile as Kale reads them (kubeflow-kale/kale, backend/kale/
processors/nbprocessor.py: parse_notebook, parse_cell_metadata, assign_metrics).

Each fixture is a small notebook of the shape found in Kale's own tests and examples.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nb2pipe.compiler import compile_source
from nb2pipe.errors import Severity
from nb2pipe.ir import PipelinePlan
from nb2pipe.runners.local import METRICS_SCHEMA, run_notebook
from tests.support.nbtools import (
    code,
    codes,
    diagnostics_of,
    markdown,
    notebook,
    notebook_text,
    plan_of,
    upstream,
    write_notebook,
)


def metrics(plan: PipelinePlan) -> dict[str, list[str]]:
    return {step.name: list(step.metrics) for step in plan.steps}


def warning_codes(plan: PipelinePlan) -> list[str]:
    return [d.code for d in plan.warnings]


def kale_e2e_notebook() -> dict:
    """Kale's end-to-end test notebook's shape: the metrics cell names two pipeline parameters."""
    return notebook(
        code("import numpy as np", "imports"),
        code("d1 = 5\nd2 = 6\nbooltest = True\nstrtest = 'test'", "pipeline-parameters"),
        code("rnd_matrix = np.ones((d1, d2))", "limit:nvidia.com/gpu:2", "step:create_matrix"),
        code("sum_result = rnd_matrix.sum()", "prev:create_matrix", "step:sum_matrix"),
        code("print(d1)\nprint(d2)\nprint(sum_result)", "pipeline-metrics"),
        metadata={"kubeflow_notebook": {"experiment_name": "hp-tuning", "pipeline_name": "hp-test", "volumes": []}},
    )


# --- 1. metrics that name pipeline parameters or prelude values ---------------------------


def test_parameters_named_as_metrics_are_logged_by_the_step_that_reads_them():
    plan = plan_of(kale_e2e_notebook())
    assert upstream(plan) == {"create_matrix": [], "sum_matrix": ["create_matrix"]}
    # as Kale's compiled DSL for this notebook: d1 and d2 from create_matrix, sum_result from sum_matrix
    assert metrics(plan) == {"create_matrix": ["d1", "d2"], "sum_matrix": ["sum_result"]}
    assert {i.name for i in plan.step("create_matrix").inputs} == {"d1", "d2"}
    assert plan.warnings == ()


def test_parameter_metrics_carry_the_runs_values(tmp_path: Path):
    path = write_notebook(tmp_path, kale_e2e_notebook())
    result = run_notebook(path, workdir=tmp_path / "runs", parameters=["d1=3"])
    assert result.status == "succeeded", result.failures
    assert result.metrics == {"d1": 3.0, "d2": 6.0, "sum_result": 18.0}
    logged = {
        state.step: output["metadata"]
        for state in result.steps
        for output in state.outputs.values()
        if output.get("schema_title") == METRICS_SCHEMA
    }
    assert logged == {"create_matrix": {"d1": 3.0, "d2": 6.0}, "sum_matrix": {"sum_result": 18.0}}


def test_a_parameter_no_step_reads_is_logged_by_the_last_step():
    plan = plan_of(
        notebook(
            code("lr = 0.1\nepochs = 3", "pipeline-parameters"),
            code("a = epochs * 2", "block:one"),
            code("b = a + 1", "block:two", "prev:one"),
            code("print(lr)\nprint(epochs)", "pipeline-metrics"),
        )
    )
    assert metrics(plan) == {"one": ["epochs"], "two": ["lr"]}
    assert "lr" in {i.name for i in plan.step("two").inputs}
    assert "lr" not in {i.name for i in plan.step("one").inputs}


def test_prelude_values_are_logged_by_a_step_that_has_them():
    plan = plan_of(
        notebook(
            code("import math\nTHRESHOLD = 0.5", "imports"),
            code("a = THRESHOLD * 2", "block:one"),
            code("b = math.pi", "block:two"),
            code("print(THRESHOLD)", "pipeline-metrics"),
        )
    )
    assert metrics(plan) == {"one": ["THRESHOLD"], "two": []}


def test_a_text_parameter_named_as_metric_is_skipped_with_a_warning_as_kale_skips_it():
    plan = plan_of(
        notebook(
            code("name = 'run'\nsize = 2", "pipeline-parameters"),
            code("total = size * 2", "block:one"),
            code("print(name)\nprint(total)", "pipeline-metrics"),
        )
    )
    assert metrics(plan) == {"one": ["total"]}
    assert warning_codes(plan) == ["non-numeric-metric"]


def test_functions_modules_and_list_parameters_are_not_metrics():
    # Kale's run fails on them: float() of a function raises TypeError, which it does not catch
    found = diagnostics_of(
        notebook(
            code("features = ['a', 'b']", "pipeline-parameters"),
            code("import math", "imports"),
            code("def f():\n    return len(features)", "block:one"),
            code("print(f)\nprint(math)\nprint(features)", "pipeline-metrics"),
        )
    )
    assert codes(found) == ["undefined-metric"] * 3
    assert [d.message.split(" is ")[1] for d in found] == [
        "a function, not a number",
        "a module, not a number",
        "a list parameter, not a number",
    ]


def test_a_metric_nothing_defines_is_still_an_error():
    # Kale silently drops it; here it is most likely a typo
    found = diagnostics_of(notebook(code("acc = 1", "block:one"), code("print(accuracy)", "pipeline-metrics")))
    assert codes(found) == ["undefined-metric"]


# --- 2. empty block: tags, empty and comment-only steps -----------------------------------


def test_an_empty_block_tag_after_functions_continues_the_functions():
    plan = plan_of(
        notebook(
            code("import math", "imports"),
            code("def double(x):\n    return 2 * x", "functions"),
            code("def triple(x):\n    return 3 * x", "block:"),
            code("a = double(1) + triple(1) + math.floor(0.5)", "block:one"),
        )
    )
    assert [block.cell for block in plan.prelude] == [0, 1, 2]
    assert [(s.name, [c.cell for c in s.cells]) for s in plan.steps] == [("one", [3])]
    assert plan.warnings == ()


def test_an_empty_block_tag_with_leftover_prev_after_functions_warns_and_ignores_it():
    plan = plan_of(
        notebook(
            code("x = 1", "block:one"),
            code("def f():\n    return 1", "functions"),
            code("def g():\n    return 2", "block:", "prev:one"),
            code("y = f() + g()", "block:two"),
        )
    )
    assert upstream(plan) == {"one": [], "two": []}
    assert [block.cell for block in plan.prelude] == [1, 2]
    assert warning_codes(plan) == ["ignored-tag"]


def test_an_empty_block_tag_inside_a_step_continues_the_step_and_its_prev_is_ignored_as_kale_does():
    plan = plan_of(
        notebook(
            code("a = 1", "block:one"),
            code("b = a + 1", "block:"),
            code("z = 0", "block:two"),
            code("c = z + 1", "block:", "prev:one", "prev:pre"),  # Kale never checks these
        )
    )
    assert [(s.name, [c.cell for c in s.cells]) for s in plan.steps] == [("one", [0, 1]), ("two", [2, 3])]
    assert upstream(plan) == {"one": [], "two": []}
    (ignored,) = plan.warnings
    assert (ignored.code, ignored.location.cell) == ("ignored-tag", 3)
    assert "prev:one, prev:pre" in ignored.message


def test_empty_whitespace_and_comment_only_steps_compile():
    nb = notebook(
        code("a = 1", "block:one"),
        code("   \n", "block:empty", "prev:one"),
        code("# nothing yet", "block:comment", "prev:empty"),
        code("", "block:placeholder"),
        code("b = a + 1"),  # Kale's usual shape: the step's code below its tagged cell
    )
    compiled = compile_source(notebook_text(nb), "nb.ipynb")
    plan = compiled.plan
    assert [s.name for s in plan.steps] == ["one", "empty", "comment", "placeholder"]
    assert upstream(plan) == {"one": [], "empty": ["one"], "comment": ["empty"], "placeholder": ["one"]}
    assert "comment" in compiled.yaml


def test_a_block_tag_on_a_markdown_cell_makes_no_step():
    plan = plan_of(
        notebook(
            code("a = 1", "block:one"),
            {**markdown("## Training"), "metadata": {"tags": ["block:train"]}},
            code("b = a", "block:two"),
        )
    )
    assert [s.name for s in plan.steps] == ["one", "two"]
    # as Kale: a prev: naming it names no step
    found = diagnostics_of(
        notebook(
            code("a = 1", "block:one"),
            {**markdown("## Training"), "metadata": {"tags": ["block:train"]}},
            code("b = a", "block:two", "prev:train"),
        )
    )
    assert codes(found) == ["unknown-step"]


def test_an_empty_block_tag_above_every_step_leaves_the_cell_out():
    plan = plan_of(notebook(code("scratch = 1", "block:", "prev:one"), code("a = 1", "block:one")))
    assert [s.name for s in plan.steps] == ["one"]
    assert sorted(warning_codes(plan)) == ["ignored-tag", "unassigned-cell"]


# --- 3. the same block name on consecutive cells ------------------------------------------


def test_a_continuation_cell_naming_its_own_block_in_prev_is_merged():
    plan = plan_of(
        notebook(
            code("import pandas as pd", "imports"),
            code("raw = [1, 2, 3]", "block:load_data"),
            code("data = pd.Series(raw)", "block:load_data", "prev:load_data"),
            code("total = data.sum()", "block:train", "prev:load_data"),
        )
    )
    assert [(s.name, [c.cell for c in s.cells]) for s in plan.steps] == [("load_data", [1, 2]), ("train", [3])]
    assert upstream(plan) == {"load_data": [], "train": ["load_data"]}
    assert plan.step("load_data").after == ()
    assert warning_codes(plan) == ["ignored-tag"]


def test_prev_counts_on_a_merged_blocks_first_cell_and_after_on_any():
    cells = [
        code("x = 1", "block:first"),
        code("y = 2", "block:second"),
        code("v = 0", "block:fourth"),
        code("z = 3", "block:third", "prev:first"),
        code("w = 4", "block:third", "prev:second"),  # Kale: prev: of a continuing cell is dropped
    ]
    plan = plan_of(notebook(*cells))
    assert upstream(plan) == {"first": [], "second": [], "fourth": [], "third": ["first"]}
    assert warning_codes(plan) == ["ignored-tag"]
    plan = plan_of(notebook(*cells, code("u = 5", "after:fourth")))
    assert upstream(plan)["third"] == ["first", "fourth"]


def test_a_block_name_repeated_on_cells_apart_is_still_refused():
    # Kale moves the later cell's code up into the first block; nb2pipe does not reorder code
    found = diagnostics_of(
        notebook(code("a = 1", "block:load"), code("b = a", "block:train"), code("c = 2", "block:load"))
    )
    assert codes(found) == ["duplicate-step"]


# --- 4. tags Kale ignores, and Kale's notebook metadata -----------------------------------


@pytest.mark.parametrize(
    ("role_tag", "leftover"),
    [
        ("imports", "prev:one"),
        ("functions", "limit:nvidia.com/gpu:1"),
        ("pipeline-parameters", "block:params"),
        ("pipeline-metrics", "annotation:team:ml"),
    ],
)
def test_kale_step_tags_left_on_a_role_cell_are_ignored_with_a_warning(role_tag: str, leftover: str):
    sources = {
        "imports": "import math",
        "functions": "def f():\n    return 1",
        "pipeline-parameters": "n = 2",
        "pipeline-metrics": "print(a)",
    }
    cells = [code("a = 1", "block:one"), code(sources[role_tag], role_tag, leftover)]
    plan = plan_of(notebook(*cells))
    assert [s.name for s in plan.steps] == ["one"]
    assert upstream(plan) == {"one": []}
    (diagnostic,) = plan.warnings
    assert (diagnostic.code, diagnostic.severity) == ("ignored-tag", Severity.WARNING)
    assert plan.step("one").options.annotations == ()
    assert plan.step("one").options.resources.accelerator_limit is None


def test_a_skip_cell_keeps_its_leftover_block_tag_out_of_the_pipeline():
    plan = plan_of(notebook(code("a = 1", "block:one"), code("print('debug')", "skip", "block:debug")))
    assert [s.name for s in plan.steps] == ["one"]


def test_a_block_tag_only_on_a_role_cell_makes_no_step():
    plan = plan_of(notebook(code("import os", "imports", "block:setup"), code("x = os.sep")))
    assert [s.name for s in plan.steps] == ["nb"]


def test_kales_parsed_steps_defaults_apply_to_every_step():
    defaults = {"labels": {"team": "ml"}, "annotations": {"owner": "ana"}, "limits": {"memory": "4Gi"}}
    plan = plan_of(notebook(code("a = 1", "block:one"), metadata={"kubeflow_notebook": {"steps_defaults": defaults}}))
    options = plan.step("one").options
    assert options.labels == (("team", "ml"),)
    assert options.annotations == (("owner", "ana"),)
    assert options.resources.memory_limit == "4Gi"


def test_a_steps_defaults_object_of_another_shape_is_an_error():
    found = diagnostics_of(
        notebook(code("a = 1", "block:one"), metadata={"kubeflow_notebook": {"steps_defaults": {"gpus": 1}}})
    )
    assert codes(found) == ["invalid-metadata"]


def test_katib_tuning_is_reported_as_unsupported():
    meta = {"kubeflow_notebook": {"katib_run": True, "katib_metadata": {"maxTrialCount": 3}}}
    plan = plan_of(notebook(code("a = 1", "block:one"), metadata=meta))
    assert warning_codes(plan) == ["unsupported-metadata"]
    assert "Katib" in plan.warnings[0].message
    quiet = plan_of(notebook(code("a = 1", "block:one"), metadata={"kubeflow_notebook": {"katib_run": False}}))
    assert quiet.warnings == ()


def test_an_import_nothing_names_runs_in_every_step_for_its_side_effects():
    # e.g. `import hvplot.pandas` registers DataFrame.hvplot; Kale runs every import in every step
    plan = plan_of(
        notebook(
            code("import math\nimport hvplot.pandas\nimport json", "imports"),
            code("a = math.sqrt(4)", "block:one"),
            code("b = json.dumps([1])", "block:two"),
        )
    )
    preludes = {s.name: [block.source for block in s.prelude] for s in plan.steps}
    assert preludes == {
        "one": ["import math", "import hvplot.pandas"],
        "two": ["import hvplot.pandas", "import json"],
    }


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"autosnapshot": True, "snapshot_volumes": True}, "Rok snapshots (autosnapshot, snapshot_volumes)"),
        ({"snapshot_volumes": True}, "Rok snapshots (snapshot_volumes)"),
        ({"marshal_volume": True, "marshal_path": "/marshal"}, "marshal settings (marshal_volume, marshal_path)"),
        ({"abs_working_dir": "/home/jovyan"}, "marshal settings (abs_working_dir)"),
    ],
)
def test_kale_settings_without_meaning_here_are_answered(settings: dict, says: str):
    plan = plan_of(notebook(code("a = 1", "block:one"), metadata={"kubeflow_notebook": settings}))
    (found,) = plan.warnings
    assert found.code == "unsupported-metadata" and says in found.message and "nb2pipe" not in found.hint


def test_kale_settings_at_their_quiet_values_say_nothing():
    meta = {"kubeflow_notebook": {"autosnapshot": False, "snapshot_volumes": False, "katib_run": False}}
    assert plan_of(notebook(code("a = 1", "block:one"), metadata=meta)).warnings == ()
