"""The Python that runs inside each step's container: nb2pipe's runtime plus one function
whose signature KFP's executor reads to hand over parameters and artifacts.

Built with :mod:`ast` so every literal is quoted correctly and the text is deterministic.
The source is never executed here; it travels in the component to the step's process.
"""

from __future__ import annotations

import ast
import keyword
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from nb2pipe.ir import METRICS_OUTPUT, REPORT_OUTPUT, WORKSPACE_INPUT, CodeBlock, PipelinePlan, Step

#: What KFP's own lightweight components put before the function.
KFP_HEADER = "import kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n"


@dataclass(frozen=True)
class Argument:
    """One argument of a step function: a parameter (``wrapper`` None), or an artifact
    passed in (``Input``) or out (``Output``); ``type_name`` is int/str/... or an artifact type.
    An ``optional`` parameter is ``Optional[T] = None``: KFP marks it isOptional, so a run
    may leave it unset."""

    name: str
    wrapper: str | None
    type_name: str
    optional: bool = False

    @property
    def annotation(self) -> str:
        if self.wrapper == "OutputPath":  # an output parameter: kfp writes its value to the path
            return f"OutputPath({self.type_name})"
        if self.optional:
            return f"Optional[{self.type_name}]"
        return f"{self.wrapper}[{self.type_name}]" if self.wrapper else self.type_name


def first_keyword_only(arguments: Sequence[Argument]) -> int:
    """Where a signature's keyword-only arguments start: at the first optional one, so the
    arguments after it need no default (KFP passes every argument by name)."""
    return next((index for index, argument in enumerate(arguments) if argument.optional), len(arguments))


@dataclass(frozen=True)
class StepFunction:
    name: str
    arguments: tuple[Argument, ...]
    source: str


#: The runtime's modules in the order a component embeds them; each may import those before it.
RUNTIME_MODULES = ("torch_values.py", "values.py", "step.py")


@cache
def runtime_source() -> str:
    """The step runtime as embedded in every component: its modules one after another,
    without the imports by which one uses another inside the package."""
    folder = resources.files("nb2pipe.runtime")
    return "\n\n".join(
        _without_runtime_imports(folder.joinpath(module).read_text(encoding="utf-8")) for module in RUNTIME_MODULES
    )


def _without_runtime_imports(text: str) -> str:
    lines = text.splitlines(keepends=True)
    for node in reversed(ast.parse(text).body):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nb2pipe.runtime"):
            del lines[node.lineno - 1 : node.end_lineno]
    return "".join(lines)


def function_name(step_name: str) -> str:
    name = step_name.replace("-", "_")
    if keyword.iskeyword(name) or name in _runtime_names():
        name += "_step"
    return name


@cache
def _runtime_names() -> frozenset[str]:
    tree = ast.parse(runtime_source())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names)


def step_spec(step: Step, plan: PipelinePlan) -> dict[str, object]:
    """The plain-data description of a step that the runtime's ``run_step`` takes."""

    def blocks(code: tuple[CodeBlock, ...]) -> list[list[object]]:
        return [[b.cell, b.execution_count, b.first_line, b.source] for b in code]

    spec: dict[str, object] = {
        "step": step.name,
        "notebook": plan.notebook,
        "prelude": blocks(step.prelude),
        "replays": blocks(step.replays),
        "cells": blocks(step.cells),
        "metrics": list(step.metrics),
        "finals": list(step.finals),
    }
    if step.options.resources.accelerator_limit:
        # the step's inputs may stay on the GPU they were saved on; other steps read them onto the CPU
        spec["gpu"] = True
    if plan.workspace is not None:
        spec["large_value_bytes"] = plan.workspace.large_value_bytes
    return spec


def step_arguments(
    step: Step, optional: Collection[str] = frozenset(), workspace: bool = False
) -> tuple[Argument, ...]:
    """The step function's arguments; ``optional`` names the notebook's optional parameters;
    with ``workspace``, the pipeline's workspace path comes last."""
    arguments: list[Argument] = []
    for item in step.inputs:
        if item.is_parameter:
            arguments.append(Argument(item.arg, None, item.parameter_type or "str", item.name in optional))
        else:
            arguments.append(Argument(item.arg, "Input", item.kind or "Artifact"))
    arguments += [Argument(item.arg, "Output", item.kind) for item in step.outputs]
    if step.metrics:
        arguments.append(Argument(METRICS_OUTPUT, "Output", "Metrics"))
    if has_report(step):
        arguments.append(Argument(REPORT_OUTPUT, "Output", "HTML"))
    if workspace:
        arguments.append(Argument(WORKSPACE_INPUT, None, "str"))
    return tuple(arguments)


def uncached_for_workspace(plan: PipelinePlan, step: Step) -> bool:
    """A step that hands values on in a pipeline with a workspace is never cached: a cached
    result may point into an earlier run's workspace, which lasted only that run."""
    return plan.workspace is not None and bool(step.outputs)


def has_report(step: Step) -> bool:
    """Steps write an HTML report unless tagged ``report:disabled``."""
    return step.options.html_report is not False


RUNTIME_ENTRY = "_nb2pipe_run_step"


#: where step_function splices the spec's text into the function's
_SPEC_PLACEHOLDER = "<spec>"


def run_step_call(step: Step, plan: PipelinePlan, runtime: str = RUNTIME_ENTRY) -> ast.Call:
    """``run_step(SPEC, parameters=..., inputs=..., outputs=..., metrics=...)`` as an AST,
    the spec a placeholder name (see :func:`step_function`)."""

    def mapping(pairs: list[tuple[str, str]]) -> ast.Dict:
        return ast.Dict(keys=[ast.Constant(k) for k, _ in pairs], values=[ast.Name(v, ast.Load()) for _, v in pairs])

    spec = ast.Name(_SPEC_PLACEHOLDER, ast.Load())  # not an identifier: nothing else prints so
    keywords = [
        ast.keyword("parameters", mapping([(i.name, i.arg) for i in step.inputs if i.is_parameter])),
        ast.keyword("inputs", mapping([(i.name, i.arg) for i in step.inputs if not i.is_parameter])),
        ast.keyword("outputs", mapping([(o.name, o.arg) for o in step.outputs])),
        ast.keyword("metrics", ast.Name(METRICS_OUTPUT, ast.Load()) if step.metrics else ast.Constant(None)),
        ast.keyword("report", ast.Name(REPORT_OUTPUT, ast.Load()) if has_report(step) else ast.Constant(None)),
    ]
    if plan.workspace is not None:
        keywords.append(ast.keyword("workspace", ast.Name(WORKSPACE_INPUT, ast.Load())))
    return ast.Call(ast.Name(runtime, ast.Load()), [spec], keywords)


def step_function(step: Step, plan: PipelinePlan) -> StepFunction:
    name = function_name(step.name)
    arguments = step_arguments(step, optional_parameters(plan), plan.workspace is not None)
    split = first_keyword_only(arguments)
    signature = [ast.arg(a.name, ast.parse(a.annotation, mode="eval").body) for a in arguments]
    function = ast.FunctionDef(
        name=name,
        args=ast.arguments(
            posonlyargs=[],
            args=signature[:split],
            kwonlyargs=signature[split:],
            kw_defaults=[ast.Constant(None) if a.optional else None for a in arguments[split:]],
            defaults=[],
        ),
        body=[ast.Expr(run_step_call(step, plan))],
        decorator_list=[],
        returns=None,
    )
    if sys.version_info >= (3, 12):  # a FunctionDef field only from Python 3.12 on
        function.type_params = []
    module = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
    # The spec is plain data (dicts, lists, str, int, None), whose repr is what ast.unparse
    # prints for it; splicing it in spares an AST of every name and line of a big cell.
    before, _, after = ast.unparse(module).partition(_SPEC_PLACEHOLDER)
    return StepFunction(name, arguments, before + repr(step_spec(step, plan)) + after + "\n")


def optional_parameters(plan: PipelinePlan) -> frozenset[str]:
    return frozenset(p.name for p in plan.parameters if p.optional)


def component_source(function: StepFunction) -> str:
    """The whole module a step's container runs: KFP's header, the runtime, the function."""
    return f"{KFP_HEADER}\n{runtime_source()}\n\n{function.source}"
