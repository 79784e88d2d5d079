"""Step options as a list of kfp calls, so the compiled pipeline and the readable DSL file
apply exactly the same settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from nb2pipe.deploy_checks import placement_of
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import NodeAffinityRule, StepOptions, Toleration
from nb2pipe.notebook.scheduling import SHM_PATH, SHM_VOLUME


@dataclass(frozen=True)
class OptionCall:
    """``task.NAME(*args, **kwargs)``, or ``kubernetes.NAME(task, *args, **kwargs)``."""

    target: Literal["task", "kubernetes"]
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CreatedClaim:
    """An argument standing for the name of the claim the pipeline creates as ``name`` (a
    ``NewClaim``): known only at run time, as the create task's ``name`` output."""

    name: str


def option_calls(options: StepOptions) -> list[OptionCall]:
    calls: list[OptionCall] = []
    resources = options.resources
    for method, value in (
        ("set_cpu_request", resources.cpu_request),
        ("set_cpu_limit", resources.cpu_limit),
        ("set_memory_request", resources.memory_request),
        ("set_memory_limit", resources.memory_limit),
    ):
        if value:
            calls.append(OptionCall("task", method, (value,)))
    if resources.accelerator_type and resources.accelerator_limit:
        # the same placement as a deployment's: a GPU product is nvidia.com/gpu on nodes GFD labels
        # with it, and GPU node pools' NoSchedule taint is tolerated (what Kubernetes' own
        # ExtendedResourceToleration admission would add)
        placement = placement_of(resources.accelerator_type)
        calls.append(OptionCall("task", "set_accelerator_type", (placement.resource,)))
        calls.append(OptionCall("task", "set_accelerator_limit", (resources.accelerator_limit,)))
        # a node: tag on the same label wins (the compiler warns when the products differ)
        chosen = dict(options.node_selector)
        for key, value in (placement.node_selector or {}).items():
            if key not in chosen:
                calls.append(OptionCall("kubernetes", "add_node_selector", (key, value)))
        calls += [OptionCall("kubernetes", "add_toleration", kwargs=dict(t)) for t in placement.tolerations]
    if options.cache is not None:
        calls.append(OptionCall("task", "set_caching_options", kwargs={"enable_caching": options.cache}))
    if options.retries:
        calls.append(OptionCall("task", "set_retry", kwargs={"num_retries": options.retries}))
    if options.timeout_seconds:
        calls.append(OptionCall("kubernetes", "set_timeout", (options.timeout_seconds,)))
    calls += [OptionCall("kubernetes", "add_pod_annotation", (k, v)) for k, v in options.annotations]
    calls += [OptionCall("kubernetes", "add_pod_label", (k, v)) for k, v in options.labels]
    calls += [
        OptionCall(
            "kubernetes", "use_secret_as_env", kwargs={"secret_name": s.secret, "secret_key_to_env": {s.key: s.env}}
        )
        for s in options.secrets
    ]
    calls += [
        OptionCall(
            "kubernetes",
            "mount_pvc",
            kwargs={"pvc_name": CreatedClaim(v.claim) if v.new else v.claim, "mount_path": v.path},
        )
        for v in options.volumes
    ]
    return calls + _scheduling_calls(options, [call.kwargs for call in calls if call.name == "add_toleration"])


def _scheduling_calls(options: StepOptions, tolerated: list[dict[str, Any]]) -> list[OptionCall]:
    """Node selector, tolerations (none twice: a GPU's are already in ``tolerated``), node
    affinity, /dev/shm and environment variables."""
    calls = [OptionCall("kubernetes", "add_node_selector", (k, v)) for k, v in options.node_selector]
    for toleration in options.tolerations:
        kwargs = _toleration_kwargs(toleration)
        if kwargs not in tolerated:
            calls.append(OptionCall("kubernetes", "add_toleration", kwargs=kwargs))
    # the driver ORs node selector terms: the required expressions go in one term, so all must hold
    required = [_expression(rule) for rule in options.node_affinity if rule.weight is None]
    if required:
        calls.append(OptionCall("kubernetes", "add_node_affinity", kwargs={"match_expressions": required}))
    calls += [
        OptionCall(
            "kubernetes", "add_node_affinity", kwargs={"match_expressions": [_expression(r)], "weight": r.weight}
        )
        for r in options.node_affinity
        if r.weight is not None
    ]
    if options.shm_size:
        shm = {"volume_name": SHM_VOLUME, "mount_path": SHM_PATH, "medium": "Memory", "size_limit": options.shm_size}
        calls.append(OptionCall("kubernetes", "empty_dir_mount", kwargs=shm))
    calls += [OptionCall("task", "set_env_variable", (name, value)) for name, value in options.env]
    return calls


def _toleration_kwargs(toleration: Toleration) -> dict[str, Any]:
    kwargs = {"key": toleration.key, "operator": toleration.operator}
    if toleration.value is not None:
        kwargs["value"] = toleration.value
    return {**kwargs, "effect": toleration.effect}


def _expression(rule: NodeAffinityRule) -> dict[str, Any]:
    expression: dict[str, Any] = {"key": rule.key, "operator": rule.operator}
    if rule.values:
        expression["values"] = list(rule.values)
    return expression


def apply_options(task: Any, options: StepOptions, created_claims: Mapping[str, Any] | None = None) -> None:
    """Apply the options to a kfp ``PipelineTask``; ``created_claims``: the name channel of
    each claim the pipeline creates, by its ``NewClaim.name``."""
    calls = option_calls(options)
    kubernetes: ModuleType | None = None
    if any(call.target == "kubernetes" for call in calls):
        from kfp import kubernetes as kfp_kubernetes  # kfp-kubernetes; only imported when a step needs it

        kubernetes = kfp_kubernetes
    for call in calls:
        if call.target == "task":
            getattr(task, call.name)(*call.args, **call.kwargs)
        else:
            kwargs = {key: _resolved(value, created_claims or {}) for key, value in call.kwargs.items()}
            getattr(kubernetes, call.name)(task, *call.args, **kwargs)


def _resolved(value: Any, created_claims: Mapping[str, Any]) -> Any:
    if not isinstance(value, CreatedClaim):
        return value
    if value.name not in created_claims:
        raise Nb2PipeError(f"a step mounts the claim {value.name!r}, which no task of the pipeline creates")
    return created_claims[value.name]
