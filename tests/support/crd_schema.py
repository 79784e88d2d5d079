"""Validate KServe resources against the CRDs in ../shared/schemas/kserve, strictly.

The API server prunes fields a CRD does not declare, so a misspelled field (``minReplica``)
silently vanishes on a real cluster. Here every object schema that declares ``properties`` is
closed with ``additionalProperties: false`` so such a field fails the test instead.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

KSERVE_SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "schemas" / "kserve"

GROUP = "serving.kserve.io"

# kind -> (CRD file, served version nb2pipe writes)
CRDS: dict[str, tuple[str, str]] = {
    "InferenceService": ("serving.kserve.io_inferenceservices.yaml", "v1beta1"),
    "ServingRuntime": ("serving.kserve.io_servingruntimes.yaml", "v1alpha1"),
    "ClusterServingRuntime": ("serving.kserve.io_clusterservingruntimes.yaml", "v1alpha1"),
    "InferenceGraph": ("serving.kserve.io_inferencegraphs.yaml", "v1alpha1"),
}

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# KServe's webhook is stricter for InferenceServices: the name becomes a DNS-1035 label
# (host names, Knative services), so it must start with a letter.
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

try:  # libyaml is ~4x faster on the 39k-line InferenceService CRD
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


def _crd_path(crd_file: Path | str) -> Path:
    path = Path(crd_file)
    return path if path.is_absolute() or path.exists() else KSERVE_SCHEMAS / path


@functools.cache
def _load_crd(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)


def load_crd_schema(crd_file: Path | str, version: str = "v1beta1") -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``version`` in a CRD file, as written (a fresh copy).

    ``crd_file`` may be a bare file name, looked up in ``KSERVE_SCHEMAS``.
    """
    crd = _load_crd(_crd_path(crd_file))
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    if version not in served:
        raise ValueError(f"{crd_file}: version {version!r} is not served (served: {sorted(served)})")
    # A copy, so callers may edit it without poisoning the cache.
    return copy.deepcopy(served[version]["schema"]["openAPIV3Schema"])


def strict_schema(schema: Any) -> Any:
    """A copy of a structural schema as the API server applies it, in JSON-Schema terms.

    - objects with ``properties`` and no ``additionalProperties`` are closed (pruning);
    - ``x-kubernetes-preserve-unknown-fields: true`` keeps an object open;
    - ``x-kubernetes-int-or-string: true`` accepts an integer or a string (the CRD's
      ``anyOf`` says the same; a plain type list gives clearer error messages).
    """
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict_schema(value) for key, value in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _validator(kind: str) -> jsonschema.Draft4Validator:
    crd_file, version = CRDS[kind]
    schema = strict_schema(load_crd_schema(crd_file, version))
    # OpenAPI v3.0 schemas are Draft 4 in spirit (boolean exclusiveMinimum etc.).
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def _where(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "".join(parts).lstrip(".") or "<root>"


def validate_resource(obj: dict[str, Any]) -> None:
    """Raise AssertionError listing every place where ``obj`` breaks its KServe CRD."""
    kind = obj.get("kind")
    if kind not in CRDS:
        raise AssertionError(f"no KServe CRD for kind {kind!r} (known: {', '.join(CRDS)})")
    problems: list[str] = []
    expected_api = f"{GROUP}/{CRDS[kind][1]}"
    if obj.get("apiVersion") != expected_api:
        # The schema only says "string"; a wrong version would hit another (or no) schema.
        problems.append(f"apiVersion: {obj.get('apiVersion')!r}, expected {expected_api!r}")
    name = (obj.get("metadata") or {}).get("name")
    if name is not None:
        pattern = DNS1035_LABEL if kind == "InferenceService" else DNS1123_LABEL
        if not isinstance(name, str) or len(name) > 63 or not pattern.match(name):
            problems.append(f"metadata.name: {name!r} is not a valid {kind} name (pattern {pattern.pattern}, <= 63)")
    for error in sorted(_validator(kind).iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(f"{_where(error.absolute_path)}: {error.message}")
    if problems:
        label = f"{kind} {name!r}" if name else kind
        raise AssertionError(f"{label} does not match its CRD:\n  " + "\n  ".join(problems))
