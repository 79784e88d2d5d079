"""register:/promote:/deploy: and the serving tags: parsing, planning, diagnostics, and the
register/deploy tasks they add to the compiled pipeline."""

from __future__ import annotations

import pytest

from nb2pipe.compiler import compile_source
from nb2pipe.ir import Resources, Tag
from nb2pipe.notebook.tags import TagProblem, parse_tag
from tests.support.kfpspec import dag, parse_ir
from tests.support.lifecycle_notebooks import LOAD, TRAIN, lifecycle_notebook
from tests.support.nbtools import EXAMPLES, code, codes, diagnostics_of, notebook, notebook_text, plan_of


@pytest.mark.parametrize(
    ("text", "kind", "args"),
    [
        ("register:churn", "register", ("churn",)),
        ("register:churn:clf", "register", ("churn", "clf")),
        ("promote:accuracy>=", "promote", ("accuracy>=",)),
        ("promote:rmse<=", "promote", ("rmse<=",)),
        ("deploy:churn-api", "deploy", ("churn-api",)),
        ("replicas:0-3", "replicas", ("0-3",)),
        ("replicas:2", "replicas", ("2",)),
        ("scale:concurrency=8", "scale", ("concurrency=8",)),
        ("canary:20", "canary", ("20",)),
        ("monitor", "monitor", ()),
    ],
)
def test_lifecycle_tags_parse(text: str, kind: str, args: tuple[str, ...]):
    assert parse_tag(text) == Tag(kind, args, text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("promote:accuracy", "promote:accuracy>="),
        ("promote:>=", "promote:accuracy>="),
        ("deploy:Churn_API", "lowercase"),
        ("replicas:3-1", "replicas"),
        ("replicas:many", "replicas:MIN-MAX"),
        ("scale:latency=5", "concurrency, rps, cpu or memory"),
        ("canary:150", "percentage"),
        ("register:", "register:MODEL_NAME"),
    ],
)
def test_bad_lifecycle_tags_say_how_to_fix(text: str, needle: str):
    problem = parse_tag(text)
    assert isinstance(problem, TagProblem) and problem.is_error
    assert needle in f"{problem.message} {problem.hint}"


def test_register_finds_the_model_and_its_training_data():
    plan = plan_of(lifecycle_notebook("register:iris", "promote:accuracy>="))
    (item,) = plan.lifecycle
    assert item.register_task == "register-iris" and item.deploy_task is None
    assert item.registration.model_name == "iris"
    assert (item.registration.promote_metric, item.registration.higher_is_better) == ("accuracy", True)
    assert (item.model.name, item.model.source_step) == ("model", "train")
    assert item.example is not None and (item.example.name, item.example.source_step) == ("X", "load")
    assert item.metrics_from == ("evaluate",)


def test_register_with_a_named_variable_and_lower_is_better():
    train = "model = LogisticRegression(max_iter=200)\nmodel.fit(X, y)\nbackup = LogisticRegression().fit(X, y)"
    plan = plan_of(lifecycle_notebook("register:iris:backup", "promote:loss<=", train=train))
    (item,) = plan.lifecycle
    assert item.model.name == "backup"
    assert (item.registration.promote_metric, item.registration.higher_is_better) == ("loss", False)


def test_a_pytorch_training_loop_gives_the_first_input_the_module_is_called_on():
    # no fit(): the module is called on the training batch in a loop, later on held-out rows
    train = (
        "import torch\n"
        "features = torch.tensor(X.values, dtype=torch.float32)\n"
        "held_out = features[:10]\n"
        "model = torch.nn.Linear(4, 3)\n"
        "for epoch in range(5):\n"
        "    loss = torch.nn.functional.cross_entropy(model(features), torch.tensor(y.values))\n"
        "check = model(held_out)"
    )
    plan = plan_of(lifecycle_notebook("register:iris:model", train=train))
    (item,) = plan.lifecycle
    assert item.model.name == "model"
    assert item.example is not None and (item.example.name, item.example.source_step) == ("features", "train")
    # a fit() call still wins over calls of the model
    fitted = "model = LogisticRegression(max_iter=200)\nscores = model(X)\nmodel.fit(y, y)"
    (item,) = plan_of(lifecycle_notebook("register:iris:model", train=fitted)).lifecycle
    assert item.example is not None and item.example.name == "y"


def test_two_models_without_a_variable_is_an_error_naming_both():
    train = "model = LogisticRegression().fit(X, y)\nother = LogisticRegression(C=2.0).fit(X, y)"
    nb = lifecycle_notebook("register:iris", train=train)
    found = diagnostics_of(nb)
    assert "register-model" in codes(found)
    message = next(d for d in found if d.code == "register-model")
    assert "model" in message.message and "other" in message.message
    assert "register:iris:VARIABLE" in message.hint
    assert message.location.cell == 1  # the train cell (0-based)


def test_register_of_an_unknown_variable_is_an_error():
    found = diagnostics_of(lifecycle_notebook("register:iris:nothing_here"))
    assert "register-model" in codes(found)


def test_promote_or_deploy_without_register_is_an_error():
    assert "missing-register" in codes(diagnostics_of(lifecycle_notebook("promote:accuracy>=")))
    assert "missing-register" in codes(diagnostics_of(lifecycle_notebook(deploy_tags=("deploy:iris",))))


def test_serving_settings_without_deploy_are_an_error():
    found = diagnostics_of(lifecycle_notebook("register:iris", deploy_tags=("replicas:1-2",)))
    assert "missing-deploy" in codes(found)


def test_deploy_cell_settings_reach_the_plan():
    nb = lifecycle_notebook(
        "register:iris",
        deploy_tags=(
            "deploy:iris-api",
            "gpu:1",
            "cpu:2",
            "memory:4Gi",
            "replicas:1-4",
            "scale:rps=50",
            "canary:10",
            "monitor",
        ),
    )
    plan = plan_of(nb)
    (item,) = plan.lifecycle
    assert plan.step("train").options.resources == Resources()  # the deploy cell sizes the server
    assert item.deploy_task == "deploy-iris-api"
    settings = item.deployment.settings
    assert (settings.gpu, settings.cpu, settings.memory) == (1, "2", "4Gi")
    assert (settings.min_replicas, settings.max_replicas) == (1, 4)
    assert (settings.scale_metric, settings.scale_target, settings.canary_percent, settings.monitor) == (
        "rps",
        50,
        10,
        True,
    )


def test_notebook_metadata_gives_deploy_defaults_that_tags_override():
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api", "replicas:2-5"))
    nb.metadata["nb2pipe"] = {"deploy": {"min_replicas": 0, "max_replicas": 3, "scale_metric": "concurrency"}}
    (item,) = plan_of(nb).lifecycle
    settings = item.deployment.settings
    assert (settings.min_replicas, settings.max_replicas, settings.scale_metric) == (2, 5, "concurrency")


def test_notebook_metadata_names_the_prometheus_namespace_label():
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api",))
    for label in ("kubernetes_namespace", ""):
        nb.metadata["nb2pipe"] = {"deploy": {"prometheus_namespace_label": label}}
        (item,) = plan_of(nb).lifecycle
        assert item.deployment.settings.prometheus_namespace_label == label
    nb.metadata["nb2pipe"] = {"deploy": {"prometheus_namespace_label": "kubernetes-namespace"}}
    assert "invalid-metadata" in codes(diagnostics_of(nb))


def test_unknown_deploy_metadata_key_is_an_error():
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api",))
    nb.metadata["nb2pipe"] = {"deploy": {"max_replica": 3}}
    assert "invalid-metadata" in codes(diagnostics_of(nb))


def test_the_same_model_name_registered_twice_is_an_error():
    cells = [
        code(LOAD, "step:load"),
        code(TRAIN, "step:train", "register:iris"),
        code("model2 = LogisticRegression(C=2.0)\nmodel2.fit(X, y)", "step:train2", "register:iris"),
    ]
    assert "conflicting-tags" in codes(diagnostics_of(notebook(*cells)))


def test_compiled_pipeline_ends_in_register_then_deploy():
    nb = lifecycle_notebook("register:iris", "promote:accuracy>=", deploy_tags=("deploy:iris-api",))
    compiled = compile_source(notebook_text(nb), "iris.ipynb")
    spec, _ = parse_ir(compiled.yaml)
    graph = dag(spec)
    assert sorted(graph["register-iris"]) == ["evaluate", "load", "train"]
    assert graph["deploy-iris-api"] == ["register-iris"]
    tasks = spec.root.dag.tasks
    for name in ("register-iris", "deploy-iris-api"):
        assert tasks[name].caching_options.enable_cache is False  # registering is a side effect
    register = spec.components["comp-register-iris"]
    assert set(register.input_definitions.artifacts) == {"model", "example", "metrics_0"}
    assert set(register.output_definitions.artifacts) == {"registered_model", "promotion"}
    assert register.output_definitions.artifacts["registered_model"].artifact_type.schema_title == "system.Model"


def test_example_notebook_plans_register_and_deploy():
    from nb2pipe.compiler import plan_source

    plan = plan_source((EXAMPLES / "lifecycle.ipynb").read_text(encoding="utf-8"), "lifecycle.ipynb")
    (item,) = plan.lifecycle
    assert (item.register_task, item.deploy_task) == ("register-cancer-classifier", "deploy-cancer")
    assert item.deployment.settings.canary_percent == 20 and item.deployment.settings.monitor
