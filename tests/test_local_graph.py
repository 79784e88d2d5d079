"""The local runner's task graph: tasks inside ``dsl.If`` are lifted with their condition
as a guard, their inputs traced through the condition to where they come from."""

from __future__ import annotations

import pytest

from nb2pipe.compiler import compile_source
from nb2pipe.errors import Nb2PipeError
from nb2pipe.runners.graph import Guard, guard_holds, task_graph
from tests.support.kfpspec import parse_ir
from tests.support.nbtools import EXAMPLES


@pytest.fixture(scope="module")
def monitored():
    text = (EXAMPLES / "monitoring.ipynb").read_text(encoding="utf-8")
    spec, _ = parse_ir(compile_source(text, "monitoring.ipynb", monitoring=True).yaml)
    return task_graph(spec)


def test_tasks_inside_the_condition_wait_for_the_gate_and_carry_its_guard(monitored):
    assert sorted(monitored) == [
        "check-drift",
        "deploy-breast-cancer",
        "evaluate",
        "load",
        "register-breast-cancer",
        "train",
    ]
    gate = monitored["check-drift"]
    assert gate.guards == () and gate.parameter_inputs == {"payloads": "payloads", "force_retrain": "force_retrain"}
    for name in ("load", "train", "evaluate", "register-breast-cancer", "deploy-breast-cancer"):
        node = monitored[name]
        assert "check-drift" in node.upstream
        (guard,) = node.guards
        assert list(guard.inputs.values()).count(("task", "check-drift", "retrain")) == 1
    # pipeline parameters reach the inner tasks through the condition's inputs
    assert monitored["load"].parameter_inputs == {"seed": "seed"}
    assert monitored["train"].artifact_inputs["X_train"] == ("load", "X_train")


@pytest.mark.parametrize(("value", "holds"), [(True, True), (False, False)])
def test_a_guard_reads_the_gates_output(monitored, value: bool, holds: bool):
    (guard,) = monitored["train"].guards
    assert guard_holds(guard, lambda source: value) is holds


@pytest.mark.parametrize(
    ("expression", "values", "holds"),
    [
        ("inputs.parameter_values['pipelinechannel--n'] > 3", {"n": 5}, True),
        ("int(inputs.parameter_values['pipelinechannel--n']) <= 3", {"n": 5}, False),
        ("!(inputs.parameter_values['pipelinechannel--s'] == 'a')", {"s": "a"}, False),
        ("inputs.parameter_values['pipelinechannel--s'] != 'a'", {"s": "b"}, True),
    ],
)
def test_guards_of_the_forms_kfp_writes(expression: str, values: dict, holds: bool):
    name = next(iter(values))
    guard = Guard(expression, {f"pipelinechannel--{name}": ("parameter", name)})
    assert guard_holds(guard, lambda source: values[source[1]]) is holds


def test_an_expression_beyond_that_is_refused_clearly():
    guard = Guard("inputs.parameter_values['x'] == 1 && true", {"x": ("parameter", "x")})
    with pytest.raises(Nb2PipeError, match="run this pipeline on Kubeflow"):
        guard_holds(guard, lambda source: 1)
