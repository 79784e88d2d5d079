"""Sub-pipelines in the KFP DSL: a ``notebook:PATH`` cell's child pipeline is a ``@dsl.pipeline``
graph component, called inside the parent's pipeline like any component; what the parent
reads from it are the graph component's outputs (a ``NamedTuple`` return)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from nb2pipe.ir import PipelinePlan, SubPipelineOutput


def outputs_annotation(outputs: tuple[SubPipelineOutput, ...]) -> Any:
    """The return annotation kfp reads a pipeline's outputs from; ``None`` when it has none."""
    if not outputs:
        return None
    from kfp import dsl

    fields = [(output.key, getattr(dsl, output.kind)) for output in outputs]
    return NamedTuple("Outputs", fields)  # built from the plan while compiling


def pipeline_outputs(outputs: tuple[SubPipelineOutput, ...], tasks: Mapping[str, Any]) -> Any:
    """The value a child pipeline function returns: each output from the step that makes it."""
    annotation = outputs_annotation(outputs)
    if annotation is None:
        return None
    return annotation(**{o.key: tasks[o.step].outputs[o.step_output] for o in outputs})


def add_subpipeline_tasks(
    plan: PipelinePlan, children: Mapping[str, Any], values: Mapping[str, Any], tasks: dict[str, Any]
) -> None:
    """Call each child pipeline with the parent's parameters it shares; the others keep the
    child's defaults. Children take pipeline parameters only, so they depend on no step."""
    by_input = {p.pipeline_input: values[p.name] for p in plan.parameters}
    for sub in plan.subpipelines:
        task = children[sub.task](**{child: by_input[parent] for child, parent in sub.arguments})
        task.set_display_name(sub.task)
        tasks[sub.task] = task
