"""The editor's graph of a notebook: nodes in plan order, then the lifecycle tasks; edges
labelled with the variables that flow along them; settings as the metadata spells them."""

from __future__ import annotations

import json

import pytest

from nb2pipe.editor.graph import NotebookGraph, describe_source, metadata_settings
from nb2pipe.errors import CompileError
from tests.support.nbtools import EXAMPLES, code, markdown, notebook, notebook_text, plan_of


def graph_of(name: str) -> NotebookGraph:
    path = EXAMPLES / name
    return describe_source(path.read_text(encoding="utf-8"), name)


def test_fan_out_and_fan_in_of_the_kale_example():
    graph = graph_of("kale_five_models.ipynb")
    models = ["decisiontree", "naivebayes", "logisticregression", "randomforest", "knn"]
    assert [n.id for n in graph.nodes] == ["loaddata", "featureengineering", "split", *models, "results"]
    assert all(n.kind == "step" for n in graph.nodes)
    assert graph.node("split").cells == (6,)
    for model in models:
        edge = graph.edge("split", model)
        assert edge.variables == ("test_x", "test_y", "train_x", "train_y") and edge.kind == "data"
        assert graph.edge(model, "results").kind == "data"
    assert graph.edge("randomforest", "results").variables == ("acc_forest",)
    assert graph.edge("featureengineering", "split").variables == ("test", "train")
    pairs = [(e.source, e.target) for e in graph.edges]
    assert pairs == sorted(pairs) and len(pairs) == len(set(pairs)) == 12
    # Kale's metadata: pipeline name, experiment, docker_image
    assert graph.settings == {
        "pipeline_name": "five-models",
        "experiment": "kale",
        "image": "python:3.11",
        "kfp_host": None,
        "mlflow_tracking_uri": None,
    }
    assert graph.to_json()["parameters"] == [{"name": "seed", "type": "int", "default": 3}]


def test_register_and_deploy_nodes_of_the_lifecycle_example():
    graph = graph_of("lifecycle.ipynb")
    assert [(n.id, n.kind) for n in graph.nodes] == [
        ("load", "step"),
        ("train", "step"),
        ("evaluate", "step"),
        ("register-cancer-classifier", "register"),
        ("deploy-cancer", "deploy"),
    ]
    register = graph.node("register-cancer-classifier")
    assert register.cells == graph.node("train").cells == (4, 5)
    assert graph.edge("train", "register-cancer-classifier").variables == ("model",)
    assert graph.edge("load", "register-cancer-classifier").variables == ("X_train",)  # its input example
    assert graph.edge("evaluate", "register-cancer-classifier").variables == ("accuracy",)  # its metrics
    deploy = graph.edge("register-cancer-classifier", "deploy-cancer")
    assert deploy.variables == () and deploy.kind == "order"


def test_explain_and_drift_nodes_of_the_monitoring_example():
    graph = graph_of("monitoring.ipynb")
    kinds = [n.kind for n in graph.nodes]
    assert kinds == ["step", "step", "step", "register", "deploy", "explain", "drift"]
    assert graph.edge("load", "drift-x-test").variables == ("X_test", "X_train")


def test_an_after_tag_without_data_is_an_order_edge():
    nb = notebook(
        code("open('flag', 'w').write('x')", "step:first"),
        code("print(open('flag').read())", "step:second", "after:first"),
    )
    graph = describe_source(notebook_text(nb), "nb.ipynb")
    (edge,) = graph.edges
    assert (edge.source, edge.target, edge.kind) == ("first", "second", "order")
    assert edge.to_json() == {"source": "first", "target": "second", "variables": [], "kind": "order"}


def test_resources_and_images_of_a_step():
    nb = notebook(code("x = 1", "step:train", "gpu:2:nvidia.com/a100", "limit:memory:4Gi", "image:registry/ml:1"))
    (node,) = describe_source(notebook_text(nb), "nb.ipynb").nodes
    assert node.to_json() == {
        "id": "train",
        "kind": "step",
        "label": "train",
        "cells": [0],
        "resources": {"cpu": None, "memory": "4Gi", "gpu": 2, "gpu_type": "nvidia.com/a100"},
        "image": "registry/ml:1",
    }


def test_a_bad_tag_is_a_compile_error_at_its_cell():
    nb = notebook(markdown("# title"), code("x = 1", "step:load"), code("y = x", "gpu:many"))
    with pytest.raises(CompileError) as caught:
        describe_source(notebook_text(nb), "nb.ipynb")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.location.cell, diagnostic.location.notebook) == ("bad-tag", 2, "nb.ipynb")


def test_settings_from_nb2pipe_metadata_win_over_kale():
    metadata = {
        "kubeflow_notebook": {"pipeline_name": "kale-name", "experiment_name": "kale-exp", "docker_image": "kale:1"},
        "nb2pipe": {
            "pipeline_name": "own",
            "image": "own:2",
            "kfp_host": " http://kfp:8080 ",
            "mlflow_tracking_uri": "http://mlflow:5000",
        },
    }
    assert metadata_settings(metadata) == {
        "pipeline_name": "own",
        "experiment": "kale-exp",
        "image": "own:2",
        "kfp_host": "http://kfp:8080",
        "mlflow_tracking_uri": "http://mlflow:5000",
    }
    # the KFP host and MLflow server are nb2pipe's own keys, and non-strings read as unset
    unset = dict.fromkeys(("pipeline_name", "experiment", "image", "kfp_host", "mlflow_tracking_uri"))
    assert metadata_settings({"kubeflow_notebook": {"kfp_host": "http://x"}, "nb2pipe": {"image": 3}}) == unset


def test_the_plan_carries_the_notebook_hosts_and_refuses_non_strings():
    nb = notebook(code("x = 1", "step:a"), metadata={"nb2pipe": {"kfp_host": "http://kfp", "mlflow_tracking_uri": ""}})
    plan = plan_of(nb)
    assert (plan.kfp_host, plan.mlflow_tracking_uri) == ("http://kfp", None)
    bad = notebook(code("x = 1", "step:a"), metadata={"nb2pipe": {"kfp_host": 8080}})
    with pytest.raises(CompileError) as caught:
        plan_of(bad)
    assert [d.code for d in caught.value.diagnostics] == ["invalid-metadata"]
    assert "kfp_host" in caught.value.diagnostics[0].message


def test_the_json_is_what_api_md_describes():
    data = graph_of("sklearn_train.ipynb").to_json()
    assert set(data) == {"notebook", "pipeline", "settings", "parameters", "nodes", "edges", "diagnostics", "cells"}
    assert json.loads(json.dumps(data)) == data


def test_cells_say_which_step_or_role_each_code_cell_has():
    nb = notebook(
        markdown("# title"),
        code("import os", "imports"),
        code("def f():\n    return 1", "functions"),
        code("def g():\n    return 2"),  # continues the functions cell above
        code("a = 1", "pipeline-parameters"),
        code("y = a", "step:train"),
        code("print(y)", "skip"),
        code("acc = y", "step:evaluate", "after:train"),
        code("print(acc)", "pipeline-metrics"),
    )
    graph = describe_source(notebook_text(nb), "nb.ipynb")
    places = [(c["cell"], c["step"], c["role"]) for c in graph.to_json()["cells"]]
    assert places == [
        (1, None, "imports"),
        (2, None, "functions"),
        (3, None, "functions"),
        (4, None, "parameters"),
        (5, "train", "step"),
        (6, None, "skip"),
        (7, "evaluate", "step"),
        (8, None, "metrics"),
    ]
    # the mapping agrees with the step nodes' cells
    for node in graph.nodes:
        assert node.cells == tuple(c.cell for c in graph.cells if c.step == node.id)


def test_cells_of_an_untagged_notebook_form_its_one_step():
    graph = describe_source(notebook_text(notebook(code(""))), "empty.ipynb")
    assert [c.to_json() for c in graph.cells] == [{"cell": 0, "step": "empty", "role": "step"}]
