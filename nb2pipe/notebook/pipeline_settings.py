"""Notebook-level pipeline settings, and the step options that tags set.

- :func:`pipeline_settings` reads ``metadata.nb2pipe`` over Kale's ``metadata.kubeflow_notebook``:
  the pipeline's name, description, experiment, image, hosts, and the ``steps_defaults`` every
  step starts from (as a list of tags, or in the form Kale parses that list into).
- :func:`step_options` turns a step's option tags (``gpu:``, ``limit:``, ``label:``...) into
  :class:`~nb2pipe.ir.StepOptions`, later tags winning.
- :func:`sanitize_pipeline_name` and :func:`identifier_from_file` make the names KFP and Python accept.
"""

from __future__ import annotations

from dataclasses import replace

from nb2pipe.errors import Diagnostic, Location, error, warning
from nb2pipe.ir import Notebook, PipelineSettings, Resources, SecretEnv, StepOptions, Tag
from nb2pipe.notebook.metadata import TEXT, Field, MetadataReader
from nb2pipe.notebook.tags import TagProblem, parse_tag, split_packages

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


def identifier_from_file(file_name: str) -> str:
    """A lowercase identifier from a notebook's file name: the default step and pipeline name."""
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


def step_options(tags: list[Tag], base: StepOptions) -> StepOptions:
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


def pipeline_settings(
    notebook: Notebook,
    diagnostics: list[Diagnostic],
    *,
    name: str | None,
    image: str | None,
    fallback_image: str | None,
) -> PipelineSettings:
    """Notebook-level settings: ``metadata.nb2pipe`` over Kale's ``metadata.kubeflow_notebook``.

    A setting's type is checked where it is used: one that ``--name`` or ``--image``, or the
    same key in ``metadata.nb2pipe``, overrides is not read at all."""
    where = Location(notebook.path)
    reader = MetadataReader(where, diagnostics)
    merged: dict[str, object] = {}
    own: dict[str, object] = {}
    for key in ("kubeflow_notebook", "nb2pipe"):
        section = reader.section(notebook.metadata, key) or {}
        present = {k: v for k, v in section.items() if v not in (None, "", [])}
        merged.update(present)
        if key == "nb2pipe":
            own.update(present)

    def text(*keys: str, source: dict[str, object] = merged) -> str | None:
        for key in keys:
            value = source.get(key)
            name = f"{'nb2pipe' if key in own else 'kubeflow_notebook'}.{key}"
            if value is not None and reader.check(value, name, TEXT) and str(value).strip():
                return str(value).strip()
        return None

    experiment = text("experiment_name")
    kale_experiment = merged.get("experiment")  # Kale's {"name": ..., "id": ...}
    if experiment is None and isinstance(kale_experiment, dict):
        value = kale_experiment.get("name")
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
    default_tags, default_image = _step_defaults(merged.get("steps_defaults"), "steps_defaults" in own, reader)
    return PipelineSettings(
        name=sanitize_pipeline_name(name or text("pipeline_name") or identifier_from_file(notebook.name)),
        description=text("pipeline_description") or f"Compiled by nb2pipe from {notebook.name}",
        experiment=experiment,
        image=image or default_image or text("image", "base_image", "docker_image") or fallback_image,
        step_defaults=step_options(default_tags, StepOptions()),
        # nb2pipe's own keys: Kale keeps its KFP host in the lab settings, not the notebook
        kfp_host=text("kfp_host", source=own),
        mlflow_tracking_uri=text("mlflow_tracking_uri", source=own),
    )


#: ``steps_defaults``: option tags (or Kale's parsed form of them, turned back into tags)
STEP_DEFAULTS = Field(
    (list,),
    items=(str,),
    kind="a list of tags",
    example='e.g. ["label:team:ml", "limit:memory:4Gi"] (or Kale\'s {"labels": {"team": "ml"}})',
)


def _step_defaults(value: object, own: bool, reader: MetadataReader) -> tuple[list[Tag], str | None]:
    """``steps_defaults`` (``own``: from ``metadata.nb2pipe``) as option tags, and the image it
    names (which sets the pipeline's image)."""
    if value is None:
        return [], None
    if isinstance(value, dict):  # the form Kale parses the list into: {"labels": {KEY: VALUE}, ...}
        value = _tags_from_kale_defaults(value)
    name = f"{'nb2pipe' if own else 'kubeflow_notebook'}.steps_defaults"
    if not reader.check(value, name, STEP_DEFAULTS) or not isinstance(value, list):
        return [], None
    where, diagnostics = reader.where, reader.diagnostics
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


def _tags_from_kale_defaults(value: dict[object, object]) -> list[str] | dict[object, object]:
    """Kale's parsed ``steps_defaults`` back into tags; ``value`` itself when it is not of that form."""
    tags: list[str] = []
    for key, entries in value.items():
        kind = _KALE_DEFAULT_KINDS.get(key) if isinstance(key, str) else None
        if kind is None or not isinstance(entries, dict):
            return value
        tags += [f"{kind}:{name}:{setting}" for name, setting in entries.items()]
    return tags
