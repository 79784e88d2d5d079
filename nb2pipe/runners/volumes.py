"""Volumes in a local run (``nb2pipe run``): steps run as processes on this machine, which
cannot mount a PersistentVolumeClaim. A step's mount path is used as the folder it names
here: in a Kubeflow notebook server that mounts the same claim at the same path (Kale's
setting, e.g. the workspace at /home/jovyan), or on a machine with that data folder, the
step reads and writes the same files it would on the cluster. A mount path this machine
lacks stops the run before any step starts. A claim the pipeline creates (Kale's
``new_pvc``) is not created locally: its create task succeeds at once, and its mount path
is used as it is, like any other (an existing folder is not emptied)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.runners.graph import TaskNode, container_tasks

#: the images of kfp-kubernetes' CreatePVC and DeletePVC, which the KFP backend's driver runs itself
CLAIM_TASK_IMAGES = ("argostub/createpvc", "argostub/deletepvc")
#: the ``name`` a create task hands on locally, where no claim is made
LOCAL_CLAIM_NAME = "local-folder"


def _tasks(spec: Any) -> dict[str, str]:
    """Every task that runs a container, by its name in the flat graph, with its executor label."""
    return {
        name: spec.components[task.component_ref.name].executor_label for name, task in container_tasks(spec).items()
    }


def claim_tasks(spec: Any) -> frozenset[str]:
    """The tasks that create or delete a claim (kfp-kubernetes' CreatePVC and DeletePVC)."""
    from google.protobuf import json_format

    executors = json_format.MessageToDict(spec.deployment_spec).get("executors", {})
    return frozenset(
        name
        for name, label in _tasks(spec).items()
        if executors.get(label, {}).get("container", {}).get("image") in CLAIM_TASK_IMAGES
    )


def local_claim_tasks(spec: Any, nodes: Mapping[str, TaskNode]) -> frozenset[str]:
    """The claim tasks, which a local run marks done without a process; raises when another
    task takes constant inputs (only claim tasks do, and the runner passes none)."""
    claims = claim_tasks(spec)
    for node in nodes.values():
        if node.constant_inputs and node.name not in claims:
            raise Nb2PipeError(
                f"nb2pipe run cannot pass task {node.name!r} its constant inputs "
                f"({', '.join(node.constant_inputs)}); run this pipeline on Kubeflow"
            )
    return claims


def claim_task_outputs() -> dict[str, dict[str, Any]]:
    """What a create task records in a local run: the ``name`` output, no claim behind it."""
    return {"name": {"value": LOCAL_CLAIM_NAME}}


def mounts(spec: Any, platforms: Sequence[Any]) -> dict[str, list[tuple[str, str]]]:
    """Task -> its (claim, mount path) pairs, from the platform spec (the YAML's second
    document), the claim as messages show it: ``claim 'NAME'``, or ``the claim TASK creates``."""
    by_label: dict[str, list[tuple[str, str]]] = {}
    for platform in platforms:
        executors = (platform or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
        for label, config in executors.get("executors", {}).items():
            for mount in config.get("pvcMount", ()):
                parameter = mount.get("pvcNameParameter", {})
                constant = parameter.get("runtimeValue", {}).get("constant")
                producer = parameter.get("taskOutputParameter", {}).get("producerTask")
                claim = (
                    f"claim {constant!r}" if constant else f"the claim {producer} creates" if producer else "a claim"
                )
                by_label.setdefault(label, []).append((claim, str(mount.get("mountPath", ""))))
    return {name: by_label[label] for name, label in _tasks(spec).items() if label in by_label}


def check_local_mounts(spec: Any, platforms: Sequence[Any]) -> None:
    """Raise when a step mounts a claim at a path that is no folder on this machine."""
    missing = [
        f"step {name!r} mounts {claim} at {path}"
        for name, pairs in sorted(mounts(spec, platforms).items())
        for claim, path in pairs
        if not os.path.isdir(path)
    ]
    if missing:
        raise Nb2PipeError(
            "a local run cannot mount volumes: "
            + "; ".join(missing)
            + ". Steps run as processes here and use a mount path as the folder it names, which this machine "
            "lacks: create it (or mount the claim there), or run the pipeline on a cluster with `nb2pipe submit`"
        )
