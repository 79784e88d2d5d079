"""A readable KFP DSL file of the same pipeline, for people who want to read or take over
the Python. Compiling it with kfp gives the same DAG; its steps import the runtime from an
installed nb2pipe instead of embedding it.
"""

from __future__ import annotations

import pprint
import textwrap

from nb2pipe.emit.images import step_container
from nb2pipe.emit.lifecycle import ExtraTask, extra_container, extra_tasks
from nb2pipe.emit.options import option_calls
from nb2pipe.emit.step_source import RUNTIME_ENTRY, function_name, has_report, step_arguments, step_spec
from nb2pipe.ir import Packaging, PipelinePlan, Step
from nb2pipe.plan import METRICS_OUTPUT, REPORT_OUTPUT


def emit_dsl_text(plan: PipelinePlan, yaml_name: str, packaging: Packaging | None = None) -> str:
    parts = [
        f'"""Kubeflow pipeline {plan.name!r}, compiled by nb2pipe from {plan.notebook}.\n\n'
        "Each step runs its notebook cells through nb2pipe's step runtime, so the image must\n"
        'have nb2pipe installed. Regenerate with `nb2pipe compile --dsl` rather than editing.\n"""\n',
        "from kfp import compiler, dsl, kubernetes  # noqa: F401\n"
        "from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output  # noqa: F401\n",
    ]
    if plan.drift:  # drift tasks hand their verdict on as an output parameter
        parts[-1] += "from kfp.dsl import OutputPath  # noqa: F401\n"
    parts += [_component_text(step, plan, packaging) for step in plan.steps]
    parts += [_extra_component_text(task, plan, packaging) for task in extra_tasks(plan)]
    parts.append(_pipeline_text(plan))
    parts.append(f'if __name__ == "__main__":\n    compiler.Compiler().compile(pipeline, {yaml_name!r})\n')
    return "\n\n".join(parts)


def _component_text(step: Step, plan: PipelinePlan, packaging: Packaging | None) -> str:
    image, packages = step_container(step, plan, packaging)
    decorator = f"@dsl.component(base_image={image!r}"
    if packages:
        decorator += f", packages_to_install={list(packages)!r}"
    decorator += ")"
    arguments = step_arguments(step)
    signature = ",\n".join(f"    {a.name}: {a.annotation}" for a in arguments)
    spec = pprint.pformat(step_spec(step, plan), width=96, sort_dicts=False)

    def mapping(pairs: list[tuple[str, str]]) -> str:
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in pairs) + "}"

    call = (
        f"    {RUNTIME_ENTRY}(\n"
        "        spec,\n"
        f"        parameters={mapping([(i.name, i.arg) for i in step.inputs if i.is_parameter])},\n"
        f"        inputs={mapping([(i.name, i.arg) for i in step.inputs if not i.is_parameter])},\n"
        f"        outputs={mapping([(o.name, o.arg) for o in step.outputs])},\n"
        f"        metrics={METRICS_OUTPUT if step.metrics else None},\n"
        f"        report={REPORT_OUTPUT if has_report(step) else None},\n"
        "    )\n"
    )
    return (
        f"{decorator}\ndef {function_name(step.name)}(\n{signature}{',' if arguments else ''}\n):\n"
        f"    from nb2pipe.runtime.step import run_step as {RUNTIME_ENTRY}\n\n"
        f"    spec = {textwrap.indent(spec, '    ').lstrip()}\n{call}"
    )


def _extra_component_text(task: ExtraTask, plan: PipelinePlan, packaging: Packaging | None) -> str:
    image, packages = extra_container(task, plan, packaging)
    decorator = f"@dsl.component(base_image={image!r}, packages_to_install={list(packages)!r})"
    return f"{decorator}\n{task.function.source}"


def _pipeline_text(plan: PipelinePlan) -> str:
    signature = ", ".join(f"{p.name}: {p.type} = {p.default!r}" for p in plan.parameters)
    lines = [f"@dsl.pipeline(name={plan.name!r}, description={plan.description!r})", f"def pipeline({signature}):"]
    for step in plan.steps:
        task = f"{function_name(step.name)}_task"
        arguments = ", ".join(
            f"{i.arg}={i.name}"
            if i.is_parameter
            else f"{i.arg}={function_name(i.source_step or '')}_task.outputs[{i.source_output!r}]"
            for i in step.inputs
        )
        lines.append(f"    {task} = {function_name(step.name)}({arguments})")
        lines.append(f"    {task}.set_display_name({step.name!r})")
        if step.after:
            lines.append(f"    {task}.after({', '.join(function_name(a) + '_task' for a in step.after)})")
        for call in option_calls(step.options):
            rendered = [repr(a) for a in call.args] + [f"{k}={v!r}" for k, v in call.kwargs.items()]
            if call.target == "task":
                lines.append(f"    {task}.{call.name}({', '.join(rendered)})")
            else:
                lines.append(f"    kubernetes.{call.name}({', '.join([task, *rendered])})")
    for extra in extra_tasks(plan):
        task = f"{function_name(extra.name)}_task"
        arguments = ", ".join(
            f"{wire.arg}={wire.parameter}"
            if wire.parameter
            else f"{wire.arg}={function_name(wire.task or '')}_task.outputs[{wire.output!r}]"
            for wire in extra.wires
        )
        lines.append(f"    {task} = {function_name(extra.name)}({arguments})")
        lines.append(f"    {task}.set_display_name({extra.name!r})")
        if extra.side_effects:
            lines.append(f"    {task}.set_caching_options(False)")
    return "\n".join(lines) + "\n"
