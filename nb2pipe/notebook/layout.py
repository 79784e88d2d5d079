"""Which cell plays which role: the tag semantics Kale users know, made explicit.

- ``imports``/``functions`` cells are prelude code every step runs first.
- ``parameters`` cells declare pipeline parameters; ``metrics`` cells name metric values.
- ``step:NAME`` starts a step; untagged code cells, and cells whose ``block:`` is empty (Kale's
  "continue the cell above"), belong to the block above them.
- ``skip`` cells are left out. Untagged cells above the first tagged cell belong to no step
  (as in Kale) and are reported.
- A notebook with no step tags at all is one step, named after the notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from nb2pipe.errors import Diagnostic, Location, error, warning
from nb2pipe.ir import Cell, Layout, Notebook, NotebookRef, StepSpec, Tag
from nb2pipe.notebook.lifecycle import (
    DEPLOY_CELL_KINDS,
    LIFECYCLE_KINDS,
    deploy_defaults,
    drift_checks,
    drift_defaults,
    lifecycle_of,
)
from nb2pipe.notebook.pipeline_settings import OPTION_KINDS, identifier_from_file, pipeline_settings, step_options
from nb2pipe.notebook.tags import ROLE_KINDS, TagProblem, notebook_file, parse_tag

#: Tags that only mean something on a step's cells.
STEP_SETTING_KINDS = OPTION_KINDS | LIFECYCLE_KINDS | {"after", "step", "notebook"}
#: Kale's own step tags (block:/step:, prev:, limit:, annotation:, label:), which Kale
#: ignores on the cells where they do nothing.
KALE_STEP_KINDS = frozenset({"step", "after", "limit", "annotation", "label"})


@dataclass
class _StepDraft:
    name: str
    cells: list[Cell]
    after: list[tuple[str, Location]]
    tags: list[Tag]
    location: Location
    lifecycle: list[tuple[Tag, Location]] = field(default_factory=list)

    def add_tags(self, tags: list[Tag], where: Location) -> None:
        """Step options go to the step; lifecycle tags (and, on a deploy: cell, gpu:) to
        the model's registration and deployment."""
        deploys = any(tag.kind == "deploy" for tag in tags)
        for tag in tags:
            if tag.kind in LIFECYCLE_KINDS or (deploys and tag.kind in DEPLOY_CELL_KINDS):
                self.lifecycle.append((tag, where))
            elif tag.kind in OPTION_KINDS:
                self.tags.append(tag)


@dataclass
class _Builder:
    notebook: Notebook
    diagnostics: list[Diagnostic] = field(default_factory=list)
    prelude_imports: list[Cell] = field(default_factory=list)
    prelude_functions: list[Cell] = field(default_factory=list)
    parameters: list[Cell] = field(default_factory=list)
    metrics: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    unassigned: list[Cell] = field(default_factory=list)
    steps: dict[str, _StepDraft] = field(default_factory=dict)
    badly_tagged: set[int] = field(default_factory=set)
    notebooks: list[NotebookRef] = field(default_factory=list)

    def where(self, cell: Cell) -> Location:
        return cell.location(self.notebook.path)


def build_layout(
    notebook: Notebook, *, name: str | None = None, image: str | None = None, fallback_image: str | None = None
) -> tuple[Layout, list[Diagnostic]]:
    """Group the notebook's code cells by role. Returns the layout and every problem found."""
    builder = _Builder(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    parsed = {cell.index: _parse_cell_tags(cell, builder) for cell in code_cells}
    # a step tag on an imports/functions/... cell is ignored there, so it makes no step
    has_steps = any(
        tag.kind in ("step", "notebook") and tag.args[0]
        for tags in parsed.values()
        if _role(tags) is None
        for tag in tags
    )
    if has_steps:
        _assign_by_tags(code_cells, parsed, builder)
    else:
        _assign_single_step(code_cells, parsed, builder)
    settings = pipeline_settings(notebook, builder.diagnostics, name=name, image=image, fallback_image=fallback_image)
    serving = deploy_defaults(notebook.metadata, Location(notebook.path), builder.diagnostics)
    settings = replace(settings, drift=drift_defaults(notebook.metadata, Location(notebook.path), builder.diagnostics))
    steps = tuple(
        StepSpec(
            draft.name,
            tuple(draft.cells),
            tuple(draft.after),
            step_options(draft.tags, settings.step_defaults, builder.diagnostics, draft.location),
            draft.location,
            *lifecycle_of(draft.name, draft.lifecycle, serving, builder.diagnostics),
            drift=drift_checks(draft.lifecycle),
        )
        for draft in builder.steps.values()
    )
    layout = Layout(
        notebook=notebook,
        settings=settings,
        prelude=tuple(builder.prelude_imports + builder.prelude_functions),
        parameters=tuple(builder.parameters),
        metrics=tuple(builder.metrics),
        steps=steps,
        skipped=tuple(builder.skipped),
        unassigned=tuple(builder.unassigned),
        notebooks=tuple(builder.notebooks),
    )
    return layout, builder.diagnostics


def _parse_cell_tags(cell: Cell, builder: _Builder) -> list[Tag]:
    tags: list[Tag] = []
    for text in cell.tags:
        result = parse_tag(text)
        if isinstance(result, TagProblem):
            make = error if result.is_error else warning
            if result.is_error:
                builder.badly_tagged.add(cell.index)
            builder.diagnostics.append(make(result.code, result.message, builder.where(cell), result.hint))
        else:
            tags.append(result)
    roles = sorted({tag.kind for tag in tags if tag.kind in ROLE_KINDS})
    if len(roles) > 1:
        builder.diagnostics.append(
            error(
                "conflicting-tags",
                f"cell has more than one role tag: {', '.join(roles)}",
                builder.where(cell),
                "keep one of them",
            )
        )
    names = sorted({tag.args[0] for tag in tags if tag.kind == "step" and tag.args[0]})
    if len(names) > 1:
        builder.diagnostics.append(
            error(
                "conflicting-tags",
                f"cell names more than one step: {', '.join(names)}",
                builder.where(cell),
                "a cell belongs to one step; split the cell",
            )
        )
    return tags


def _add_notebook_ref(cell: Cell, tags: list[Tag], builder: _Builder) -> None:
    """A ``notebook:PATH`` cell: the other notebook's pipeline runs there. Its own code would
    run nowhere, so it is an error rather than silently dropped."""
    where = builder.where(cell)
    paths = sorted({tag.args[0] for tag in tags if tag.kind == "notebook"})
    if len(paths) > 1:
        builder.diagnostics.append(
            error("conflicting-tags", f"cell names more than one notebook: {', '.join(paths)}", where, "one a cell")
        )
    if cell.source.strip():
        builder.diagnostics.append(
            error(
                "notebook-cell-code",
                f"a notebook:{paths[0]} cell runs that notebook; its own code would run nowhere",
                where,
                "move the code to a cell of its own, tagged step:NAME",
            )
        )
    others = [tag for tag in tags if tag.kind != "notebook"]
    _report_stray_settings(cell, others, "a notebook: cell", KALE_STEP_KINDS, builder)
    builder.notebooks.append(NotebookRef(notebook_file(paths[0]), cell, where))


def _role(tags: list[Tag]) -> str | None:
    for tag in tags:
        if tag.kind in ROLE_KINDS:
            return tag.kind
    return None


def _assign_by_tags(cells: list[Cell], parsed: dict[int, list[Tag]], builder: _Builder) -> None:
    current: str | None = None  # a role kind, or "step:NAME"
    for cell in cells:
        tags = parsed[cell.index]
        role = _role(tags)
        step_names = [tag.args[0] for tag in tags if tag.kind == "step" and tag.args[0]]
        if role == "skip":
            builder.skipped.append(cell)
            continue
        if role is not None:
            _add_to_role(role, cell, builder)
            current = role
            _report_stray_settings(cell, tags, f"a {role} cell", KALE_STEP_KINDS, builder)
            continue
        if any(tag.kind == "notebook" for tag in tags):
            _add_notebook_ref(cell, tags, builder)
            current = "notebook"
            continue
        if current == "notebook" and not step_names:
            if cell.source.strip():
                builder.diagnostics.append(
                    error(
                        "untagged-after-notebook",
                        "this cell follows a notebook: cell, so it belongs to no step",
                        builder.where(cell),
                        "tag it step:NAME (the referenced notebook's steps are not this notebook's to continue)",
                    )
                )
            continue
        if step_names:
            name = step_names[0]
            draft = builder.steps.get(name)
            if draft is None:
                draft = _StepDraft(name, [], [], [], builder.where(cell))
                builder.steps[name] = draft
            elif current != f"step:{name}":
                builder.diagnostics.append(
                    error(
                        "duplicate-step",
                        f"step {name!r} is already defined at {draft.location.describe()}",
                        builder.where(cell),
                        "step names must be unique: rename this step, or move this cell next "
                        "to the step's other cells (nb2pipe does not reorder code as Kale does)",
                    )
                )
                continue
            current = f"step:{name}"
        elif current is None:
            builder.unassigned.append(cell)
            # Kale drops a leading cell whose block: is empty, tags and all
            ignored = KALE_STEP_KINDS if any(_is_merge_marker(tag) for tag in tags) else frozenset()
            _report_stray_settings(cell, tags, "a cell that belongs to no step", ignored, builder)
            continue
        elif not current.startswith("step:"):
            _add_to_role(current, cell, builder)
            _report_stray_settings(cell, tags, f"a {current} cell", KALE_STEP_KINDS, builder)
            continue
        draft = builder.steps[current.removeprefix("step:")]
        _add_edges(draft, cell, tags, builder)
        draft.cells.append(cell)
        draft.add_tags(tags, builder.where(cell))
    for cell in builder.unassigned:
        if cell.source.strip() and cell.index not in builder.badly_tagged:
            builder.diagnostics.append(
                warning(
                    "unassigned-cell",
                    "this cell is above the first tagged cell and belongs to no step",
                    builder.where(cell),
                    "tag it imports, functions, step:NAME or skip",
                )
            )


def _report_stray_settings(
    cell: Cell, tags: list[Tag], place: str, kale_ignores: frozenset[str], builder: _Builder
) -> None:
    """Step settings on a cell of no step (an imports cell, a cell above the first step).

    The kinds in ``kale_ignores`` are ignored with a warning, as Kale ignores them: its UI
    keeps a cell's ``prev:`` and ``limit:`` tags when the cell becomes an imports cell, and an
    empty ``block:`` means "continue the cell above". Other settings are errors.
    """
    settings = [tag for tag in tags if tag.kind in STEP_SETTING_KINDS and not _is_merge_marker(tag)]
    ignored = [tag.text for tag in settings if tag.kind in kale_ignores]
    misplaced = [tag.text for tag in settings if tag.kind not in kale_ignores]
    where = builder.where(cell)
    if ignored:
        hint = "remove the tag, or put it on a cell of a step"
        builder.diagnostics.append(
            warning("ignored-tag", f"{', '.join(ignored)} on {place} is ignored, as Kale ignores it", where, hint)
        )
    if misplaced:
        hint = "put step settings on a step's cell (one tagged step:NAME, or a cell below it)"
        builder.diagnostics.append(error("misplaced-tag", f"{', '.join(misplaced)} cannot go on {place}", where, hint))


def _add_edges(draft: _StepDraft, cell: Cell, tags: list[Tag], builder: _Builder) -> None:
    """``after:`` counts on any cell of a step. Kale's ``prev:`` counts on the cell that starts
    the step only: Kale's compiler (``NotebookProcessor.parse_notebook``) reads it there and
    drops it, unchecked, from every cell that continues a step, so Kale notebooks carry
    leftovers naming steps that do not exist or the step itself."""
    where = builder.where(cell)
    ignored = []
    for tag in tags:
        if tag.kind != "after":
            continue
        if draft.cells and tag.text.startswith("prev:"):
            ignored.append(tag.text)
        else:
            draft.after.append((tag.args[0], where))
    if ignored:
        builder.diagnostics.append(
            warning(
                "ignored-tag",
                f"{', '.join(ignored)} on a cell that continues step {draft.name!r} is ignored, as Kale ignores it",
                where,
                "Kale reads prev: on a step's first cell only: move it there, or write after:NAME, "
                "which counts on any cell of the step",
            )
        )


def _is_merge_marker(tag: Tag) -> bool:
    """An empty ``block:``/``step:`` tag: Kale's (and its UI's) "continue the cell above"."""
    return tag.kind == "step" and not tag.args[0]


def _assign_single_step(cells: list[Cell], parsed: dict[int, list[Tag]], builder: _Builder) -> None:
    """No step tags: every untagged code cell is one step named after the notebook."""
    name = identifier_from_file(builder.notebook.name)
    draft: _StepDraft | None = None
    for cell in cells:
        tags = parsed[cell.index]
        role = _role(tags)
        if role == "skip":
            builder.skipped.append(cell)
            continue
        if role is not None:
            _add_to_role(role, cell, builder)
            _report_stray_settings(cell, tags, f"a {role} cell", KALE_STEP_KINDS, builder)
            continue
        if draft is None:
            draft = _StepDraft(name, [], [], [], builder.where(cell))
            builder.steps[name] = draft
        draft.cells.append(cell)
        draft.add_tags(tags, builder.where(cell))
        for tag in tags:
            if tag.kind == "after":
                builder.diagnostics.append(
                    error(
                        "unknown-step",
                        f"after:{tag.args[0]} names a step, but this notebook has none",
                        builder.where(cell),
                        "tag the cells that start each step with step:NAME",
                    )
                )


def _add_to_role(role: str, cell: Cell, builder: _Builder) -> None:
    target = {
        "imports": builder.prelude_imports,
        "functions": builder.prelude_functions,
        "parameters": builder.parameters,
        "metrics": builder.metrics,
    }[role]
    target.append(cell)
