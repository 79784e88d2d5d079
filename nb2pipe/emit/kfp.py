"""PipelinePlan -> KFP v2 IR YAML, through kfp's own component structures, DSL and compiler.

Each step becomes a lightweight-Python-style component (the form ``kfp.local``'s
SubprocessRunner runs and a cluster runs unchanged): a shell prelude that installs kfp and
the step's packages only when missing, then KFP's executor running the embedded module
from :mod:`nb2pipe.emit.step_source`.
"""

from __future__ import annotations

import inspect
import shlex
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any, Optional

from nb2pipe.emit.compose import add_subpipeline_tasks, outputs_annotation, pipeline_outputs
from nb2pipe.emit.images import step_container
from nb2pipe.emit.lifecycle import extra_tasks
from nb2pipe.emit.monitoring import gate_task
from nb2pipe.emit.options import apply_options
from nb2pipe.emit.step_source import (
    KFP_HEADER,
    StepFunction,
    component_source,
    first_keyword_only,
    step_function,
    uncached_for_workspace,
)
from nb2pipe.emit.tasks import ExtraTask, extra_container
from nb2pipe.emit.volumes import create_claims
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import (
    RETRAIN_OUTPUT,
    WORKSPACE_INPUT,
    PackageIndex,
    Packaging,
    Parameter,
    PipelinePlan,
    SubPipelineOutput,
)

_EXECUTOR_MODULE = "kfp.dsl.executor_main"
_LAUNCH = (
    "program_path=$(mktemp -d)\n\n"
    'printf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
    f"_KFP_RUNTIME=true python3 -m {_EXECUTOR_MODULE} --component_module_path "
    '"$program_path/ephemeral_component.py" "$@"\n'
)
_PIP = "PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location"
#: no index of the pipeline's own: pip's configuration (PyPI unless the image says otherwise)
_PIP_DEFAULTS = PackageIndex()
_PARAMETER_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}
#: kfp's DSL keeps the pipeline being traced in a process-global (``kfp.dsl.pipeline_context``):
#: two threads tracing at once fail with "Nested pipelines are not allowed." (the Jupyter server
#: compiles in a thread pool), so building and tracing a pipeline holds this lock.
_KFP_DSL_LOCK = threading.Lock()


def launch_script() -> str:
    """The shell that writes a step's source to a file and runs KFP's executor on it."""
    return _LAUNCH


def install_script(packages: Sequence[str], kfp_version: str, index: PackageIndex = _PIP_DEFAULTS) -> str:
    """Shell that installs kfp and the step's packages only where the image lacks them, from
    ``index`` when it names one (the same versions: only where they come from changes)."""
    from packaging.requirements import Requirement

    pip = _PIP + "".join(f" {option}" for option in index_options(index))
    lines = [
        # find_spec looks kfp up without importing it (a full import costs ~0.5 s)
        "if ! python3 -c 'import importlib.util as u, sys; sys.exit(u.find_spec(\"kfp\") is None)' 2>/dev/null; then",
        f"  {pip} 'kfp=={kfp_version}' --no-deps 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"'",
        "fi",
    ]
    if packages:
        names = sorted({Requirement(p).name for p in packages})
        probe = f"import importlib.metadata as m; [m.version(n) for n in {names!r}]"
        lines += [
            f"if ! python3 -c {shlex.quote(probe)} 2>/dev/null; then",
            f"  {pip} {' '.join(shlex.quote(p) for p in packages)}",
            "fi",
        ]
    return "\n".join(lines) + '\n"$0" "$@"\n'


def index_options(index: PackageIndex) -> list[str]:
    """pip's options for ``index``, shell-quoted, as kfp's ``pip_index_urls`` spells them: the
    first URL is ``--index-url``, the others ``--extra-index-url``; then ``--trusted-host``."""
    options = [f"--index-url {shlex.quote(url)}" for url in index.urls[:1]]
    options += [f"--extra-index-url {shlex.quote(url)}" for url in index.urls[1:]]
    return options + [f"--trusted-host {shlex.quote(host)}" for host in index.trusted_hosts]


def step_command(
    packages: tuple[str, ...],
    function: StepFunction,
    kfp_version: str,
    source: str | None = None,
    index: PackageIndex = _PIP_DEFAULTS,
) -> tuple[list[str], list[str]]:
    command = [
        "sh",
        "-c",
        install_script(packages, kfp_version, index),
        "sh",
        "-ec",
        _LAUNCH,
        source if source is not None else component_source(function),
    ]
    args = ["--executor_input", "{{$}}", "--function_to_execute", function.name]
    return command, args


def build_components(plan: PipelinePlan, packaging: Packaging | None = None) -> dict[str, Any]:
    """One kfp component object per step, keyed by step name."""
    import kfp
    from kfp.dsl import base_component, component_factory, structures

    class StepComponent(base_component.BaseComponent):
        """A notebook step: runs in its container, not in this process."""

        def execute(self, **kwargs: Any) -> None:
            raise NotImplementedError("nb2pipe steps run through kfp.local or a cluster")

    components: dict[str, Any] = {}
    for step in plan.steps:
        function = step_function(step, plan)
        interface = _interface_function(function)
        spec = component_factory.extract_component_interface(interface, name=step.name)
        image, packages = step_container(step, plan, packaging)
        command, args = step_command(packages, function, kfp.__version__, index=plan.package_index)
        spec.implementation = structures.Implementation(
            container=structures.ContainerSpecImplementation(image=image, command=command, args=args)
        )
        components[step.name] = StepComponent(spec)
    for task in [*gate_tasks(plan), *extra_tasks(plan)]:
        image, packages = extra_container(task, plan, packaging)
        spec = component_factory.extract_component_interface(_interface_function(task.function), name=task.name)
        source = f"{KFP_HEADER}\n{task.function.source}"
        command, args = step_command(packages, task.function, kfp.__version__, source, plan.package_index)
        spec.implementation = structures.Implementation(
            container=structures.ContainerSpecImplementation(image=image, command=command, args=args)
        )
        components[task.name] = StepComponent(spec)
    return components


def _interface_function(function: StepFunction) -> Callable[..., None]:
    """A stand-in carrying the step function's signature, which is all kfp reads from it."""
    from kfp import dsl

    namespace = {
        name: getattr(dsl, name)
        for name in ("Input", "Output", "Artifact", "Dataset", "Model", "Metrics", "HTML", "Markdown")
    }
    namespace.update({name: kind for name, kind in _PARAMETER_TYPES.items()})

    def interface(*args: Any, **kwargs: Any) -> None:
        """Signature only."""

    parameters = []
    split = first_keyword_only(function.arguments)
    for index, argument in enumerate(function.arguments):
        resolved: Any = namespace[argument.type_name]  # a runtime annotation (kfp's classes), not a static type
        if argument.wrapper == "OutputPath":
            resolved = dsl.OutputPath(resolved)
        elif argument.wrapper:
            resolved = namespace[argument.wrapper][resolved]
        kind = inspect.Parameter.KEYWORD_ONLY if index >= split else inspect.Parameter.POSITIONAL_OR_KEYWORD
        if argument.optional:  # as kfp reads `x: Optional[int] = None`: an isOptional input
            optional = Optional[resolved]  # noqa: UP045  (kfp strips typing.Optional, not `T | None`)
            parameters.append(inspect.Parameter(argument.name, kind, annotation=optional, default=None))
        else:
            parameters.append(inspect.Parameter(argument.name, kind, annotation=resolved))
    interface.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    interface.__name__ = function.name
    interface.__doc__ = None
    return interface


def pipeline_function(
    plan: PipelinePlan,
    components: dict[str, Any],
    children: dict[str, Any] | None = None,
    outputs: tuple[SubPipelineOutput, ...] = (),
) -> Callable[..., Any]:
    """The pipeline body kfp's ``@dsl.pipeline`` traces: wires step outputs to inputs.
    ``children``: the sub-pipelines' graph components, by task; ``outputs``: what this
    pipeline hands back when it is itself a sub-pipeline."""
    names = [p.name for p in plan.parameters]

    def pipeline(*channels: Any) -> Any:
        values = dict(zip(names, channels, strict=True))
        tasks: dict[str, Any] = {}
        add_subpipeline_tasks(plan, children or {}, values, tasks)
        with _gated(plan, components, values):
            _add_tasks(plan, components, values, tasks)
        return pipeline_outputs(outputs, tasks)

    signature = inspect.Signature(
        [
            inspect.Parameter(
                p.pipeline_input,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=p.default,
                annotation=_annotation(p),
            )
            for p in plan.parameters
        ],
        return_annotation=outputs_annotation(outputs) if outputs else inspect.Signature.empty,
    )
    pipeline.__signature__ = signature  # type: ignore[attr-defined]
    pipeline.__name__ = plan.name.replace("-", "_")
    pipeline.__doc__ = None
    return pipeline


def _annotation(parameter: Parameter) -> Any:
    """``Optional[int]`` with a None default is how kfp declares an optional input (isOptional,
    no default); kfp strips ``typing.Optional``, not ``int | None``."""
    kind = _PARAMETER_TYPES[parameter.type]
    return Optional[kind] if parameter.optional else kind  # noqa: UP045


def gate_tasks(plan: PipelinePlan) -> list[ExtraTask]:
    return [gate_task(plan)] if plan.gate is not None else []


def _gated(plan: PipelinePlan, components: dict[str, Any], values: dict[str, Any]) -> AbstractContextManager[Any]:
    """A monitoring pipeline's steps run inside ``dsl.If(gate says retrain)``."""
    if plan.gate is None:
        return nullcontext()
    from kfp import dsl

    extra = gate_task(plan)
    task = components[extra.name](**{wire.arg: values[wire.parameter] for wire in extra.wires if wire.parameter})
    task.set_display_name(extra.name)
    task.set_caching_options(False)  # it reads traffic that changes between runs
    apply_options(task, extra.options)
    return dsl.If(task.outputs[RETRAIN_OUTPUT] == True, name="retrain")  # noqa: E712  (a kfp condition)


def _add_tasks(plan: PipelinePlan, components: dict[str, Any], values: dict[str, Any], tasks: dict[str, Any]) -> None:
    claims = create_claims(plan)
    for step in plan.steps:
        arguments = {
            item.arg: values[item.name] if item.is_parameter else _output(tasks, item.source_step, item.source_output)
            for item in step.inputs
        }
        if plan.workspace is not None:
            from kfp import dsl

            arguments[WORKSPACE_INPUT] = dsl.WORKSPACE_PATH_PLACEHOLDER
        task = components[step.name](**arguments)
        task.set_display_name(step.name)
        if step.after:
            task.after(*(tasks[name] for name in step.after))
        apply_options(task, step.options, claims)
        if uncached_for_workspace(plan, step):
            task.set_caching_options(False)
        tasks[step.name] = task
    for extra in extra_tasks(plan):
        arguments = {
            wire.arg: values[wire.parameter] if wire.parameter else _output(tasks, wire.task, wire.output)
            for wire in extra.wires
        }
        task = components[extra.name](**arguments)
        task.set_display_name(extra.name)
        apply_options(task, extra.options)
        if extra.side_effects:
            task.set_caching_options(False)  # registering and deploying change the world
        tasks[extra.name] = task


def _output(tasks: dict[str, Any], task: str | None, output: str | None) -> Any:
    """The output channel an argument is wired to; one wired to no parameter and no output is a planner bug."""
    if task is None or output is None:
        raise Nb2PipeError(f"an argument is wired to no parameter and no output (task {task!r}, output {output!r})")
    return tasks[task].outputs[output]


def emit_pipeline_yaml(plan: PipelinePlan, packaging: Packaging | None = None) -> str:
    """Compile the plan with kfp's DSL and compiler and return the IR YAML text."""

    with _KFP_DSL_LOCK:  # tracing the pipeline function builds its PipelineSpec; serializing it is thread-safe
        pipeline = build_pipeline(plan, packaging)
    return serialize_pipeline(pipeline)


def build_pipeline(
    plan: PipelinePlan,
    packaging: Packaging | None,
    name: str | None = None,
    outputs: tuple[SubPipelineOutput, ...] = (),
) -> Any:
    """The plan as a kfp graph component, its sub-pipelines first: kfp traces a pipeline when it
    is decorated, and one cannot be traced while another is."""
    from kfp import dsl

    # the workspace is the run's: a sub-pipeline's steps use the outermost pipeline's (or none)
    children = {
        sub.task: build_pipeline(replace(sub.plan, workspace=plan.workspace), packaging, sub.task, sub.outputs)
        for sub in plan.subpipelines
    }
    components = build_components(plan, packaging)
    function = pipeline_function(plan, components, children, outputs)
    # the run timeout is the outermost pipeline's; kfp wants the workspace declared by every
    # pipeline whose steps use it (its sub-pipelines get the outermost one's: see above)
    config = pipeline_config(plan if name is None else replace(plan, timeout_seconds=None))
    return dsl.pipeline(name=name or plan.name, description=plan.description, pipeline_config=config)(function)


def pipeline_config(plan: PipelinePlan) -> Any:
    """KFP's PipelineConfig with the plan's workspace and run timeout; None without either."""
    if plan.workspace is None and plan.timeout_seconds is None:
        return None
    from kfp import dsl

    workspace = None
    if plan.workspace is not None:
        patch = {"storageClassName": plan.workspace.storage_class} if plan.workspace.storage_class else None
        kubernetes = dsl.KubernetesWorkspaceConfig(pvcSpecPatch=patch)
        workspace = dsl.WorkspaceConfig(size=plan.workspace.size, kubernetes=kubernetes)
    return dsl.PipelineConfig(workspace=workspace, active_deadline_seconds=plan.timeout_seconds)


def serialize_pipeline(pipeline: Any) -> str:
    """The IR YAML kfp's compiler writes for ``pipeline``: kfp's own PipelineSpec, header
    comments and key order.

    kfp serializes with PyYAML's pure-Python emitter, which spends ~0.05 s per step on the
    step's embedded code; with libyaml available the same documents are emitted in C. The
    text folds long lines differently but parses to the same spec.
    """
    import yaml
    from google.protobuf import json_format
    from kfp.compiler import pipeline_spec_builder

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    documents = [spec]
    if len(pipeline.platform_spec.platforms) > 0:
        documents.append(json_format.MessageToDict(pipeline.platform_spec))
    commented = _printable_defaults(spec)
    comments = pipeline_spec_builder.extract_comments_from_pipeline_spec(commented, pipeline.description)
    return comments + yaml.dump_all(documents, Dumper=dumper, sort_keys=True)


def _printable_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with str defaults escaped as Python would print them, for the header comments
    only: kfp writes a str default there as it is, and a line break or control character in
    it (``query = "a\\nb"``) would turn the comment into broken YAML."""
    inputs = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    escaped = {
        name: {**definition, "defaultValue": repr(definition["defaultValue"])[1:-1]}
        for name, definition in inputs.items()
        if isinstance(definition.get("defaultValue"), str) and not definition["defaultValue"].isprintable()
    }
    if not escaped:
        return spec
    root = spec["root"]
    definitions = {**root["inputDefinitions"], "parameters": {**inputs, **escaped}}
    return {**spec, "root": {**root, "inputDefinitions": definitions}}
