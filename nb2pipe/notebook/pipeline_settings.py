"""Notebook-level pipeline settings, and the step options that tags set.

- :func:`pipeline_settings` reads ``metadata.nb2pipe`` over Kale's ``metadata.kubeflow_notebook``:
  the pipeline's name, description, experiment, image, hosts, and the ``steps_defaults`` every
  step starts from (as a list of tags, or in the form Kale parses that list into).
- :func:`step_options` turns a step's option tags (``gpu:``, ``limit:``, ``label:``...) into
  :class:`~nb2pipe.ir.StepOptions`, later tags winning.
- :func:`sanitize_pipeline_name` and :func:`identifier_from_file` make the names KFP and Python accept.
"""

from __future__ import annotations

import re
from dataclasses import replace
from ipaddress import ip_address
from urllib.parse import urlsplit

from nb2pipe.deploy_checks import GPU_PRODUCT_LABEL
from nb2pipe.errors import Diagnostic, Location, error, warning
from nb2pipe.ir import (
    Notebook,
    PackageIndex,
    PipelineSettings,
    Resources,
    SecretEnv,
    StepOptions,
    Tag,
    VolumeMount,
    Workspace,
)
from nb2pipe.notebook.metadata import CODE, TEXT, Field, MetadataReader
from nb2pipe.notebook.scheduling import SCHEDULING_KINDS, SchedulingDraft, env_of, gpu_product_conflict
from nb2pipe.notebook.tags import TagProblem, parse_tag, split_packages
from nb2pipe.notebook.volumes import kale_volumes

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
        "volume",
    }
    | SCHEDULING_KINDS
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


def step_options(
    tags: list[Tag], base: StepOptions, diagnostics: list[Diagnostic] | None = None, where: Location | None = None
) -> StepOptions:
    """Step options from tags, later tags winning, merged over ``base``; with ``diagnostics``,
    settings that contradict each other are reported there, at ``where``."""
    options = base
    resources = base.resources
    packages = list(base.packages)
    annotations = dict(base.annotations)
    labels = dict(base.labels)
    secrets = {secret.env: secret for secret in base.secrets}
    env_vars = dict(base.env)
    scheduling = SchedulingDraft(base)
    mounted: list[VolumeMount] = []
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
            env_vars.pop(args[2], None)  # a variable has one value: the later tag's
        elif kind == "report":
            options = replace(options, html_report=args[0] == "enabled")
        elif kind == "env":
            name, value = env_of(args)
            env_vars[name] = value
            secrets.pop(name, None)
        elif kind in SCHEDULING_KINDS:
            scheduling.add(tag)
        elif kind == "volume":
            mounted.append(VolumeMount(path=args[1], claim=args[0]))
    # a step's volume: tag replaces the default mounted at its path; two tags at one path stay
    # for the planner to report
    tagged = {mount.path for mount in mounted}
    volumes = {*mounted, *(mount for mount in base.volumes if mount.path not in tagged)}
    merged = replace(
        scheduling.options(options),
        resources=resources,
        packages=tuple(dict.fromkeys(packages)),
        annotations=tuple(sorted(annotations.items())),
        labels=tuple(sorted(labels.items())),
        secrets=tuple(secrets[env] for env in sorted(secrets)),
        volumes=tuple(sorted(volumes, key=lambda mount: (mount.path, mount.claim))),
        env=tuple(sorted(env_vars.items())),
    )
    conflict = gpu_product_conflict(merged)
    if diagnostics is not None and conflict and conflict != gpu_product_conflict(base):
        product, chosen = conflict
        diagnostics.append(
            warning(
                "conflicting-tags",
                f"the GPU product {product!r} (gpu:) and the node selector {GPU_PRODUCT_LABEL}={chosen} "
                f"(node:) differ: the step runs on {chosen} nodes",
                where or Location(""),
                "name one product: drop the node: tag, or the product from the gpu: tag",
            )
        )
    return merged


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
    diagnostics.extend(kale_internals(merged, where))
    default_tags, default_image = _step_defaults(merged.get("steps_defaults"), "steps_defaults" in own, reader)
    return PipelineSettings(
        name=sanitize_pipeline_name(name or text("pipeline_name") or identifier_from_file(notebook.name)),
        description=text("pipeline_description") or f"Compiled by nb2pipe from {notebook.name}",
        experiment=experiment,
        image=image or default_image or text("image", "base_image", "docker_image") or fallback_image,
        # Kale's volumes are mounted on every step: the defaults' volume: tags and each step's override them
        step_defaults=step_options(
            default_tags, StepOptions(volumes=kale_volumes(merged, _section_of(own), reader)), diagnostics, where
        ),
        # nb2pipe's own keys: Kale keeps its KFP host in the lab settings, not the notebook
        kfp_host=text("kfp_host", source=own),
        mlflow_tracking_uri=text("mlflow_tracking_uri", source=own),
        package_index=_package_index(own, reader),
        workspace=_workspace(own, reader),
        timeout_seconds=_timeout(merged, own, reader),
    )


def _section_of(own: dict[str, object]) -> str:
    """Which section ``volumes`` (and its storage_class_name, volume_access_mode) came from, for messages."""
    return "nb2pipe" if "volumes" in own else "kubeflow_notebook"


#: Kale's pipeline ``timeout``: seconds, as a pod's activeDeadlineSeconds (int64)
PIPELINE_TIMEOUT = Field((int,), low=1, high=2**63 - 1, kind="a whole number of seconds", example="e.g. 3600")


def _timeout(merged: dict[str, object], own: dict[str, object], reader: MetadataReader) -> int | None:
    value = merged.get("timeout")
    name = f"{'nb2pipe' if 'timeout' in own else 'kubeflow_notebook'}.timeout"
    return int(value) if value is not None and reader.check(value, name, PIPELINE_TIMEOUT) else None  # type: ignore[call-overload]


def kale_internals(merged: dict[str, object], where: Location) -> list[Diagnostic]:
    """Warnings for Kale settings that have no meaning here: Rok snapshots (Kale's panel writes
    ``autosnapshot``/``snapshot_volumes``) and its marshal volume (values move as artifacts)."""
    found: list[Diagnostic] = []
    snapshots = [key for key in ("autosnapshot", "snapshot_volumes") if merged.get(key) is True]
    if snapshots:
        found.append(
            warning(
                "unsupported-metadata",
                f"Kale's Rok snapshots ({', '.join(snapshots)}) are not taken: every step's outputs are kept as KFP "
                "artifacts, and nb2pipe run --resume RUN_ID finishes a run from them",
                where,
                f"set {' and '.join(snapshots)} to false to silence this",
            )
        )
    marshal = [key for key in ("marshal_volume", "marshal_path", "abs_working_dir") if key in merged]
    if marshal:
        found.append(
            warning(
                "unsupported-metadata",
                f"Kale's marshal settings ({', '.join(marshal)}) have no effect: values move between steps as typed "
                "KFP artifacts, not through a marshal volume",
                where,
                f"remove {', '.join(marshal)} from the notebook metadata to silence this",
            )
        )
    return found


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


#: ``pip_index_urls`` / ``pip_trusted_hosts`` in ``metadata.nb2pipe``
_INDEX_LIST = Field((list,), items=(str,), kind="a list of strings", example='e.g. ["https://pypi.example.com/simple"]')
#: what pip's --trusted-host takes
_TRUSTED_HOST_HINT = "give HOST or HOST:PORT, as pip's --trusted-host takes, e.g. pypi.example.com"


def index_url_problem(url: str) -> tuple[str, str] | None:
    """What is wrong with ``url`` as a pip package index, and the fix; None when nothing.

    A credential in the URL is refused: the URL is written into the pipeline YAML (and
    shown by Kubeflow's UI) in clear. pip reads ``PIP_INDEX_URL`` from the environment,
    so the URL with its token belongs in a Kubernetes secret that a ``secret:`` tag turns
    into that variable."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    if host is None or parts.scheme not in ("http", "https") or any(ch.isspace() for ch in url):
        shown = url if "@" not in url else "***@" + url.rsplit("@", 1)[1]  # never echo a credential
        return (
            f"{shown!r} is not an http:// or https:// URL",
            "give the index's URL, e.g. https://pypi.example.com/simple",
        )
    if parts.username is not None or parts.password is not None:
        shown = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
        return (
            f"{shown!r} holds a credential, which the pipeline YAML would show in clear",
            "leave the index out of the pipeline: keep its URL in a Kubernetes secret and set PIP_INDEX_URL from "
            "it with a steps_defaults tag secret:SECRET:KEY:PIP_INDEX_URL (or bake a pip.conf into the image)",
        )
    return None


def trusted_host_problem(host: str) -> tuple[str, str] | None:
    """What is wrong with ``host`` as pip's ``--trusted-host``, and the fix; None when nothing."""
    try:
        parsed = urlsplit(f"//{host}").hostname
    except ValueError:
        parsed = None
    if not parsed or any(ch in host for ch in "/@?#") or any(ch.isspace() for ch in host):
        return f"{host!r} is not a host name", _TRUSTED_HOST_HINT
    return None


def untrusted_http_urls(index: PackageIndex) -> list[str]:
    """The index's http:// URLs that pip would skip as "not a trusted or secure host": their
    host is neither trusted nor loopback (pip trusts localhost and 127.0.0.0/8 itself)."""
    trusted = {host.lower() for host in index.trusted_hosts}
    untrusted = []
    for url in index.urls:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "http" or host == "localhost" or _is_loopback(host):
            continue
        if host not in trusted and parts.netloc.rsplit("@", 1)[-1].lower() not in trusted:
            untrusted.append(url)
    return untrusted


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _package_index(own: dict[str, object], reader: MetadataReader) -> PackageIndex:
    """``metadata.nb2pipe.pip_index_urls`` and ``pip_trusted_hosts`` (nb2pipe's own keys: Kale
    takes its index on the command line); values with a problem are reported and left out."""
    lists: dict[str, list[str]] = {}
    where = reader.where
    for key, problem_of in (("pip_index_urls", index_url_problem), ("pip_trusted_hosts", trusted_host_problem)):
        value = own.get(key)
        lists[key] = []
        if value is None or not reader.check(value, f"nb2pipe.{key}", _INDEX_LIST) or not isinstance(value, list):
            continue
        for item in value:
            problem = problem_of(item)
            if problem is None:
                lists[key].append(item)
            else:
                reader.diagnostics.append(
                    error(CODE, f"notebook metadata nb2pipe.{key}: {problem[0]}", where, problem[1])
                )
    index = PackageIndex(
        tuple(dict.fromkeys(lists["pip_index_urls"])), tuple(dict.fromkeys(lists["pip_trusted_hosts"]))
    )
    for url in untrusted_http_urls(index):
        message = (
            f"notebook metadata nb2pipe.pip_index_urls: pip skips {url!r}: an http:// index must be a trusted host"
        )
        hint = f"add {urlsplit(url).hostname!r} to nb2pipe.pip_trusted_hosts, or serve the index over https"
        reader.diagnostics.append(error(CODE, message, where, hint))
    return index


#: a Kubernetes quantity, as KFP's WorkspaceConfig checks a workspace's size
_QUANTITY = re.compile(r"(0|[1-9]\d*)(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|K|M|G|T|P|E)?")
_WORKSPACE_FIELDS = {
    "size": Field((str,), kind="a Kubernetes quantity", example='e.g. "20Gi"'),
    "storage_class": TEXT,
    "large_value_mb": Field((float,), low=0),
}


def _workspace(own: dict[str, object], reader: MetadataReader) -> Workspace | None:
    """``metadata.nb2pipe.workspace``: KFP's per-run workspace volume (``size``, ``storage_class``),
    through which values larger than ``large_value_mb`` MiB go (64 unless set)."""
    section = reader.section({"nb2pipe": own}, "nb2pipe.workspace")
    if section is None:
        return None
    values = reader.fields(section, "nb2pipe.workspace", _WORKSPACE_FIELDS)
    size = str(values.get("size", "")).strip()
    if not _QUANTITY.fullmatch(size):
        shown = f"not {size!r}" if "size" in values else "and it is missing"
        reader.report("nb2pipe.workspace.size", f"must be a Kubernetes quantity, {shown}", 'e.g. "20Gi"')
        return None
    workspace = Workspace(size, str(values["storage_class"]).strip() or None if "storage_class" in values else None)
    if "large_value_mb" in values:
        workspace = replace(workspace, large_value_bytes=int(values["large_value_mb"] * 2**20))
    return workspace
