"""A notebook's pipeline as the editor draws it: nodes, edges labelled with the variables that
flow along them, parameters, settings and warnings (the Graph of jupyter_extension/API.md).

Pure: text in, value out. It is built from the same plan the compiler emits, so the picture
can never disagree with the pipeline that runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nb2pipe.compiler import plan_source
from nb2pipe.ir import Layout, Notebook, PipelinePlan, Resources, Step, Tag
from nb2pipe.notebook.layout import build_layout
from nb2pipe.notebook.read import parse_notebook
from nb2pipe.notebook.tags import ROLE_KINDS, parse_tag

STEP, REGISTER, DEPLOY, EXPLAIN, DRIFT = "step", "register", "deploy", "explain", "drift"
#: a ``notebook:PATH`` cell's sub-pipeline: its tasks are nodes whose ``group`` is its id
NOTEBOOK = "notebook"
DATA, ORDER = "data", "order"
#: tasks nb2pipe adds run with their step's settings; only serving has resources of its own
_NO_RESOURCES: Mapping[str, Any] = {"cpu": None, "memory": None, "gpu": None, "gpu_type": None}


@dataclass(frozen=True)
class GraphNode:
    id: str
    kind: str
    label: str
    cells: tuple[int, ...]
    resources: Mapping[str, Any]
    image: str | None = None
    #: the sub-pipeline node this node belongs to (``TASK`` or ``TASK.INNER`` when nested)
    group: str | None = None

    def to_json(self) -> dict[str, Any]:
        found = {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "cells": list(self.cells),
            "resources": dict(self.resources),
            "image": self.image,
        }
        if self.group is not None:  # only in composed notebooks: cells of another notebook, so none listed
            found["group"] = self.group
        return found


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    variables: tuple[str, ...]
    #: an edge out of a sub-pipeline: (variable, the innermost task inside it that makes the value)
    from_tasks: tuple[tuple[str, str], ...] = ()

    @property
    def kind(self) -> str:
        """``data`` when values flow along the edge, ``order`` when the target only waits."""
        return DATA if self.variables else ORDER

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "source": self.source,
            "target": self.target,
            "variables": list(self.variables),
            "kind": self.kind,
        }
        if self.from_tasks:  # only out of a sub-pipeline, so older readers see the edges they knew
            found["from_tasks"] = dict(self.from_tasks)
        return found


@dataclass(frozen=True)
class CellPlace:
    """Where one code cell goes: ``step`` names its step, or ``role`` says why it has none
    (imports, functions, parameters, metrics, skip, or unassigned above the first step)."""

    cell: int
    step: str | None
    role: str

    def to_json(self) -> dict[str, Any]:
        return {"cell": self.cell, "step": self.step, "role": self.role}


@dataclass(frozen=True)
class NotebookGraph:
    notebook: str
    pipeline: str
    settings: Mapping[str, str | None]
    parameters: tuple[Mapping[str, Any], ...]
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    diagnostics: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    #: every code cell's step or role, in notebook order (markdown cells are not listed)
    cells: tuple[CellPlace, ...] = ()

    def node(self, node_id: str) -> GraphNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def edge(self, source: str, target: str) -> GraphEdge:
        for edge in self.edges:
            if (edge.source, edge.target) == (source, target):
                return edge
        raise KeyError((source, target))

    def to_json(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "pipeline": self.pipeline,
            "settings": dict(self.settings),
            "parameters": [dict(p) for p in self.parameters],
            "nodes": [n.to_json() for n in self.nodes],
            "edges": [e.to_json() for e in self.edges],
            "diagnostics": [dict(d) for d in self.diagnostics],
            "cells": [c.to_json() for c in self.cells],
        }


def describe_source(text: str, path: str) -> NotebookGraph:
    """Notebook JSON text -> its graph; raises :class:`~nb2pipe.errors.CompileError` with every
    problem found, as compiling does. ``path`` names the notebook in the graph and diagnostics."""

    plan = plan_source(text, path)
    # parsed a second time for its metadata and cell roles: the plan keeps only what the pipeline needs
    notebook = parse_notebook(text, path)
    return describe_plan(plan, notebook.metadata, path, places=notebook_places(notebook))


def notebook_places(notebook: Notebook) -> tuple[CellPlace, ...]:
    """:func:`cell_places` of a notebook already compiled (its layout's problems are the
    plan's, already raised or kept as warnings)."""
    layout, _ = build_layout(notebook)
    return cell_places(layout)


def cell_places(layout: Layout) -> tuple[CellPlace, ...]:
    """Each code cell's step or role, as the compiler grouped them: what the notebook's cell badges show."""
    places = [CellPlace(cell.index, spec.name, STEP) for spec in layout.steps for cell in spec.cells]
    roles = {
        "imports": layout.prelude,  # imports and functions cells share the prelude; tags tell them apart below
        "parameters": layout.parameters,
        "metrics": layout.metrics,
        "skip": layout.skipped,
        "unassigned": layout.unassigned,
    }
    for role, cells in roles.items():
        for cell in cells:
            own = "functions" if role == "imports" and _continues_functions(layout, cell.index) else role
            places.append(CellPlace(cell.index, None, own))
    places += [CellPlace(ref.cell.index, None, NOTEBOOK) for ref in layout.notebooks]
    return tuple(sorted(places, key=lambda place: place.cell))


def _continues_functions(layout: Layout, index: int) -> bool:
    """Whether prelude cell ``index`` is a functions cell: the last role tag at or above it says so."""
    for cell in reversed([c for c in layout.notebook.cells if c.cell_type == "code" and c.index <= index]):
        kinds = [tag.kind for tag in map(parse_tag, cell.tags) if isinstance(tag, Tag) and tag.kind in ROLE_KINDS]
        if kinds:
            return kinds[0] == "functions"
    return False


def describe_plan(
    plan: PipelinePlan, metadata: Mapping[str, Any], notebook: str, *, places: tuple[CellPlace, ...] = ()
) -> NotebookGraph:
    """The graph of an already compiled plan (``metadata``: the notebook's metadata; ``places``:
    where each code cell goes, from :func:`cell_places`, when the caller has the layout)."""
    edges: dict[tuple[str, str], set[str]] = {}
    producers: dict[tuple[str, str], dict[str, str]] = {}
    # a child hands back only values its own steps make (plan/pipeline.py, _exported), so each
    # output's step is a node of the child's graph
    made_by = {sub.task: {o.name: f"{sub.task}.{o.step}" for o in sub.outputs} for sub in plan.subpipelines}

    def link(source: str | None, target: str, *variables: str) -> None:
        if source is not None:
            edges.setdefault((source, target), set()).update(variables)
            inner = made_by.get(source, {})
            made = {name: inner[name] for name in variables if name in inner}
            if made:
                producers.setdefault((source, target), {}).update(made)

    nodes = [_step_node(step) for step in plan.steps]
    for step in plan.steps:
        for item in step.inputs:
            link(item.source_step, step.name, item.name)
        for parent in step.upstream:  # after: with no data, or data already linked above
            link(parent, step.name)
    for task in plan.lifecycle:
        cells = _cells(plan.step(task.step))
        register = task.register_task
        nodes.append(GraphNode(register, REGISTER, f"register {task.registration.model_name}", cells, _NO_RESOURCES))
        link(task.model.source_step, register, task.model.name)
        if task.example is not None:
            link(task.example.source_step, register, task.example.name)
        for source in task.metrics_from:
            link(source, register, *plan.step(source).metrics)
        if task.deploy_task is not None and task.deployment is not None:
            serving = task.deployment.settings
            resources = {
                "cpu": serving.cpu,
                "memory": serving.memory,
                "gpu": serving.gpu or None,
                "gpu_type": serving.gpu_type if serving.gpu else None,
            }
            nodes.append(GraphNode(task.deploy_task, DEPLOY, f"deploy {task.deployment.service}", cells, resources))
            link(register, task.deploy_task)  # it serves what register made champion: a side effect, no variable
        for method, name in task.explain_tasks:
            nodes.append(GraphNode(name, EXPLAIN, f"explain {method}", cells, _NO_RESOURCES))
            link(task.model.source_step, name, task.model.name)
            if task.example is not None:
                link(task.example.source_step, name, task.example.name)
    for drift in plan.drift:
        nodes.append(
            GraphNode(drift.task, DRIFT, f"drift {drift.current.name}", _cells(plan.step(drift.step)), _NO_RESOURCES)
        )
        link(drift.current.source_step, drift.task, drift.current.name)
        link(drift.reference.source_step, drift.task, drift.reference.name)
    for sub in plan.subpipelines:
        cells = () if sub.location.cell is None else (sub.location.cell,)
        nodes.append(GraphNode(sub.task, NOTEBOOK, f"notebook {sub.path}", cells, _NO_RESOURCES))
        inner = describe_plan(sub.plan, {}, notebook)
        for node in inner.nodes:
            group = f"{sub.task}.{node.group}" if node.group else sub.task
            nodes.append(replace(node, id=f"{sub.task}.{node.id}", cells=(), group=group))
        for edge in inner.edges:
            source, target = f"{sub.task}.{edge.source}", f"{sub.task}.{edge.target}"
            link(source, target, *edge.variables)
            if edge.from_tasks:  # out of a nested sub-pipeline: its producer, prefixed like every inner node
                made = {name: f"{sub.task}.{task}" for name, task in edge.from_tasks}
                producers.setdefault((source, target), {}).update(made)
    return NotebookGraph(
        notebook=notebook,
        pipeline=plan.name,
        settings=metadata_settings(metadata),
        parameters=tuple({"name": p.name, "type": p.type, "default": p.default} for p in plan.parameters),
        nodes=tuple(nodes),
        edges=tuple(
            GraphEdge(s, t, tuple(sorted(v)), tuple(sorted(producers.get((s, t), {}).items())))
            for (s, t), v in sorted(edges.items())
        ),
        diagnostics=tuple(d.to_json() for d in plan.warnings),
        cells=places,
    )


def _cells(step: Step) -> tuple[int, ...]:
    return tuple(sorted({block.cell for block in step.cells}))


def _step_node(step: Step) -> GraphNode:
    return GraphNode(step.name, STEP, step.name, _cells(step), _resources(step.options.resources), step.options.image)


def _resources(resources: Resources) -> dict[str, Any]:
    """What a step asks for; a limit stands in where no request is tagged."""
    return {
        "cpu": resources.cpu_request or resources.cpu_limit,
        "memory": resources.memory_request or resources.memory_limit,
        "gpu": resources.accelerator_limit,
        "gpu_type": resources.accelerator_type if resources.accelerator_limit else None,
    }


def metadata_settings(metadata: Mapping[str, Any]) -> dict[str, str | None]:
    """The settings as the notebook's metadata spells them, before any default: what the
    panel's settings form shows. ``metadata.nb2pipe`` wins over Kale's
    ``metadata.kubeflow_notebook`` key by key, as in :mod:`nb2pipe.notebook.pipeline_settings`; the KFP
    host and the MLflow server are nb2pipe's own keys. Anything but a non-empty string reads
    as unset (compiling reports it)."""
    own = metadata.get("nb2pipe")
    kale = metadata.get("kubeflow_notebook")
    own = own if isinstance(own, Mapping) else {}
    kale = kale if isinstance(kale, Mapping) else {}
    merged = {**kale, **own}

    def first(section: Mapping[str, Any], *keys: str) -> str | None:
        for key in keys:
            value = section.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None

    experiment = first(merged, "experiment_name")
    if experiment is None and isinstance(merged.get("experiment"), Mapping):  # Kale's {"name": ...}
        experiment = first(merged["experiment"], "name")
    return {
        "pipeline_name": first(merged, "pipeline_name"),
        "experiment": experiment,
        "image": first(merged, "image", "base_image", "docker_image"),
        "kfp_host": first(own, "kfp_host"),
        "mlflow_tracking_uri": first(own, "mlflow_tracking_uri"),
    }
