"""What the local runner hands kfp.local for one task, read from the compiled pipeline: the
component less the optional inputs a run leaves unset, and the step time limits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def without_unset_inputs(component: Any, arguments: Mapping[str, Any]) -> Any:
    """``component`` less its optional parameter inputs that have neither a value nor a
    default: kfp.local would hand them to the step as an empty value (and fail casting one
    typed int); left out, the step function's own default (None) applies, as on a cluster."""
    unset = [
        name
        for name, definition in component.input_definitions.parameters.items()
        if name not in arguments and definition.is_optional and not definition.HasField("default_value")
    ]
    if not unset:
        return component
    trimmed = type(component)()
    trimmed.CopyFrom(component)
    for name in unset:
        del trimmed.input_definitions.parameters[name]
    return trimmed


def run_timeout(platforms: Sequence[Any]) -> int | None:
    """The whole run's limit in seconds (KFP's PipelineConfig activeDeadlineSeconds), if any."""
    for platform in platforms:
        config = (platform or {}).get("platforms", {}).get("kubernetes", {}).get("pipelineConfig", {})
        if config.get("activeDeadlineSeconds"):
            return int(config["activeDeadlineSeconds"])
    return None


def step_timeouts(platforms: Sequence[Any]) -> dict[str, int]:
    """Executor label -> seconds, from the ``timeout:`` tags kfp-kubernetes compiled into the
    pipeline's platform spec (the YAML's second document)."""
    timeouts: dict[str, int] = {}
    for platform in platforms:
        executors = (platform or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
        for label, config in executors.get("executors", {}).items():
            if config.get("activeDeadlineSeconds"):
                timeouts[label] = int(config["activeDeadlineSeconds"])
    return timeouts


def step_fingerprint(spec: Any, node: Any, values: Mapping[str, Any]) -> str:
    """What decides a step's result: its component, its wiring, its parameter values."""
    from google.protobuf import json_format

    component = spec.components[node.component_name]
    executor = spec.deployment_spec.fields["executors"].struct_value.fields[component.executor_label]
    material = {
        "component": json_format.MessageToDict(component),
        "executor": json_format.MessageToDict(executor),
        "artifacts": sorted(node.artifact_inputs.items()),
        "parameters": {name: values.get(source) for name, source in sorted(node.parameter_inputs.items())},
        "literals": dict(node.literal_inputs),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]
