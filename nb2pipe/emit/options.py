"""Step options as a list of kfp calls, so the compiled pipeline and the readable DSL file
apply exactly the same settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from nb2pipe.deploy_checks import placement_of
from nb2pipe.ir import StepOptions


@dataclass(frozen=True)
class OptionCall:
    """``task.NAME(*args, **kwargs)``, or ``kubernetes.NAME(task, *args, **kwargs)``."""

    target: Literal["task", "kubernetes"]
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


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
        for key, value in (placement.node_selector or {}).items():
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
    return calls


def apply_options(task: Any, options: StepOptions) -> None:
    """Apply the options to a kfp ``PipelineTask``."""
    calls = option_calls(options)
    kubernetes: ModuleType | None = None
    if any(call.target == "kubernetes" for call in calls):
        from kfp import kubernetes as kfp_kubernetes  # kfp-kubernetes; only imported when a step needs it

        kubernetes = kfp_kubernetes
    for call in calls:
        if call.target == "task":
            getattr(task, call.name)(*call.args, **call.kwargs)
        else:
            getattr(kubernetes, call.name)(task, *call.args, **call.kwargs)
