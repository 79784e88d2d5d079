"""The tasks of a compiled pipeline as the local runner schedules them: one flat graph.

Tasks inside ``dsl.If`` live in a sub-DAG (a condition component). They are lifted into the
graph with the condition as a :class:`Guard`: they also wait for the tasks the condition
depends on, their inputs are traced through the condition's inputs to a pipeline parameter
or another task's output, and they run only when the guard's expression holds.

Guards are the CEL expressions kfp's compiler writes for ``dsl.If(channel OP literal)``,
e.g. ``inputs.parameter_values['pipelinechannel--check-drift-retrain'] == true``; they are
read with :mod:`ast` (that subset of CEL is also Python syntax) and evaluated on a whitelist.

A sub-pipeline (a ``notebook:PATH`` cell's child, a pipeline used as a component) is a DAG
too, with task names of its own: its tasks are lifted as ``TASK.INNER``; a task reading the
DAG's output reads the inner task's output its ``artifactSelectors`` name, and a DAG input the
parent does not pass takes the DAG's default.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nb2pipe.errors import Nb2PipeError

#: where a parameter comes from: ("parameter", NAME), ("task", PRODUCER, OUTPUT), ("constant",)
#: or ("value", JSON) (a sub-pipeline input's default)
Source = tuple[str, ...]
#: the DAG components kfp's compiler makes for dsl.If/Elif/Else (their tasks share the pipeline's names)
_CONDITION_COMPONENT = re.compile(r"comp-condition(-branches)?-\d+")


@dataclass(frozen=True)
class Guard:
    expression: str
    #: the condition's inputs the expression reads, by channel name
    inputs: Mapping[str, Source]


@dataclass(frozen=True)
class TaskNode:
    name: str
    step: str
    component_name: str
    upstream: tuple[str, ...]
    parameter_inputs: Mapping[str, str]
    artifact_inputs: Mapping[str, tuple[str, str]]
    #: parameters another task outputs: input -> (producer, output)
    task_parameter_inputs: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    guards: tuple[Guard, ...] = ()
    #: inputs given as constants in the spec (kfp-kubernetes' CreatePVC: size, access modes...)
    constant_inputs: tuple[str, ...] = ()
    #: parameters given as values: a sub-pipeline's defaults, input -> value
    literal_inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Scope:
    """How a DAG's own inputs resolve in the pipeline: its parameters and artifacts."""

    parameters: Mapping[str, Source]
    artifacts: Mapping[str, tuple[str, str]]
    upstream: tuple[str, ...] = ()
    guards: tuple[Guard, ...] = ()
    #: what this DAG's task names get in the flat graph: "" at the top, "TASK." in a sub-pipeline
    prefix: str = ""


@dataclass
class _Lifted:
    """The flat graph while it is built: sub-pipeline tasks stand for the tasks inside them."""

    nodes: dict[str, TaskNode] = field(default_factory=dict)
    #: (sub-pipeline task, output) -> (inner task, its output)
    outputs: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    #: sub-pipeline task -> the flat tasks inside it
    members: dict[str, set[str]] = field(default_factory=dict)


def task_graph(spec: Any) -> dict[str, TaskNode]:
    """Every task that runs a component, with its dependencies, input sources and guards."""
    root = _Scope({name: ("parameter", name) for name in spec.root.input_definitions.parameters}, {})
    lifted = _Lifted()
    _add_dag(spec, spec.root.dag, root, lifted)
    return {name: _through_subpipelines(node, lifted) for name, node in lifted.nodes.items()}


def container_tasks(spec: Any) -> dict[str, Any]:
    """Every task that runs a container, by its name in the flat graph (``train.fit`` inside the
    sub-pipeline ``train``; a dsl.If's tasks keep their own names), with the task itself."""
    found: dict[str, Any] = {}
    pending = [(spec.root.dag, "")]
    while pending:
        dag, prefix = pending.pop()
        for short, task in dag.tasks.items():
            component = spec.components[task.component_ref.name]
            if component.WhichOneof("implementation") != "dag":
                found[prefix + short] = task
            elif task.trigger_policy.condition or _CONDITION_COMPONENT.fullmatch(task.component_ref.name):
                pending.append((component.dag, prefix))
            else:
                pending.append((component.dag, f"{prefix}{short}."))
    return found


def _add_dag(spec: Any, dag: Any, scope: _Scope, lifted: _Lifted) -> None:
    for short, task in dag.tasks.items():
        name = scope.prefix + short
        parameters = {key: _parameter_source(value, scope) for key, value in task.inputs.parameters.items()}
        artifacts = {key: _artifact_source(value, scope) for key, value in task.inputs.artifacts.items()}
        upstream = tuple(sorted({*(scope.prefix + t for t in task.dependent_tasks), *scope.upstream}))
        component = spec.components[task.component_ref.name]
        if component.WhichOneof("implementation") == "dag":
            guards = scope.guards
            if task.trigger_policy.condition:
                guards += (Guard(task.trigger_policy.condition, parameters),)
            if task.trigger_policy.condition or _CONDITION_COMPONENT.fullmatch(task.component_ref.name):
                _add_dag(spec, component.dag, _Scope(parameters, artifacts, upstream, guards, scope.prefix), lifted)
            else:
                _add_subpipeline(spec, component, name, _Scope(parameters, artifacts, upstream, guards), lifted)
            continue
        from_tasks = {key: (source[1], source[2]) for key, source in parameters.items() if source[0] == "task"}
        lifted.nodes[name] = TaskNode(
            name,
            scope.prefix + (task.task_info.name or short),
            task.component_ref.name,
            upstream,
            {key: source[1] for key, source in parameters.items() if source[0] == "parameter"},
            artifacts,
            from_tasks,
            scope.guards,
            tuple(sorted(key for key, source in parameters.items() if source[0] == "constant")),
            {key: json.loads(source[1]) for key, source in parameters.items() if source[0] == "value"},
        )


def _add_subpipeline(spec: Any, component: Any, name: str, scope: _Scope, lifted: _Lifted) -> None:
    """A pipeline used as a component: its tasks under ``NAME.``, its inputs' defaults where
    the parent passes none, its outputs mapped to the inner tasks that make them."""
    from google.protobuf import json_format

    parameters = dict(scope.parameters)
    for key, definition in component.input_definitions.parameters.items():
        if key not in parameters and definition.HasField("default_value"):
            parameters[key] = ("value", json.dumps(json_format.MessageToDict(definition.default_value)))
    prefix = f"{name}."
    before = set(lifted.nodes)
    inner = _Scope(parameters, scope.artifacts, scope.upstream, scope.guards, prefix)
    _add_dag(spec, component.dag, inner, lifted)
    lifted.members[name] = set(lifted.nodes) - before
    for key, output in component.dag.outputs.artifacts.items():
        selector = output.artifact_selectors[0]
        lifted.outputs[(name, key)] = (prefix + selector.producer_subtask, selector.output_artifact_key)
    for key, parameter in component.dag.outputs.parameters.items():
        selector = parameter.value_from_parameter
        lifted.outputs[(name, key)] = (prefix + selector.producer_subtask, selector.output_parameter_key)


def _through_subpipelines(node: TaskNode, lifted: _Lifted) -> TaskNode:
    """``node`` waiting for, and reading from, the tasks inside the sub-pipelines it names."""
    if not lifted.members:
        return node

    def inner(source: tuple[str, str]) -> tuple[str, str]:
        while source in lifted.outputs:  # a sub-pipeline's output may come from a nested one
            source = lifted.outputs[source]
        return source

    upstream = sorted({member for parent in node.upstream for member in lifted.members.get(parent, {parent})})
    return replace(
        node,
        upstream=tuple(upstream),
        artifact_inputs={key: inner(source) for key, source in node.artifact_inputs.items()},
        task_parameter_inputs={key: inner(source) for key, source in node.task_parameter_inputs.items()},
    )


def _parameter_source(value: Any, scope: _Scope) -> Source:
    kind = value.WhichOneof("kind")
    if kind == "component_input_parameter":
        name = value.component_input_parameter
        if name not in scope.parameters:
            raise Nb2PipeError(f"the pipeline reads parameter {name!r}, which its DAG does not have")
        return scope.parameters[name]
    if kind == "task_output_parameter":
        output = value.task_output_parameter
        return ("task", scope.prefix + output.producer_task, output.output_parameter_key)
    if kind == "runtime_value":  # a constant: only kfp-kubernetes' claim tasks take them, and they run no process
        return ("constant",)
    raise Nb2PipeError(f"nb2pipe run cannot pass a parameter given as {kind}; run this pipeline on Kubeflow")


def _artifact_source(value: Any, scope: _Scope) -> tuple[str, str]:
    kind = value.WhichOneof("kind")
    if kind == "component_input_artifact":
        return scope.artifacts[value.component_input_artifact]
    if kind == "task_output_artifact":
        return scope.prefix + value.task_output_artifact.producer_task, value.task_output_artifact.output_artifact_key
    raise Nb2PipeError(f"nb2pipe run cannot pass an artifact given as {kind}; run this pipeline on Kubeflow")


_COMPARISONS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_LITERALS = {"true": True, "false": False, "null": None}


def guard_holds(guard: Guard, value_of: Callable[[Source], Any]) -> bool:
    """Evaluate a condition; ``value_of`` gives the value of a pipeline parameter or task output."""
    text = guard.expression.strip()
    negated = text.startswith("!(") and text.endswith(")")  # dsl.Else: CEL's negation
    try:
        tree = ast.parse(text[2:-1] if negated else text, mode="eval").body
    except SyntaxError:
        raise _unsupported(guard) from None
    return _compare(tree, guard, value_of) is not negated


def _compare(tree: ast.expr, guard: Guard, value_of: Callable[[Source], Any]) -> bool:
    if not isinstance(tree, ast.Compare) or len(tree.ops) != 1 or type(tree.ops[0]) not in _COMPARISONS:
        raise _unsupported(guard)
    left, right = (_operand(node, guard, value_of) for node in (tree.left, tree.comparators[0]))
    return bool(_COMPARISONS[type(tree.ops[0])](left, right))


def _operand(node: ast.expr, guard: Guard, value_of: Callable[[Source], Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _LITERALS:
        return _LITERALS[node.id]
    if (  # inputs.parameter_values['CHANNEL']
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parameter_values"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
        and node.slice.value in guard.inputs
    ):
        return value_of(guard.inputs[node.slice.value])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("int", "double"):
        return float(_operand(node.args[0], guard, value_of))  # kfp casts numbers for comparisons
    raise _unsupported(guard)


def _unsupported(guard: Guard) -> Nb2PipeError:
    return Nb2PipeError(
        f"nb2pipe run cannot evaluate the condition {guard.expression!r}; run this pipeline on Kubeflow"
    )
