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
from nb2pipe.ir import (
    Cell,
    Layout,
    Notebook,
    PipelineSettings,
    Resources,
    SecretEnv,
    StepOptions,
    StepSpec,
    Tag,
)
from nb2pipe.notebook.lifecycle import (
    DEPLOY_CELL_KINDS,
    LIFECYCLE_KINDS,
    deploy_defaults,
    drift_checks,
    drift_defaults,
    lifecycle_of,
)
from nb2pipe.notebook.tags import ROLE_KINDS, TagProblem, parse_tag, split_packages

#: Tag kinds that configure the step a cell belongs to.
OPTION_KINDS = frozenset(
    {
        "gpu",
        "cpu",
        "memory",
        "limit",
        "image",
        "packages",
        "cache",
        "retry",
        "timeout",
        "annotation",
        "label",
        "secret",
        "report",
    }
)


#: Tags that only mean something on a step's cells.
STEP_SETTING_KINDS = OPTION_KINDS | LIFECYCLE_KINDS | {"after", "step"}
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
        tag.kind == "step" and tag.args[0] for tags in parsed.values() if _role(tags) is None for tag in tags
    )
    if has_steps:
        _assign_by_tags(code_cells, parsed, builder)
    else:
        _assign_single_step(code_cells, parsed, builder)
    settings = _settings(notebook, builder.diagnostics, name=name, image=image, fallback_image=fallback_image)
    serving = deploy_defaults(notebook.metadata, Location(notebook.path), builder.diagnostics)
    settings = replace(settings, drift=drift_defaults(notebook.metadata, Location(notebook.path), builder.diagnostics))
    steps = tuple(
        StepSpec(
            draft.name,
            tuple(draft.cells),
            tuple(draft.after),
            _options(draft.tags, settings.step_defaults),
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
    name = _identifier_from_file(builder.notebook.name)
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


def _identifier_from_file(file_name: str) -> str:
    stem = file_name.rsplit(".", 1)[0] if file_name.endswith(".ipynb") else file_name
    text = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in stem).strip("_").lower()
    if not text or not text[0].isalpha():
        text = "notebook_" + text
    return text


def sanitize_pipeline_name(text: str) -> str:
    """Lowercase letters, digits and single hyphens: the names KFP accepts."""
    out: list[str] = []
    for ch in text.lower():
        ok = ch.isascii() and ch.isalnum()
        if ok:
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    name = "".join(out).strip("-")[:128]
    return name or "pipeline"


def _options(tags: list[Tag], base: StepOptions) -> StepOptions:
    """Step options from tags, later tags winning, merged over ``base``."""
    options = base
    resources = base.resources
    packages = list(base.packages)
    annotations = dict(base.annotations)
    labels = dict(base.labels)
    secrets = {secret.env: secret for secret in base.secrets}
    for tag in tags:
        kind, args = tag.kind, tag.args
        if kind == "gpu":
            resources = replace(
                resources,
                accelerator_limit=int(args[0]),
                accelerator_type=args[1] if len(args) > 1 else "nvidia.com/gpu",
            )
        elif kind == "cpu":
            resources = replace(resources, cpu_request=args[0])
        elif kind == "memory":
            resources = replace(resources, memory_request=args[0])
        elif kind == "limit":
            resources = _apply_limit(resources, args[0], args[1])
        elif kind == "image":
            options = replace(options, image=args[0])
        elif kind == "packages":
            packages.extend(split_packages(args[0]))
        elif kind == "cache":
            options = replace(options, cache=args[0] in ("on", "enabled"))
        elif kind == "retry":
            options = replace(options, retries=int(args[0]))
        elif kind == "timeout":
            options = replace(options, timeout_seconds=int(args[0]))
        elif kind == "annotation":
            annotations[args[0]] = args[1]
        elif kind == "label":
            labels[args[0]] = args[1]
        elif kind == "secret":
            secrets[args[2]] = SecretEnv(env=args[2], secret=args[0], key=args[1])
        elif kind == "report":
            options = replace(options, html_report=args[0] == "enabled")
    return replace(
        options,
        resources=resources,
        packages=tuple(dict.fromkeys(packages)),
        annotations=tuple(sorted(annotations.items())),
        labels=tuple(sorted(labels.items())),
        secrets=tuple(secrets[env] for env in sorted(secrets)),
    )


def _apply_limit(resources: Resources, resource: str, value: str) -> Resources:
    if resource == "cpu":
        return replace(resources, cpu_limit=value)
    if resource == "memory":
        return replace(resources, memory_limit=value)
    return replace(resources, accelerator_type=resource, accelerator_limit=int(value))


def _settings(
    notebook: Notebook,
    diagnostics: list[Diagnostic],
    *,
    name: str | None,
    image: str | None,
    fallback_image: str | None,
) -> PipelineSettings:
    """Notebook-level settings: ``metadata.nb2pipe`` over Kale's ``metadata.kubeflow_notebook``."""
    where = Location(notebook.path)
    merged: dict[str, object] = {}
    own: dict[str, object] = {}
    for key in ("kubeflow_notebook", "nb2pipe"):
        section = notebook.metadata.get(key) or {}
        if not isinstance(section, dict):
            diagnostics.append(
                error(
                    "invalid-metadata",
                    f"notebook metadata {key!r} is not an object",
                    where,
                    "fix it in JupyterLab's notebook metadata editor",
                )
            )
            continue
        present = {k: v for k, v in section.items() if v not in (None, "", [])}
        merged.update(present)
        if key == "nb2pipe":
            own.update(present)

    def text(*keys: str, source: dict[str, object] = merged) -> str | None:
        for key in keys:
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if value is not None and not isinstance(value, str):
                diagnostics.append(
                    error(
                        "invalid-metadata",
                        f"notebook metadata {key!r} must be a string",
                        where,
                        "set it to a string in the notebook metadata",
                    )
                )
        return None

    experiment = text("experiment_name")
    if experiment is None and isinstance(merged.get("experiment"), dict):
        value = merged["experiment"].get("name")  # type: ignore[union-attr]
        experiment = value if isinstance(value, str) and value else None
    if merged.get("volumes"):
        diagnostics.append(
            warning(
                "unsupported-metadata",
                "Kale volumes are ignored: nb2pipe passes data between steps as artifacts",
                where,
                "remove 'volumes' from the notebook metadata to silence this",
            )
        )
    if merged.get("katib_run") is True:
        diagnostics.append(
            warning(
                "unsupported-metadata",
                "Kale's Katib tuning (katib_run) is not supported: the pipeline runs once, "
                "with the parameters' defaults",
                where,
                "run it per setting with --param NAME=VALUE, or set katib_run to false to silence this",
            )
        )
    default_tags, default_image = _step_defaults(merged.get("steps_defaults"), where, diagnostics)
    return PipelineSettings(
        name=sanitize_pipeline_name(name or text("pipeline_name") or _identifier_from_file(notebook.name)),
        description=text("pipeline_description") or f"Compiled by nb2pipe from {notebook.name}",
        experiment=experiment,
        image=image or default_image or text("image", "base_image", "docker_image") or fallback_image,
        step_defaults=_options(default_tags, StepOptions()),
        # nb2pipe's own keys: Kale keeps its KFP host in the lab settings, not the notebook
        kfp_host=text("kfp_host", source=own),
        mlflow_tracking_uri=text("mlflow_tracking_uri", source=own),
    )


def _step_defaults(value: object, where: Location, diagnostics: list[Diagnostic]) -> tuple[list[Tag], str | None]:
    if value is None:
        return [], None
    if isinstance(value, dict):  # the form Kale parses the list into: {"labels": {KEY: VALUE}, ...}
        value = _tags_from_kale_defaults(value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        diagnostics.append(
            error(
                "invalid-metadata",
                "notebook metadata 'steps_defaults' must be a list of tags",
                where,
                'e.g. ["label:team:ml", "limit:memory:4Gi"] (or Kale\'s {"labels": {"team": "ml"}})',
            )
        )
        return [], None
    tags: list[Tag] = []
    image = None
    for text in value:
        result = parse_tag(text)
        if isinstance(result, TagProblem):
            diagnostics.append(error("bad-tag", f"steps_defaults: {result.message}", where, result.hint))
        elif result.kind == "image":
            image = result.args[0]
        elif result.kind in OPTION_KINDS:
            tags.append(result)
        else:
            diagnostics.append(
                error(
                    "bad-tag",
                    f"steps_defaults cannot hold {text!r}",
                    where,
                    "steps_defaults holds settings such as limit:, label:, annotation:",
                )
            )
    return tags, image


_KALE_DEFAULT_KINDS = {"annotations": "annotation", "labels": "label", "limits": "limit"}


def _tags_from_kale_defaults(value: dict[object, object]) -> list[str] | None:
    """Kale's parsed ``steps_defaults`` back into tags; None when it is not of that form."""
    tags: list[str] = []
    for key, entries in value.items():
        kind = _KALE_DEFAULT_KINDS.get(key) if isinstance(key, str) else None
        if kind is None or not isinstance(entries, dict):
            return None
        tags += [f"{kind}:{name}:{setting}" for name, setting in entries.items()]
    return tags
