"""Where a redeployed predictor's pods go: its ``nodeSelector`` and ``tolerations`` over the
running service's.

nb2pipe writes placement only for GPUs (:func:`nb2pipe.deploy_checks.gpu_placement`): the
``nvidia.com/gpu.product`` label and the ``NoSchedule`` tolerations of the GPU resources the
predictor requests. Entries a user added to the running service by hand are kept across
redeployments; those nb2pipe wrote for an earlier deployment and this one does not write are
removed. A user entry identical to one nb2pipe writes cannot be told apart from it and goes
with it. A JSON merge patch replaces a list whole, so the merged tolerations are computed
here rather than left to the API server.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from nb2pipe.deploy_checks import GPU_PRODUCT_LABEL, GpuPlacement

NODE_SELECTOR, TOLERATIONS = "nodeSelector", "tolerations"
PLACEMENT_FIELDS = (NODE_SELECTOR, TOLERATIONS)


def merged_placement(running: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """``nodeSelector`` and ``tolerations`` for the ``new`` predictor spec redeployed over the
    ``running`` one: the running hand-added entries, then the new ones; a field neither has is absent."""
    running = running or {}
    selector = {**hand_placement(running).get(NODE_SELECTOR, {}), **(new.get(NODE_SELECTOR) or {})}
    wanted = [_plain(t) for t in new.get(TOLERATIONS) or []]
    ours = _written_tolerations(running)
    # the running ones in their order (a reordered pod template restarts the pods), then the new ones
    tolerations = [t for t in running.get(TOLERATIONS) or [] if _plain(t) not in ours or _plain(t) in wanted]
    tolerations += [t for t in new.get(TOLERATIONS) or [] if _plain(t) not in map(_plain, tolerations)]
    merged: dict[str, Any] = {}
    if selector:
        merged[NODE_SELECTOR] = selector
    if tolerations:
        merged[TOLERATIONS] = copy.deepcopy(tolerations)
    return merged


def hand_placement(predictor: Mapping[str, Any]) -> dict[str, Any]:
    """The predictor's ``nodeSelector`` and ``tolerations`` less what nb2pipe writes for its GPUs."""
    selector = {k: v for k, v in (predictor.get(NODE_SELECTOR) or {}).items() if k != GPU_PRODUCT_LABEL}
    ours = _written_tolerations(predictor)
    tolerations = [t for t in predictor.get(TOLERATIONS) or [] if _plain(t) not in ours]
    kept: dict[str, Any] = {}
    if selector:
        kept[NODE_SELECTOR] = selector
    if tolerations:
        kept[TOLERATIONS] = tolerations
    return kept


def placement_patch(running: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch's ``nodeSelector`` and ``tolerations`` (null: removed) turning the
    ``running`` predictor's placement into :func:`merged_placement`; a field with nothing to do is absent."""
    merged = merged_placement(running, new)
    patch: dict[str, Any] = {}
    for field in PLACEMENT_FIELDS:
        if field in merged:
            patch[field] = merged[field]
        elif running.get(field):
            patch[field] = None
    old_selector = running.get(NODE_SELECTOR) or {}
    if isinstance(patch.get(NODE_SELECTOR), dict):  # a map is merged key by key: null what goes
        patch[NODE_SELECTOR] |= {key: None for key in old_selector if key not in patch[NODE_SELECTOR]}
    return patch


def _written_tolerations(predictor: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tolerations nb2pipe writes for the GPU resources ``predictor`` requests."""
    return [
        _plain(t) for resource in sorted(_extended_resources(predictor)) for t in GpuPlacement(resource).tolerations
    ]


def _extended_resources(predictor: Mapping[str, Any]) -> set[str]:
    resources = (predictor.get("model") or {}).get("resources") or {}
    names = {*(resources.get("requests") or {}), *(resources.get("limits") or {})}
    return {name for name in names if "/" in name}


def _plain(toleration: Mapping[str, Any]) -> dict[str, Any]:
    """A toleration as compared: the API server leaves out the fields that are not set."""
    return {key: value for key, value in toleration.items() if value is not None}
