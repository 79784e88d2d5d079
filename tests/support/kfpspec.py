"""Reading compiled IR YAML back through kfp-pipeline-spec's protobuf messages."""

from __future__ import annotations

from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2


def parse_ir(text: str) -> tuple[pipeline_spec_pb2.PipelineSpec, pipeline_spec_pb2.PlatformSpec | None]:
    """Parse IR YAML into ``PipelineSpec`` (and ``PlatformSpec`` when present); unknown
    fields are errors, so a successful parse means the IR is well formed."""
    documents = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
    platform = None
    if len(documents) > 1:
        platform = json_format.ParseDict(documents[1], pipeline_spec_pb2.PlatformSpec())
    return spec, platform


def dag(spec: pipeline_spec_pb2.PipelineSpec) -> dict[str, list[str]]:
    """Task name -> the tasks it depends on, as the Kubeflow UI draws them."""
    return {name: sorted(task.dependent_tasks) for name, task in spec.root.dag.tasks.items()}


def executor_config(platform: pipeline_spec_pb2.PlatformSpec | None, task: str) -> dict[str, Any]:
    if platform is None:
        return {}
    kubernetes = json_format.MessageToDict(platform.platforms["kubernetes"])
    executor = kubernetes["deploymentSpec"]["executors"]
    return executor.get(f"exec-{task}", {})


def container_env(spec: pipeline_spec_pb2.PipelineSpec, task: str) -> dict[str, str]:
    """The plain ``env`` of ``task``'s container (name -> value)."""
    executor = spec.deployment_spec.fields["executors"].struct_value.fields[f"exec-{task}"].struct_value
    container = executor.fields["container"].struct_value.fields
    if "env" not in container:
        return {}
    pairs = [item.struct_value.fields for item in container["env"].list_value.values]
    return {pair["name"].string_value: pair["value"].string_value for pair in pairs}
