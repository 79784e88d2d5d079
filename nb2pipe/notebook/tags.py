"""The cell-tag grammar: nb2pipe's spelling and Kale's (old and new), one table.

A tag is ``KIND`` or ``KIND:FIELD[:FIELD...]``. Each :class:`TagSpec` says how many fields
its kind takes (the last may keep further colons, as ``image:python:3.11`` does) and
checks them; unknown kinds answer with "did you mean".
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from nb2pipe import k8s_names
from nb2pipe.deploy_checks import gpu_type_problem
from nb2pipe.ir import DEPLOY_MODES, EXPLAIN_METHODS, RUNTIME_CHOICES, SCALE_METRICS, Tag, is_service_name
from nb2pipe.notebook import scheduling
from nb2pipe.notebook.volumes import claim_problem, mount_path_problem

#: Tags whose cell plays a whole role; a cell has at most one.
ROLE_KINDS = ("imports", "functions", "parameters", "metrics", "skip")

Check = Callable[[tuple[str, ...]], str]


@dataclass(frozen=True)
class TagSpec:
    kind: str
    spellings: tuple[str, ...]
    fields: int
    usage: str
    check: Check
    rest_keeps_colons: bool = False


def _no_check(fields: tuple[str, ...]) -> str:
    return ""


def is_step_name(text: str) -> bool:
    """Letters, digits, ``_`` and ``-``, starting with a letter or ``_``."""
    return (
        bool(text)
        and (text[0].isalpha() or text[0] == "_")
        and all(ch.isalnum() or ch in "_-" for ch in text)
        and text.isascii()
    )


def _check_step_name(fields: tuple[str, ...]) -> str:
    name = fields[0]
    if name == "" or is_step_name(name):
        return ""
    return f"{name!r} is not a valid step name: use letters, digits, '_' and '-', starting with a letter"


def _check_required_step_name(fields: tuple[str, ...]) -> str:
    if not fields[0]:
        return "a step name is required"
    return _check_step_name(fields)


def _is_uint(text: str) -> bool:
    return text.isascii() and text.isdigit()  # isdigit alone takes '²' and Arabic-Indic digits


#: Largest values the fields behind the tags hold: KFP's retry count and KServe's replica
#: counts and scale target are int32; the pod's activeDeadlineSeconds and KFP's accelerator
#: count are int64.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def _whole_in(text: str, low: int, high: int) -> bool:
    """ASCII digits whose value lies in ``[low, high]``; the length is checked before ``int()``,
    which refuses strings of more than 4300 digits."""
    digits = text.lstrip("0") or "0"
    return _is_uint(text) and len(digits) <= len(str(high)) and low <= int(digits) <= high


def _range(low: int, high: int) -> str:
    return f"a whole number of at least {low} and at most {high}"


def _shown(text: str) -> str:
    """A field as messages quote it, cut short (a tag may hold thousands of digits)."""
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def is_cpu_quantity(text: str) -> bool:
    """Kubernetes CPU quantity as KFP accepts it: ``2``, ``0.5``, ``500m``."""
    number = text[:-1] if text.endswith("m") else text
    whole, dot, fraction = number.partition(".")
    if dot:
        return (whole == "" or _is_uint(whole)) and _is_uint(fraction)
    return _is_uint(whole)


_MEMORY_SUFFIXES = ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki", "E", "P", "T", "G", "M", "K")


def is_memory_quantity(text: str) -> bool:
    """Kubernetes memory quantity as KFP accepts it: ``512Mi``, ``4G``, ``1000000``."""
    for suffix in _MEMORY_SUFFIXES:
        if text.endswith(suffix):
            return _is_uint(text[: -len(suffix)])
    return _is_uint(text)


def _check_cpu(fields: tuple[str, ...]) -> str:
    return "" if is_cpu_quantity(fields[0]) else f"{fields[0]!r} is not a CPU quantity (e.g. 2, 0.5, 500m)"


def _check_memory(fields: tuple[str, ...]) -> str:
    if is_memory_quantity(fields[0]):
        return ""
    return f"{fields[0]!r} is not a memory quantity (e.g. 512Mi, 4Gi, 2G)"


def _check_shm(fields: tuple[str, ...]) -> str:
    size = fields[0]
    if not is_memory_quantity(size):
        return f"{_shown(size)} is not a memory quantity (e.g. 1Gi, 512Mi)"
    return "" if size.rstrip("EPTGMKi").strip("0") else "the shared memory size must be above zero"


def _check_gpu(fields: tuple[str, ...]) -> str:
    count = fields[0]
    if not _whole_in(count, 1, INT64_MAX):
        return f"GPU count {_shown(count)} must be {_range(1, INT64_MAX)}"
    if len(fields) > 1 and not fields[1]:
        return "the accelerator type after the count is empty"
    if len(fields) > 1:
        return gpu_type_problem(fields[1]) or ""
    return ""


def _check_limit(fields: tuple[str, ...]) -> str:
    resource, value = fields
    if resource == "cpu":
        return _check_cpu((value,))
    if resource == "memory":
        return _check_memory((value,))
    if "/" in resource:
        if not _whole_in(value, 0, INT64_MAX):
            return f"accelerator limit {_shown(value)} must be {_range(0, INT64_MAX)}"
        return gpu_type_problem(resource) or ""
    return f"unsupported resource {resource!r}: limits cover cpu, memory and accelerators such as nvidia.com/gpu"


def _check_image(fields: tuple[str, ...]) -> str:
    return "" if fields[0] and " " not in fields[0] else "the image reference is empty or has spaces"


def split_packages(text: str) -> list[str]:
    """``pandas>=2,<3;rich`` -> ``["pandas>=2,<3", "rich"]``.

    Requirements are separated by ``,`` or ``;`` (nbformat's schema forbids commas in tags,
    so ``;`` keeps a notebook valid). A part starting with a version operator continues the
    requirement before it.
    """
    parts: list[str] = []
    for piece in text.replace(";", ",").split(","):
        piece = piece.strip()
        if not piece:
            continue
        if parts and piece[0] in "<>=!~":
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return parts


def _check_packages(fields: tuple[str, ...]) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    items = split_packages(fields[0])
    if not items:
        return "no package named"
    for item in items:
        try:
            Requirement(item)
        except InvalidRequirement as exc:
            return f"{item!r} is not a pip requirement: {exc}"
    return ""


def _one_of(*choices: str) -> Check:
    def check(fields: tuple[str, ...]) -> str:
        return "" if fields[0] in choices else f"expected one of {', '.join(choices)}, got {fields[0]!r}"

    return check


def _check_uint(what: str, minimum: int, maximum: int) -> Check:
    def check(fields: tuple[str, ...]) -> str:
        if _whole_in(fields[0], minimum, maximum):
            return ""
        return f"{what} {_shown(fields[0])} must be {_range(minimum, maximum)}"

    return check


def _check_label(fields: tuple[str, ...]) -> str:
    return k8s_names.qualified_name_problem(fields[0]) or k8s_names.label_value_problem(fields[1])


def _check_annotation(fields: tuple[str, ...]) -> str:
    return k8s_names.qualified_name_problem(fields[0]) or k8s_names.annotation_value_problem(fields[1])


def _check_secret(fields: tuple[str, ...]) -> str:
    name, key, env = fields
    return (
        k8s_names.subdomain_problem(name, "secret name")
        or k8s_names.secret_key_problem(key)
        or k8s_names.env_name_problem(env)
    )


def _check_volume(fields: tuple[str, ...]) -> str:
    return claim_problem(fields[0]) or mount_path_problem(fields[1])


def _check_register(fields: tuple[str, ...]) -> str:
    name = fields[0]
    if not name or any(ch in name for ch in "/:@%") or not name.isprintable():
        return "the model name is empty or holds '/', ':', '@' or '%'"
    if len(fields) > 1 and not fields[1].isidentifier():
        return f"{fields[1]!r} is not a variable name"
    return ""


def _check_promote(fields: tuple[str, ...]) -> str:
    text = fields[0]
    metric = text[:-2]
    if text[-2:] not in (">=", "<=") or not metric.isidentifier():
        return "write the metric and the better direction, e.g. promote:accuracy>= or promote:rmse<="
    return ""


def _check_drift(fields: tuple[str, ...]) -> str:
    bad = [name for name in fields if not name.isidentifier()]
    if bad or len(fields) > 2:
        return "name the data to test, and optionally the reference, as variables: drift:X_new or drift:X_new:X_train"
    return ""


def _check_service(fields: tuple[str, ...]) -> str:
    if is_service_name(fields[0]):
        return ""
    return f"{fields[0]!r} is not a service name: lowercase letters, digits and '-', starting with a letter"


def _check_replicas(fields: tuple[str, ...]) -> str:
    low, dash, high = fields[0].partition("-")
    if not _is_uint(low) or (dash and not _is_uint(high)):
        return "write replicas:MIN-MAX (e.g. replicas:0-3) or replicas:N"
    if not all(_whole_in(count, 0, INT32_MAX) for count in (low, high or low)):
        return f"replica counts must be {_range(0, INT32_MAX)} (KServe's limit)"
    if dash and int(low) > int(high):
        return f"the minimum {low} is above the maximum {high}"
    if int(high or low) < 1:
        return "the maximum must be at least 1"
    return ""


def _check_scale(fields: tuple[str, ...]) -> str:
    metric, equals, target = fields[0].partition("=")
    if metric not in SCALE_METRICS or not equals or not _is_uint(target):
        return "write scale:METRIC=TARGET with METRIC concurrency, rps, cpu or memory (e.g. scale:concurrency=10)"
    return "" if _whole_in(target, 1, INT32_MAX) else f"the target must be {_range(1, INT32_MAX)}"


def _check_percent(fields: tuple[str, ...]) -> str:
    value = fields[0]
    return "" if _whole_in(value, 0, 100) else f"{_shown(value)} must be a whole percentage from 0 to 100"


#: KServe's legacy names of the modes (still accepted by KServe) and other likely spellings
_MODE_ALIASES = {"serverless": "knative", "rawdeployment": "standard", "raw": "standard", "kpa": "knative"}


def _check_mode(fields: tuple[str, ...]) -> str:
    value = fields[0]
    if value in DEPLOY_MODES:
        return ""
    lowered = value.lower()
    guess = _MODE_ALIASES.get(lowered) or next(iter(difflib.get_close_matches(lowered, DEPLOY_MODES, n=1)), None)
    problem = f"{_shown(value)} is not a deployment mode: expected {' or '.join(DEPLOY_MODES)}"
    return f"{problem}; did you mean 'mode:{guess}'?" if guess else problem


def _check_runtime(fields: tuple[str, ...]) -> str:
    value = fields[0]
    if value in RUNTIME_CHOICES:
        return ""
    guess = next(iter(difflib.get_close_matches(value.lower(), RUNTIME_CHOICES, n=1)), None)
    problem = f"{_shown(value)} is not a serving runtime: expected {', '.join(RUNTIME_CHOICES)}"
    return f"{problem}; did you mean 'runtime:{guess}'?" if guess else problem


def _check_notebook_path(fields: tuple[str, ...]) -> str:
    path = fields[0]
    if not path.strip():
        return "a notebook path is required"
    if path.startswith("/"):
        return "the path is relative to this notebook's folder, so that the pair compiles on any machine"
    return ""


def notebook_file(path: str) -> str:
    """The file a ``notebook:`` tag names: Kale names a notebook without its ``.ipynb``."""
    return path if path.endswith(".ipynb") else f"{path}.ipynb"


SPECS: tuple[TagSpec, ...] = (
    TagSpec("imports", ("imports",), 0, "imports", _no_check),
    TagSpec("functions", ("functions",), 0, "functions", _no_check),
    TagSpec("parameters", ("parameters", "pipeline-parameters"), 0, "parameters", _no_check),
    TagSpec("metrics", ("metrics", "pipeline-metrics"), 0, "metrics", _no_check),
    TagSpec("skip", ("skip", "injected-parameters"), 0, "skip", _no_check),
    TagSpec("step", ("step", "block"), 1, "step:NAME", _check_step_name),
    TagSpec("after", ("after", "prev"), 1, "after:NAME", _check_required_step_name),
    TagSpec("gpu", ("gpu",), 2, "gpu:N[:TYPE]", _check_gpu, rest_keeps_colons=True),
    TagSpec("cpu", ("cpu",), 1, "cpu:QUANTITY", _check_cpu),
    TagSpec("memory", ("memory",), 1, "memory:QUANTITY", _check_memory),
    TagSpec("limit", ("limit",), 2, "limit:RESOURCE:VALUE", _check_limit),
    TagSpec("image", ("image",), 1, "image:IMAGE", _check_image, rest_keeps_colons=True),
    TagSpec("packages", ("packages",), 1, "packages:PKG[;PKG]", _check_packages, rest_keeps_colons=True),
    TagSpec("cache", ("cache",), 1, "cache:on|off", _one_of("on", "off", "enabled", "disabled")),
    TagSpec("retry", ("retry",), 1, "retry:N", _check_uint("retry count", 0, INT32_MAX)),
    TagSpec("timeout", ("timeout",), 1, "timeout:SECONDS", _check_uint("timeout", 1, INT64_MAX)),
    TagSpec("annotation", ("annotation",), 2, "annotation:KEY:VALUE", _check_annotation, rest_keeps_colons=True),
    TagSpec("label", ("label",), 2, "label:KEY:VALUE", _check_label, rest_keeps_colons=True),
    TagSpec("secret", ("secret",), 3, "secret:NAME:KEY:ENV", _check_secret),
    TagSpec("toleration", ("toleration",), 2, "toleration:KEY[=VALUE]:EFFECT", scheduling.check_toleration),
    TagSpec("node", ("node",), 1, "node:KEY=VALUE", scheduling.check_node),
    TagSpec("affinity", ("affinity",), 1, "affinity:KEY[=V1|V2]", scheduling.check_affinity),
    TagSpec(
        "prefer-affinity",
        ("prefer-affinity",),
        2,
        "prefer-affinity:KEY[=V1|V2][:WEIGHT]",
        scheduling.check_preferred_affinity,
        rest_keeps_colons=True,
    ),
    TagSpec("shm", ("shm",), 1, "shm:SIZE", _check_shm),
    TagSpec("env", ("env",), 1, "env:NAME=VALUE", scheduling.check_env, rest_keeps_colons=True),
    TagSpec("report", ("report",), 1, "report:enabled|disabled", _one_of("enabled", "disabled")),
    TagSpec("volume", ("volume",), 2, "volume:CLAIM:PATH", _check_volume),
    TagSpec("register", ("register",), 2, "register:MODEL_NAME[:VARIABLE]", _check_register, rest_keeps_colons=True),
    TagSpec("promote", ("promote",), 1, "promote:METRIC>= or promote:METRIC<=", _check_promote),
    TagSpec("deploy", ("deploy",), 1, "deploy:SERVICE_NAME", _check_service),
    TagSpec("replicas", ("replicas",), 1, "replicas:MIN-MAX", _check_replicas),
    TagSpec("scale", ("scale",), 1, "scale:METRIC=TARGET", _check_scale),
    TagSpec("canary", ("canary",), 1, "canary:PCT", _check_percent),
    TagSpec("mode", ("mode",), 1, "mode:knative|standard", _check_mode),
    TagSpec("runtime", ("runtime",), 1, "runtime:auto|kserve|predictive|mlserver|nb2pipe", _check_runtime),
    TagSpec("monitor", ("monitor",), 0, "monitor", _no_check),
    TagSpec("drift", ("drift",), 2, "drift:CURRENT[:REFERENCE]", _check_drift, rest_keeps_colons=True),
    TagSpec("explain", ("explain",), 1, "explain:anchor|ig", _one_of(*EXPLAIN_METHODS)),
    TagSpec("notebook", ("notebook",), 1, "notebook:PATH", _check_notebook_path, rest_keeps_colons=True),
)

#: Tags whose fields after the first are optional (``gpu:N[:TYPE]``, ``register:NAME[:VARIABLE]``).
_OPTIONAL_REST = ("gpu", "register", "drift", "prefer-affinity")

_BY_SPELLING = {spelling: spec for spec in SPECS for spelling in spec.spellings}


@dataclass(frozen=True)
class TagProblem:
    tag: str
    message: str
    hint: str
    code: str = "bad-tag"
    is_error: bool = True


def parse_tag(text: str) -> Tag | TagProblem:
    """Parse one tag into its canonical :class:`Tag`, or say what is wrong with it."""
    head, colon, rest = text.partition(":")
    spec = _BY_SPELLING.get(head)
    if spec is None:
        return _unknown(text, head, colon, rest)
    if spec.fields == 0:
        if colon:
            return TagProblem(text, f"tag {_shown(head)} takes no value", f"write it as {spec.usage!r}")
        return Tag(spec.kind, (), text)
    if not colon:
        return TagProblem(text, f"tag {_shown(head)} needs a value", f"write it as {spec.usage!r}")
    fields = _split_fields(rest, spec)
    if fields is None:
        return TagProblem(text, f"tag {_shown(text)} has the wrong number of fields", f"write it as {spec.usage!r}")
    problem = spec.check(fields)
    if problem:
        return TagProblem(text, f"tag {_shown(text)}: {problem}", f"write it as {spec.usage!r}")
    return Tag(spec.kind, fields, text)


def _split_fields(rest: str, spec: TagSpec) -> tuple[str, ...] | None:
    if spec.rest_keeps_colons:
        parts = rest.split(":", spec.fields - 1)
        if spec.kind in _OPTIONAL_REST:
            return tuple(parts)
        return tuple(parts) if len(parts) == spec.fields else None
    parts = rest.split(":")
    return tuple(parts) if len(parts) == spec.fields else None


def _unknown(text: str, head: str, colon: str, rest: str) -> TagProblem:
    spellings = sorted(_BY_SPELLING)
    alias = scheduling.KIND_ALIASES.get(head.lower())
    close = [alias] if alias else difflib.get_close_matches(head, spellings, n=1, cutoff=0.75)
    if close:
        suggestion = close[0] + (colon + rest if colon else "")
        return TagProblem(text, f"unknown tag {_shown(text)}", f"did you mean {_shown(suggestion)}?", "unknown-tag")
    if colon:
        known = ", ".join(spec.usage for spec in SPECS)
        return TagProblem(text, f"unknown tag {_shown(text)}", f"nb2pipe knows: {known}", "unknown-tag")
    # A bare word that resembles nothing of ours is most likely another tool's tag
    # (jupyter-book's remove-cell, nbconvert's raises-exception): leave it alone.
    return TagProblem(text, f"tag {_shown(text)} is not an nb2pipe tag and is ignored", "", "foreign-tag", False)
