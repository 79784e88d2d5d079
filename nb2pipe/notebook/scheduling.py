"""Scheduling tags: where a step's pod may run and what it starts with.

- ``toleration:KEY[=VALUE]:EFFECT``: tolerate a taint (operator ``Exists`` without a value,
  ``Equal`` with one); EFFECT is ``NoSchedule``, ``PreferNoSchedule`` or ``NoExecute``.
- ``node:KEY=VALUE``: a node selector label.
- ``affinity:EXPR`` (required) and ``prefer-affinity:EXPR[:WEIGHT]`` (preferred, weight 1-100,
  default 1) node affinity, EXPR one of ``KEY`` (Exists), ``!KEY`` (DoesNotExist),
  ``KEY=V1|V2`` (In), ``KEY!=V1|V2`` (NotIn), ``KEY>N`` (Gt), ``KEY<N`` (Lt). A step's required
  expressions must all hold (one node selector term); its preferred ones add their weights.
- ``shm:SIZE``: an in-memory emptyDir of SIZE at ``/dev/shm`` (PyTorch DataLoader workers
  share batches through it; a container's default is 64Mi). It counts against the memory limit.
- ``env:NAME=VALUE``: an environment variable; VALUE may hold ``:`` and ``=``.

Each kind merges per key (taint key and effect, label key, variable name), later tags winning,
so a step's own tags override the notebook's ``steps_defaults``. Kale (up to 2.x) has no
spelling for any of these.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace

from nb2pipe import k8s_names
from nb2pipe.deploy_checks import GPU_PRODUCT_LABEL, gpu_product_label
from nb2pipe.ir import NodeAffinityRule, StepOptions, Tag, Toleration

#: Tag kinds this module reads.
SCHEDULING_KINDS = frozenset({"toleration", "node", "affinity", "prefer-affinity", "shm", "env"})

#: Other spellings people reach for, answered with "did you mean".
KIND_ALIASES = {
    "tolerate": "toleration",
    "taint": "toleration",
    "node-selector": "node",
    "node_selector": "node",
    "nodeselector": "node",
    "node-affinity": "affinity",
    "node_affinity": "affinity",
    "preferred-affinity": "prefer-affinity",
    "affinity-prefer": "prefer-affinity",
    "shm-size": "shm",
    "shm_size": "shm",
    "shared-memory": "shm",
    "environment": "env",
    "envvar": "env",
    "env-var": "env",
}

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
SHM_PATH = "/dev/shm"
SHM_VOLUME = "nb2pipe-shm"

#: Variables nb2pipe's local runner sets for each step to run it (runners/local.py): a step's
#: own value would replace the runner's and break the run. MLFLOW_TRACKING_URI,
#: NB2PIPE_DEPLOY_TARGET and NB2PIPE_SERVER_IMAGE are settings a step may take: ``env:`` wins.
RUNNER_ENV = frozenset(
    {"NB2PIPE_FAST_EXIT", "NB2PIPE_RUNNER_PID", "NB2PIPE_STORE", "NB2PIPE_VARIABLES_DIR", "NB2PIPE_WAIT_FOR_INPUTS"}
)

#: (symbol, operator) in the order they are looked for: "!=" before "=".
_AFFINITY_SYMBOLS = (("!=", "NotIn"), ("=", "In"), (">", "Gt"), ("<", "Lt"))
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _label_key_problem(key: str) -> str:
    return k8s_names.qualified_name_problem(key) if key else "the label key is empty"


def check_toleration(fields: tuple[str, ...]) -> str:
    key, _, value = fields[0].partition("=")
    if not key:
        return "the taint key is empty"
    problem = k8s_names.qualified_name_problem(key) or k8s_names.label_value_problem(value)
    if problem:
        return problem.replace("label value", "taint value")
    effect = fields[1]
    if effect in TAINT_EFFECTS:
        return ""
    guess = next((e for e in TAINT_EFFECTS if e.lower() == effect.lower()), None)
    guess = guess or next(iter(difflib.get_close_matches(effect, TAINT_EFFECTS, n=1, cutoff=0.6)), None)
    problem = f"{effect[:40]!r} is not a taint effect: expected {', '.join(TAINT_EFFECTS)}"
    return f"{problem}; did you mean {guess!r}?" if guess else problem


def toleration_of(fields: tuple[str, ...]) -> Toleration:
    key, equals, value = fields[0].partition("=")
    if equals:
        return Toleration(key=key, operator="Equal", effect=fields[1], value=value)
    return Toleration(key=key, operator="Exists", effect=fields[1])


def check_node(fields: tuple[str, ...]) -> str:
    key, equals, value = fields[0].partition("=")
    if not equals:
        return "write the node label as KEY=VALUE, e.g. node:cloud.google.com/gke-nodepool=gpu-pool"
    return _label_key_problem(key) or k8s_names.label_value_problem(value)


def node_label_of(fields: tuple[str, ...]) -> tuple[str, str]:
    key, _, value = fields[0].partition("=")
    return key, value


def _affinity_parts(expression: str) -> tuple[str, str, tuple[str, ...]]:
    """``KEY=V1|V2`` -> (key, operator, values), unchecked."""
    if expression.startswith("!"):
        return expression[1:], "DoesNotExist", ()
    for symbol, operator in _AFFINITY_SYMBOLS:
        key, found, rest = expression.partition(symbol)
        if found:
            return key, operator, tuple(rest.split("|"))
    return expression, "Exists", ()


def _affinity_problem(expression: str) -> str:
    key, operator, values = _affinity_parts(expression)
    problem = _label_key_problem(key)
    if problem:
        return f"{problem} (write KEY, !KEY, KEY=V1|V2, KEY!=V1|V2, KEY>N or KEY<N)"
    if operator in ("Gt", "Lt"):
        if len(values) != 1 or not _INTEGER.fullmatch(values[0]):
            return f"{operator} compares the label with one whole number, e.g. {key}>4"
        return ""
    for value in values:
        if value == "":
            return "an empty value in the list: separate values with '|', e.g. zone=a|b"
        if problem := k8s_names.label_value_problem(value):
            return problem
    return ""


def check_affinity(fields: tuple[str, ...]) -> str:
    return _affinity_problem(fields[0])


def check_preferred_affinity(fields: tuple[str, ...]) -> str:
    problem = _affinity_problem(fields[0])
    if problem or len(fields) < 2:
        return problem
    weight = fields[1]
    if weight.isascii() and weight.isdigit() and len(weight) <= 3 and 1 <= int(weight) <= 100:
        return ""
    return f"the weight {weight[:20]!r} must be a whole number from 1 to 100"


def affinity_rule_of(fields: tuple[str, ...], preferred: bool) -> NodeAffinityRule:
    key, operator, values = _affinity_parts(fields[0])
    weight = (int(fields[1]) if len(fields) > 1 else 1) if preferred else None
    return NodeAffinityRule(key=key, operator=operator, values=values, weight=weight)


def check_env(fields: tuple[str, ...]) -> str:
    name, equals, _ = fields[0].partition("=")
    if not equals:
        return "write the variable as NAME=VALUE, e.g. env:OMP_NUM_THREADS=4"
    if problem := k8s_names.env_name_problem(name):
        return problem
    if name in RUNNER_ENV:
        return f"{name} is set by nb2pipe's runner to run the step, and a step's own value would break the run"
    return ""


def env_of(fields: tuple[str, ...]) -> tuple[str, str]:
    name, _, value = fields[0].partition("=")
    return name, value


class SchedulingDraft:
    """The scheduling options of a step being merged: ``base``'s, then each tag's, later tags
    winning per key (environment variables are merged with ``secret:`` in ``step_options``)."""

    def __init__(self, base: StepOptions) -> None:
        self.tolerations = {(t.key, t.effect): t for t in base.tolerations}
        self.node_selector = dict(base.node_selector)
        self.required = {rule.key: rule for rule in base.node_affinity if rule.weight is None}
        self.preferred = {rule.key: rule for rule in base.node_affinity if rule.weight is not None}
        self.shm_size = base.shm_size

    def add(self, tag: Tag) -> None:
        kind, args = tag.kind, tag.args
        if kind == "toleration":
            toleration = toleration_of(args)
            self.tolerations[toleration.key, toleration.effect] = toleration
        elif kind == "node":
            key, value = node_label_of(args)
            self.node_selector[key] = value
        elif kind in ("affinity", "prefer-affinity"):
            rule = affinity_rule_of(args, preferred=kind == "prefer-affinity")
            (self.required if rule.weight is None else self.preferred)[rule.key] = rule
        elif kind == "shm":
            self.shm_size = args[0]

    def options(self, options: StepOptions) -> StepOptions:
        return replace(
            options,
            tolerations=tuple(self.tolerations[key] for key in sorted(self.tolerations)),
            node_selector=tuple(sorted(self.node_selector.items())),
            node_affinity=tuple(
                [self.required[key] for key in sorted(self.required)]
                + [self.preferred[key] for key in sorted(self.preferred)]
            ),
            shm_size=self.shm_size,
        )


def gpu_product_conflict(options: StepOptions) -> tuple[str, str] | None:
    """(the GPU product's label value, the ``node:`` tag's) where a step's ``gpu:N:PRODUCT`` and its
    ``node:nvidia.com/gpu.product=...`` name different products; the ``node:`` tag wins."""
    gpu_type = options.resources.accelerator_type
    chosen = dict(options.node_selector).get(GPU_PRODUCT_LABEL)
    if not gpu_type or "/" in gpu_type or not options.resources.accelerator_limit or chosen is None:
        return None
    product = gpu_product_label(gpu_type)
    return None if product == chosen else (product, chosen)
