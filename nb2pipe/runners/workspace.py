"""The pipeline's workspace in a local run (``nb2pipe run``). On a cluster, KFP mounts a
volume that lasts the run at ``/kfp-workspace`` and hands each task that asks for it
(``dsl.WORKSPACE_PATH_PLACEHOLDER`` as an input's constant) its path. Here the workspace
is the run's folder ``RUN_DIR/workspace``, handed to the same input, so a step keeps its
large values there through the same code path (nb2pipe.runtime.values); a resumed run
finds the values of the steps it reuses where they were."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from nb2pipe.runners.graph import TaskNode, container_tasks

#: kfp.dsl.WORKSPACE_PATH_PLACEHOLDER, which the KFP backend replaces with the workspace's path
WORKSPACE_PATH_PLACEHOLDER = "{{$.workspace_path}}"
#: the workspace's folder in a run's folder
WORKSPACE_FOLDER = "workspace"


def workspace_inputs(spec: Any) -> dict[str, tuple[str, ...]]:
    """Task -> its inputs that take the workspace's path, in every DAG of the pipeline."""
    found: dict[str, tuple[str, ...]] = {}
    for name, task in container_tasks(spec).items():
        keys = tuple(
            sorted(
                key
                for key, value in task.inputs.parameters.items()
                if value.WhichOneof("kind") == "runtime_value"
                and value.runtime_value.constant.WhichOneof("kind") == "string_value"
                and value.runtime_value.constant.string_value == WORKSPACE_PATH_PLACEHOLDER
            )
        )
        if keys:
            found[name] = keys
    return found


def without_workspace_constants(
    nodes: Mapping[str, TaskNode], inputs: Mapping[str, tuple[str, ...]]
) -> dict[str, TaskNode]:
    """The task graph less the workspace inputs among each task's constant inputs: the
    runner passes those (:func:`workspace_arguments`)."""
    return {
        name: replace(node, constant_inputs=tuple(c for c in node.constant_inputs if c not in inputs.get(name, ())))
        for name, node in nodes.items()
    }


def workspace_arguments(keys: tuple[str, ...], run_dir: Path) -> dict[str, str]:
    """The arguments that hand a task the run's workspace folder, made where it is missing."""
    if not keys:
        return {}
    folder = run_dir / WORKSPACE_FOLDER
    folder.mkdir(exist_ok=True)
    return dict.fromkeys(keys, str(folder.resolve()))
