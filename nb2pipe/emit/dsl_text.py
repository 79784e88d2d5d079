"""A readable KFP DSL file of the same pipeline, for people who want to read or take over
the Python. Compiling it with kfp gives the same DAG; its steps import the runtime from an
installed nb2pipe instead of embedding it.
"""

from __future__ import annotations

import pprint
import textwrap

from nb2pipe.emit.images import step_container
from nb2pipe.emit.lifecycle import extra_tasks
from nb2pipe.emit.options import CreatedClaim, option_calls
from nb2pipe.emit.step_source import (
    RUNTIME_ENTRY,
    first_keyword_only,
    function_name,
    has_report,
    optional_parameters,
    step_arguments,
    step_spec,
    uncached_for_workspace,
)
from nb2pipe.emit.tasks import ExtraTask, extra_container
from nb2pipe.emit.volumes import create_claim_lines, new_claims
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import METRICS_OUTPUT, REPORT_OUTPUT, WORKSPACE_INPUT, Packaging, PipelinePlan, Step, StepOptions


def emit_dsl_text(plan: PipelinePlan, yaml_name: str, packaging: Packaging | None = None) -> str:
    if plan.subpipelines:
        raise Nb2PipeError(
            f"--dsl does not write composed notebooks yet: {plan.notebook} runs "
            f"{', '.join(sub.path for sub in plan.subpipelines)} as sub-pipelines; compile without --dsl"
        )
    parts = [
        f'"""Kubeflow pipeline {plan.name!r}, compiled by nb2pipe from {plan.notebook}.\n\n'
        "Each step runs its notebook cells through nb2pipe's step runtime, so the image must\n"
        'have nb2pipe installed. Regenerate with `nb2pipe compile --dsl` rather than editing.\n"""\n',
        "from kfp import compiler, dsl, kubernetes  # noqa: F401\n"
        "from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output  # noqa: F401\n",
    ]
    if plan.drift:  # drift tasks hand their verdict on as an output parameter
        parts[-1] += "from kfp.dsl import OutputPath  # noqa: F401\n"
    if optional_parameters(plan):  # kfp reads `x: Optional[int] = None` as an optional input
        parts[-1] += "from typing import Optional\n"
    extras = extra_tasks(plan)
    names = _function_names(plan, extras)
    parts += [_component_text(step, plan, packaging, names[step.name]) for step in plan.steps]
    parts += [_extra_component_text(task, plan, packaging, names[task.name]) for task in extras]
    parts.append(_pipeline_text(plan, extras, names))
    parts.append(f'if __name__ == "__main__":\n    compiler.Compiler().compile(pipeline, {yaml_name!r})\n')
    return "\n\n".join(parts)


#: names the DSL file's module defines or imports, which no function of a step may take
_MODULE_NAMES = frozenset(
    {"compiler", "dsl", "kubernetes", "HTML", "Artifact", "Dataset", "Input", "Markdown", "Metrics", "Model"}
    | {"Output", "OutputPath", "Optional", "pipeline", RUNTIME_ENTRY}
)


def _function_names(plan: PipelinePlan, extras: list[ExtraTask]) -> dict[str, str]:
    """Task name -> its component function's name in the file: one per task (steps ``a-b``
    and ``a_b`` would both be ``a_b``), none of the module's own names, and none whose
    ``NAME_task`` variable a pipeline parameter would shadow."""
    taken = set(_MODULE_NAMES) | {p.pipeline_input for p in plan.parameters}
    names: dict[str, str] = {}
    for task in [*(step.name for step in plan.steps), *(extra.name for extra in extras)]:
        base = candidate = function_name(task)
        counter = 2
        while candidate in taken or f"{candidate}_task" in taken:
            candidate, counter = f"{base}_{counter}", counter + 1
        taken |= {candidate, f"{candidate}_task"}
        names[task] = candidate
    return names


def _component_text(step: Step, plan: PipelinePlan, packaging: Packaging | None, name: str) -> str:
    image, packages = step_container(step, plan, packaging)
    decorator = f"@dsl.component(base_image={image!r}"
    if packages:
        decorator += f", packages_to_install={list(packages)!r}"
    decorator += f"{_index_arguments(plan)})"
    arguments = step_arguments(step, optional_parameters(plan), plan.workspace is not None)
    split = first_keyword_only(arguments)
    declared = [f"    {a.name}: {a.annotation}{' = None' if a.optional else ''}" for a in arguments]
    signature = ",\n".join(declared[:split] + ["    *"] * (split < len(declared)) + declared[split:])
    spec = pprint.pformat(step_spec(step, plan), width=96, sort_dicts=False)

    def mapping(pairs: list[tuple[str, str]]) -> str:
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in pairs) + "}"

    # the spec goes inline: a local variable would overwrite a step argument of the same name
    call = (
        f"    {RUNTIME_ENTRY}(\n"
        f"        {textwrap.indent(spec, '        ').lstrip()},\n"
        f"        parameters={mapping([(i.name, i.arg) for i in step.inputs if i.is_parameter])},\n"
        f"        inputs={mapping([(i.name, i.arg) for i in step.inputs if not i.is_parameter])},\n"
        f"        outputs={mapping([(o.name, o.arg) for o in step.outputs])},\n"
        f"        metrics={METRICS_OUTPUT if step.metrics else None},\n"
        f"        report={REPORT_OUTPUT if has_report(step) else None},\n"
        + (f"        workspace={WORKSPACE_INPUT},\n" if plan.workspace is not None else "")
        + "    )\n"
    )
    return (
        f"{decorator}\ndef {name}(\n{signature}{',' if arguments else ''}\n):\n"
        f"    from nb2pipe.runtime.step import run_step as {RUNTIME_ENTRY}\n\n{call}"
    )


def _extra_component_text(task: ExtraTask, plan: PipelinePlan, packaging: Packaging | None, name: str) -> str:
    image, packages = extra_container(task, plan, packaging)
    decorator = f"@dsl.component(base_image={image!r}, packages_to_install={list(packages)!r}{_index_arguments(plan)})"
    source = task.function.source.replace(f"def {task.function.name}(", f"def {name}(", 1)
    return f"{decorator}\n{source}"


def _index_arguments(plan: PipelinePlan) -> str:
    """The decorator's private index, when the pipeline has one: kfp installs kfp itself from
    it too. Trusted hosts are always spelled out: left None, kfp would trust every index URL."""
    index = plan.package_index
    if not index.urls:
        return ""
    return f", pip_index_urls={list(index.urls)!r}, pip_trusted_hosts={list(index.trusted_hosts)!r}"


def _config_argument(plan: PipelinePlan) -> str:
    """The decorator's ``pipeline_config`` with a workspace or a run timeout (as emit/kfp.py's pipeline_config)."""
    arguments = []
    if plan.workspace is not None:
        patch = {"storageClassName": plan.workspace.storage_class} if plan.workspace.storage_class else None
        arguments.append(
            f"workspace=dsl.WorkspaceConfig(size={plan.workspace.size!r}, "
            f"kubernetes=dsl.KubernetesWorkspaceConfig(pvcSpecPatch={patch!r}))"
        )
    if plan.timeout_seconds is not None:
        arguments.append(f"active_deadline_seconds={plan.timeout_seconds}")
    return f", pipeline_config=dsl.PipelineConfig({', '.join(arguments)})" if arguments else ""


def _claim_variables(plan: PipelinePlan, names: dict[str, str]) -> dict[str, str]:
    """The variable of each created claim's task: ``volume_NAME``, clear of every other name in the file."""
    taken = set(_MODULE_NAMES) | {p.pipeline_input for p in plan.parameters}
    taken |= {*names.values(), *(f"{name}_task" for name in names.values())}
    variables: dict[str, str] = {}
    for claim in new_claims(plan):
        base = candidate = "volume_" + "".join(ch if ch.isalnum() else "_" for ch in claim.name)
        counter = 2
        while candidate in taken:
            candidate, counter = f"{base}_{counter}", counter + 1
        taken.add(candidate)
        variables[claim.name] = candidate
    return variables


def _pipeline_text(plan: PipelinePlan, extras: list[ExtraTask], names: dict[str, str]) -> str:
    typed = {p.name: f"Optional[{p.type}]" if p.optional else p.type for p in plan.parameters}
    signature = ", ".join(f"{p.pipeline_input}: {typed[p.name]} = {p.default!r}" for p in plan.parameters)
    inputs = {p.name: p.pipeline_input for p in plan.parameters}
    lines = [f"@dsl.pipeline(name={plan.name!r}, description={plan.description!r}{_config_argument(plan)})"]
    lines.append(f"def pipeline({signature}):")
    claims = _claim_variables(plan, names)
    lines += create_claim_lines(plan, claims)

    def shown(value: object) -> str:
        return f"{claims[value.name]}.outputs['name']" if isinstance(value, CreatedClaim) else repr(value)

    def option_lines(task: str, options: StepOptions) -> list[str]:
        """The calls :func:`nb2pipe.emit.options.apply_options` makes, as DSL lines."""
        rendered_lines = []
        for call in option_calls(options):
            rendered = [repr(a) for a in call.args] + [f"{k}={shown(v)}" for k, v in call.kwargs.items()]
            if call.target == "task":
                rendered_lines.append(f"    {task}.{call.name}({', '.join(rendered)})")
            else:
                rendered_lines.append(f"    kubernetes.{call.name}({', '.join([task, *rendered])})")
        return rendered_lines

    for step in plan.steps:
        task = f"{names[step.name]}_task"
        arguments = ", ".join(
            f"{i.arg}={inputs[i.name]}"
            if i.is_parameter
            else f"{i.arg}={names[i.source_step or '']}_task.outputs[{i.source_output!r}]"
            for i in step.inputs
        )
        if plan.workspace is not None:
            arguments += f"{', ' if arguments else ''}{WORKSPACE_INPUT}=dsl.WORKSPACE_PATH_PLACEHOLDER"
        lines.append(f"    {task} = {names[step.name]}({arguments})")
        lines.append(f"    {task}.set_display_name({step.name!r})")
        if step.after:
            lines.append(f"    {task}.after({', '.join(names[a] + '_task' for a in step.after)})")
        lines += option_lines(task, step.options)
        if uncached_for_workspace(plan, step):
            lines.append(f"    {task}.set_caching_options(False)")
    for extra in extras:
        task = f"{names[extra.name]}_task"
        arguments = ", ".join(
            f"{wire.arg}={inputs.get(wire.parameter, wire.parameter)}"
            if wire.parameter
            else f"{wire.arg}={names[wire.task or '']}_task.outputs[{wire.output!r}]"
            for wire in extra.wires
        )
        lines.append(f"    {task} = {names[extra.name]}({arguments})")
        lines.append(f"    {task}.set_display_name({extra.name!r})")
        lines += option_lines(task, extra.options)
        if extra.side_effects:
            lines.append(f"    {task}.set_caching_options(False)")
    return "\n".join(lines) + "\n"
