"""Notebook composition: a ``notebook:PATH`` cell runs another notebook's pipeline as a
sub-pipeline (a KFP pipeline used as a component).

The child is read, laid out and planned as a pipeline of its own. Its ``parameters`` cell is
its input interface: each parameter the parent notebook also declares is passed the parent's
pipeline parameter, the others keep the child's default. A value the parent *computes* under
a parameter's name is refused: a KFP parameter cannot carry what a step makes (a DataFrame, a
model). The names the child's steps leave defined are what it can hand back; those the
parent's later steps read become the sub-pipeline's outputs, planned in a second pass.

Reading files is the caller's (``read``): the planner stays free of I/O.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from nb2pipe.analysis.dataflow import PARAMETER, Binding
from nb2pipe.errors import CompileError, Diagnostic, Nb2PipeError, Severity, error
from nb2pipe.ir import ArtifactKind, Layout, NotebookRef, Parameter, PipelinePlan, SubPipeline, SubPipelineOutput
from nb2pipe.notebook.layout import build_layout
from nb2pipe.notebook.pipeline_settings import identifier_from_file
from nb2pipe.notebook.read import parse_notebook

#: notebook path -> its JSON text; raises :class:`Nb2PipeError` when it cannot be read
NotebookReader = Callable[[str], str]
#: plans a layout exporting the given names: (plan, what each exported name is bound to)
PlanFunction = Callable[
    [Layout, list[Diagnostic], "Composer", frozenset[str] | None], tuple[PipelinePlan, dict[str, Binding]]
]


@dataclass(frozen=True)
class Composer:
    """How children are read, and the notebooks that include this one (outermost first)."""

    read: NotebookReader | None = None
    chain: tuple[str, ...] = ()

    def inside(self, path: str) -> Composer:
        return Composer(self.read, (*self.chain, path))


@dataclass
class Child:
    """A referenced notebook, planned once exporting everything it can hand back."""

    ref: NotebookRef
    task: str
    path: str
    layout: Layout
    layout_diagnostics: list[Diagnostic]
    plan: PipelinePlan
    exports: dict[str, Binding]
    #: what the parent's steps read from it: name -> kind
    consumed: dict[str, ArtifactKind] = field(default_factory=dict)
    arguments: list[tuple[str, str]] = field(default_factory=list)


def child_path(parent: str, ref: NotebookRef) -> str:
    return posixpath.normpath(posixpath.join(posixpath.dirname(parent), ref.path))


def load_children(
    layout: Layout, composer: Composer, taken: set[str], plan: PlanFunction, diagnostics: list[Diagnostic]
) -> dict[int, Child]:
    """Each ``notebook:`` cell's child, planned, by cell index; problems go to ``diagnostics``."""
    children: dict[int, Child] = {}
    parent = layout.notebook.path
    for ref in layout.notebooks:
        path = child_path(parent, ref)
        chain = [*composer.chain, parent, path]
        if path in (*composer.chain, parent):
            diagnostics.append(
                error(
                    "notebook-cycle",
                    "notebooks include each other in a cycle: " + " -> ".join(chain),
                    ref.location,
                    "a notebook cannot run itself as a sub-pipeline, directly or through another notebook",
                )
            )
            continue
        if composer.read is None:
            diagnostics.append(
                error("notebook-unread", f"notebook:{ref.path} needs the notebook's files", ref.location, "")
            )
            continue
        try:
            text = composer.read(path)
            notebook = parse_notebook(text, path)
            child_layout, child_diagnostics = build_layout(notebook)
            child_plan, exports = plan(child_layout, list(child_diagnostics), composer.inside(parent), None)
        except CompileError as exc:
            diagnostics.extend(d for d in exc.diagnostics if d.severity is Severity.ERROR)
            diagnostics.append(
                error(
                    "notebook-does-not-compile",
                    f"notebook {path} ({' -> '.join(chain)}) does not compile",
                    ref.location,
                    "fix the problems reported in it",
                )
            )
            continue
        except Nb2PipeError as exc:
            diagnostics.append(
                error(
                    "missing-notebook",
                    f"notebook:{ref.path} cannot be read ({' -> '.join(chain)}): {exc}",
                    ref.location,
                    "the path is relative to the folder of the notebook that names it",
                )
            )
            continue
        task = _task_name(identifier_from_file(posixpath.basename(path)).replace("_", "-"), taken)
        children[ref.cell.index] = Child(ref, task, path, child_layout, list(child_diagnostics), child_plan, exports)
    return children


def _task_name(wanted: str, taken: set[str]) -> str:
    name, suffix = wanted, 2
    while name in taken:
        name, suffix = f"{wanted}-{suffix}", suffix + 1
    taken.add(name)
    return name


def bind_child(
    child: Child, known: dict[str, Binding], parameters: Mapping[str, Parameter], diagnostics: list[Diagnostic]
) -> None:
    """Where the parent's walk meets the ``notebook:`` cell: wire the child's parameters from
    the parent's, and make the names the child hands back known, provided by its task."""
    for wanted in child.plan.parameters:
        binding = known.get(wanted.name)
        if binding is None or binding.deleted:
            continue  # the child's default applies
        given = parameters.get(wanted.name)
        if given is None or binding.provider != PARAMETER:
            diagnostics.append(
                error(
                    "computed-notebook-argument",
                    f"{child.ref.path}'s parameter {wanted.name!r} would get the value step "
                    f"{binding.provider!r} computes ({binding.location.describe()}); a sub-pipeline's "
                    "parameters take this notebook's parameters only",
                    child.ref.location,
                    f"declare {wanted.name!r} in this notebook's parameters cell, or rename the value",
                )
            )
            continue
        if given.type != wanted.type:
            diagnostics.append(
                error(
                    "notebook-argument-type",
                    f"{child.ref.path}'s parameter {wanted.name!r} is {wanted.type}; this notebook's is {given.type}",
                    child.ref.location,
                    "give both parameters the same type",
                )
            )
            continue
        child.arguments.append((wanted.pipeline_input, given.pipeline_input))
    for name, binding in child.exports.items():
        known[name] = binding._replace(provider=child.task, location=child.ref.location, replay=None, facts=None)


def subpipelines(
    children: Mapping[int, Child], output_keys: Mapping[str, Mapping[str, str]], composer: Composer, plan: PlanFunction
) -> tuple[tuple[SubPipeline, ...], list[Diagnostic]]:
    """Each child planned again, now handing back what the parent reads."""
    found: list[SubPipeline] = []
    warnings: list[Diagnostic] = []
    for child in children.values():
        consumed = frozenset(child.consumed)
        child_plan, exports = plan(child.layout, list(child.layout_diagnostics), composer, consumed)
        warnings += child_plan.warnings
        outputs = []
        for name in sorted(consumed):
            made = next(o for o in child_plan.step(exports[name].provider).outputs if o.name == name)
            # typed as the child's step makes it: a parent's register: task may read it as a Model
            outputs.append(
                SubPipelineOutput(name, output_keys[child.task][name], made.kind, exports[name].provider, made.arg)
            )
        arguments = tuple(sorted(child.arguments))
        found.append(SubPipeline(child.task, child.ref.path, child_plan, arguments, tuple(outputs), child.ref.location))
    return tuple(found), warnings
