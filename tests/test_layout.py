"""Cell roles, step options and notebook settings, Kale's metadata included."""

from __future__ import annotations

from nb2pipe.errors import Severity
from nb2pipe.ir import Resources, SecretEnv
from tests.support.nbtools import code, codes, diagnostics_of, notebook, plan_of


def test_step_options_from_tags_and_kale_limits():
    plan = plan_of(
        notebook(
            code(
                "x = 1",
                "step:train",
                "gpu:2",
                "cpu:2",
                "memory:4Gi",
                "limit:cpu:4",
                "limit:memory:8Gi",
                "image:python:3.12",
                "packages:tabulate;rich",
                "cache:off",
                "retry:2",
                "timeout:900",
                "annotation:example.com/owner:ml",
                "label:team:vision",
                "secret:creds:token:API_TOKEN",
            ),
        )
    )
    options = plan.step("train").options
    assert options.resources == Resources("2", "4", "4Gi", "8Gi", "nvidia.com/gpu", 2)
    assert options.image == "python:3.12"
    assert options.packages == ("tabulate", "rich")
    assert (options.cache, options.retries, options.timeout_seconds) == (False, 2, 900)
    assert options.annotations == (("example.com/owner", "ml"),)
    assert options.labels == (("team", "vision"),)
    assert options.secrets == (SecretEnv("API_TOKEN", "creds", "token"),)


def test_kale_limit_for_an_accelerator():
    plan = plan_of(notebook(code("x = 1", "step:train", "limit:amd.com/gpu:1")))
    resources = plan.step("train").options.resources
    assert (resources.accelerator_type, resources.accelerator_limit) == ("amd.com/gpu", 1)


def test_options_on_a_continuation_cell_apply_to_its_step():
    plan = plan_of(notebook(code("x = 1", "step:train"), code("y = x", "gpu:1")))
    assert plan.step("train").options.resources.accelerator_limit == 1


def test_options_on_role_cells_are_errors():
    (diagnostic,) = diagnostics_of(notebook(code("import os", "imports", "gpu:1"), code("x = 1", "step:a")))
    assert diagnostic.code == "misplaced-tag"


def test_untagged_cells_after_imports_belong_to_imports():
    plan = plan_of(
        notebook(code("import os", "imports"), code("import sys"), code("x = os.sep + sys.prefix", "step:a"))
    )
    assert [b.cell for b in plan.prelude] == [0, 1]


def test_leading_untagged_cells_belong_to_no_step_and_are_reported():
    plan = plan_of(notebook(code("print('scratch')"), code("x = 1", "step:a")))
    (warning,) = plan.warnings
    assert (warning.code, warning.severity, warning.location.cell) == ("unassigned-cell", Severity.WARNING, 0)
    assert [c.cell for c in plan.step("a").cells] == [1]


def test_skip_cells_are_left_out():
    plan = plan_of(notebook(code("x = 1", "step:a"), code("print('debug')", "skip"), code("y = x")))
    assert [c.cell for c in plan.step("a").cells] == [0, 2]


def test_kale_metadata_old_and_new_keys():
    old = plan_of(
        notebook(
            code("x = 1", "block:a"),
            metadata={
                "kubeflow_notebook": {
                    "pipeline_name": "My Pipeline",
                    "pipeline_description": "old",
                    "experiment_name": "exp",
                    "docker_image": "python:3.10",
                    "volumes": [],
                    "steps_defaults": ["label:app:kale", "limit:memory:1Gi"],
                }
            },
        )
    )
    assert (old.name, old.description, old.experiment, old.image) == ("my-pipeline", "old", "exp", "python:3.10")
    assert old.step("a").options.labels == (("app", "kale"),)
    assert old.step("a").options.resources.memory_limit == "1Gi"
    new = plan_of(
        notebook(
            code("x = 1", "step:a", "label:app:mine"),
            metadata={
                "kubeflow_notebook": {
                    "pipeline_name": "p",
                    "experiment": {"id": "1", "name": "from-ui"},
                    "base_image": "python:3.12",
                    "steps_defaults": ["image:python:3.11", "cache:disabled"],
                }
            },
        )
    )
    assert (new.experiment, new.image) == ("from-ui", "python:3.11")
    assert new.step("a").options.cache is False
    assert new.step("a").options.labels == (("app", "mine"),)


def test_nb2pipe_metadata_wins_and_cli_overrides():
    nb = notebook(
        code("x = 1", "step:a"),
        metadata={
            "kubeflow_notebook": {"pipeline_name": "kale-name", "base_image": "kale:1"},
            "nb2pipe": {"pipeline_name": "nb-name", "image": "mine:1"},
        },
    )
    plan = plan_of(nb)
    assert (plan.name, plan.image) == ("nb-name", "mine:1")
    plan = plan_of(nb, name="CLI_Name", image="cli:2")
    assert (plan.name, plan.image) == ("cli-name", "cli:2")


def test_bad_metadata_is_reported():
    diagnostics = diagnostics_of(
        notebook(
            code("x = 1", "step:a"),
            metadata={"kubeflow_notebook": {"pipeline_name": 3, "steps_defaults": ["step:x", "lmit:cpu:1"]}},
        )
    )
    assert sorted(codes(diagnostics)) == ["bad-tag", "bad-tag", "invalid-metadata"]
