"""The claims a pipeline creates (Kale's ``new_pvc`` and ``pv`` volumes): one kfp-kubernetes
``CreatePVC`` task each, before the steps that mount it. The claim is named
``<run>-<name>`` and kept after the run, as Kale keeps it (its data stays to be read; delete it
with ``kubectl delete pvc``)."""

from __future__ import annotations

from typing import Any

from nb2pipe.ir import NewClaim, PipelinePlan


def new_claims(plan: PipelinePlan) -> list[NewClaim]:
    """Each claim the steps mount that the pipeline creates, once, by name."""
    claims = {mount.new.name: mount.new for step in plan.steps for mount in step.options.volumes if mount.new}
    return [claims[name] for name in sorted(claims)]


def claim_task_name(claim: NewClaim) -> str:
    return f"create-volume-{claim.name}"


def claim_arguments(claim: NewClaim) -> dict[str, Any]:
    """``CreatePVC``'s arguments; a class left out is the cluster's default class."""
    arguments: dict[str, Any] = {
        "pvc_name_suffix": f"-{claim.name}",
        "access_modes": list(claim.access_modes),
        "size": claim.size,
    }
    if claim.storage_class is not None:
        arguments["storage_class_name"] = claim.storage_class
    if claim.volume_name:
        arguments["volume_name"] = claim.volume_name
    if claim.annotations:
        arguments["annotations"] = dict(claim.annotations)
    return arguments


def create_claims(plan: PipelinePlan) -> dict[str, Any]:
    """Add the create tasks to the pipeline being traced; the name channel of each claim, by name."""
    claims = new_claims(plan)
    if not claims:
        return {}
    from kfp import kubernetes

    channels: dict[str, Any] = {}
    for claim in claims:
        task = kubernetes.CreatePVC(**claim_arguments(claim))
        task.set_display_name(claim_task_name(claim))
        task.set_caching_options(False)  # a cached task would hand an earlier run's claim on
        channels[claim.name] = task.outputs["name"]
    return channels


def create_claim_lines(plan: PipelinePlan, variables: dict[str, str]) -> list[str]:
    """The same tasks in the DSL file: ``variables`` names each claim's task variable."""
    lines: list[str] = []
    for claim in new_claims(plan):
        variable = variables[claim.name]
        rendered = ", ".join(f"{key}={value!r}" for key, value in claim_arguments(claim).items())
        lines.append(f"    {variable} = kubernetes.CreatePVC({rendered})")
        lines.append(f"    {variable}.set_display_name({claim_task_name(claim)!r})")
        lines.append(f"    {variable}.set_caching_options(False)")
    return lines
