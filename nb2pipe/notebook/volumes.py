"""Volumes: where a step may mount a claim, and Kale's ``volumes`` notebook metadata.

Kale (``kubeflow_notebook.volumes``) lists volumes mounted on every step, each
``{"type", "name", "mount_point", "size", "size_type", "annotations", "storage_class_name",
"volume_access_mode", "snapshot"}``:

- ``pvc``: an existing claim ``name``, mounted as it is;
- ``new_pvc``: a claim of ``size`` the pipeline creates per run (kfp-kubernetes' CreatePVC);
- ``pv``: the same, bound to the existing PersistentVolume ``name``;
- ``clone``: a Rok snapshot of the notebook server's volume, which needs Arrikto's Rok: a
  warning, and the volume is not mounted.

``storage_class_name`` and ``volume_access_mode`` (``rom``, ``rwo``, ``rwm``; Kale's default
``rwm``) may also be set once for all volumes next to ``volumes``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from nb2pipe import k8s_names
from nb2pipe.errors import Diagnostic, Location, warning
from nb2pipe.ir import NewClaim, VolumeMount
from nb2pipe.notebook.metadata import LIST, TEXT, Field, MetadataReader

#: Paths a claim may not hide: the shell and KFP's executor write the step's program and
#: outputs under /tmp, KFP maps artifact URIs to /gcs, /minio, /s3 and /oci, the KFP backend
#: mounts its launcher at /kfp-launcher, Argo its executor at /var/run/argo, Kubernetes the
#: service account token under /var/run/secrets; /dev, /proc and /sys are the kernel's.
RESERVED_PATHS = (
    "/tmp",
    "/gcs",
    "/minio",
    "/s3",
    "/oci",
    "/kfp-launcher",
    "/var/run/argo",
    "/var/run/secrets",
    "/dev",
    "/proc",
    "/sys",
)

#: Kale's access modes, as Kubernetes spells them
ACCESS_MODES = {"rom": "ReadOnlyMany", "rwo": "ReadWriteOnce", "rwm": "ReadWriteMany"}
KALE_DEFAULT_ACCESS = "rwm"


def mount_path_problem(path: str) -> str:
    """Why ``path`` cannot be a mount point, or ``""``."""
    if not path.startswith("/"):
        return f"the mount path {path!r} must be absolute (start with '/')"
    if posixpath.normpath(path) != path or path.startswith("//"):
        return f"write the mount path {path!r} plainly: no '..', '.', '//' or trailing '/'"
    if path == "/":
        return "a claim cannot be mounted at '/': it would hide the image's own files"
    if not path.isprintable() or ":" in path:
        return f"the mount path {path!r} holds ':' or a control character, which Kubernetes refuses"
    for reserved in RESERVED_PATHS:
        if path == reserved or path.startswith(reserved + "/"):
            return f"{path!r} is under {reserved}, which KFP or Kubernetes uses in every step: mount it elsewhere"
    return ""


def claim_problem(claim: str) -> str:
    """Why ``claim`` cannot name a PersistentVolumeClaim, or ``""``."""
    return k8s_names.subdomain_problem(claim, "claim name")


_ACCESS = Field((str,), choices=tuple(ACCESS_MODES))
_SIZE = Field((int, str), kind='a whole number (with size_type) or a quantity such as "5Gi"')
#: a storage request: a positive whole number, optionally with a unit (5Gi, 500M)
_STORAGE = re.compile(r"[1-9][0-9]*(?:[KMGTPE]i?)?")
_TYPES = Field((str,), choices=("pvc", "new_pvc", "pv", "clone"))


def kale_volumes(section: Mapping[str, object], name: str, reader: MetadataReader) -> tuple[VolumeMount, ...]:
    """The mounts every step gets from ``section["volumes"]`` (``name``: the section's own
    name, for messages), sorted by path; problems go to ``reader``."""
    volumes = section.get("volumes")
    if not volumes or not reader.check(volumes, f"{name}.volumes", LIST) or not isinstance(volumes, list):
        return ()
    storage_class = section.get("storage_class_name")
    if storage_class is not None and not _storage_class_ok(storage_class, f"{name}.storage_class_name", reader):
        storage_class = None
    access = section.get("volume_access_mode") or KALE_DEFAULT_ACCESS
    if not reader.check(access, f"{name}.volume_access_mode", _ACCESS):
        access = KALE_DEFAULT_ACCESS
    mounts: dict[str, VolumeMount] = {}
    for index, volume in enumerate(volumes):
        where = f"{name}.volumes[{index}]"
        if not isinstance(volume, Mapping):
            reader.report(where, "must be an object with type, name and mount_point")
            continue
        mount = _kale_volume(volume, where, reader, str(storage_class or "") or None, str(access))
        if mount is None:
            continue
        if mount.path in mounts:
            reader.report(where, f"mounts a second volume at {mount.path!r}: one volume per path")
            continue
        if mount.new and any(other.new and other.claim == mount.claim for other in mounts.values()):
            reader.report(where, f"creates a second claim named {mount.claim!r}: give each created volume its own name")
            continue
        mounts[mount.path] = mount
    return tuple(mounts[path] for path in sorted(mounts))


def _kale_volume(
    volume: Mapping[str, object], where: str, reader: MetadataReader, storage_class: str | None, access: str
) -> VolumeMount | None:
    kind, name, path = volume.get("type"), volume.get("name"), volume.get("mount_point")
    checked = (
        reader.check(kind, f"{where}.type", _TYPES)
        and reader.check(name, f"{where}.name", TEXT)
        and reader.check(path, f"{where}.mount_point", TEXT)
    )
    if not checked or not isinstance(name, str) or not isinstance(path, str):
        return None
    problem = claim_problem(name) or mount_path_problem(path)
    if problem:
        reader.report(where, f"cannot be mounted: {problem}")
        return None
    if volume.get("snapshot") is True:
        message = f"the Rok snapshot of volume {name!r} is not taken: nb2pipe does not use Rok"
        reader.diagnostics.append(_unsupported(reader.where, message, "set its snapshot to false to silence this"))
    if kind == "clone":
        reader.diagnostics.append(
            _unsupported(
                reader.where,
                f"Kale's 'clone' volume {name!r} (a Rok snapshot of the notebook server's volume) is not mounted "
                f"at {path}: nb2pipe does not use Rok",
                "to mount the claim itself, set its type to 'pvc' (the steps then share the notebook's live volume, "
                "which needs ReadWriteMany); for an empty volume per run, 'new_pvc' with a size",
            )
        )
        return None
    if kind == "pvc":
        return VolumeMount(path, name)
    return _new_claim(volume, where, reader, name, path, kind == "pv", storage_class, access)


def _new_claim(
    volume: Mapping[str, object],
    where: str,
    reader: MetadataReader,
    name: str,
    path: str,
    bind: bool,
    storage_class: str | None,
    access: str,
) -> VolumeMount | None:
    size, unit = volume.get("size"), volume.get("size_type") or ""
    if size is None or size == "":
        reader.report(f"{where}.size", "is required for a volume the pipeline creates (e.g. 5 with size_type Gi)")
        return None
    if not reader.check(size, f"{where}.size", _SIZE) or not reader.check(unit, f"{where}.size_type", TEXT):
        return None
    quantity = f"{size}{unit}"
    if not _STORAGE.fullmatch(quantity):
        reader.report(f"{where}.size", f"must give a storage quantity such as 5Gi, not {quantity!r}")
        return None
    own_class = volume.get("storage_class_name")
    if own_class is not None and _storage_class_ok(own_class, f"{where}.storage_class_name", reader):
        storage_class = str(own_class) or storage_class
    own_access = volume.get("volume_access_mode")
    if own_access and reader.check(own_access, f"{where}.volume_access_mode", _ACCESS):
        access = str(own_access)
    claim = NewClaim(
        name=name,
        size=quantity,
        access_modes=(ACCESS_MODES[access],),
        # a claim bound to a named PersistentVolume takes no class unless one is given
        storage_class=storage_class if storage_class or not bind else "",
        volume_name=name if bind else None,
        annotations=_annotations(volume.get("annotations"), f"{where}.annotations", reader),
    )
    return VolumeMount(path, name, claim)


def _storage_class_ok(value: object, name: str, reader: MetadataReader) -> bool:
    if not reader.check(value, name, TEXT):
        return False
    problem = k8s_names.subdomain_problem(str(value), "storage class name") if value else ""
    if problem:
        reader.report(name, f"is not a storage class name: {problem}")
    return not problem


def _annotations(value: object, where: str, reader: MetadataReader) -> tuple[tuple[str, str], ...]:
    """Kale's ``[{"key": K, "value": V}]`` (entries with an empty key or value are left out, as Kale does)."""
    if value is None or value == []:
        return ()
    if not isinstance(value, list) or not all(isinstance(a, Mapping) for a in value):
        reader.report(where, 'must be a list of {"key": K, "value": V}')
        return ()
    pairs: dict[str, str] = {}
    for entry in value:
        key, text = entry.get("key"), entry.get("value")
        if not isinstance(key, str) or not isinstance(text, str):
            reader.report(where, 'must be a list of {"key": K, "value": V} with string keys and values')
            return ()
        if key and text:
            problem = k8s_names.qualified_name_problem(key) or k8s_names.annotation_value_problem(text)
            if problem:
                reader.report(where, f"holds a bad annotation: {problem}")
                return ()
            pairs[key] = text
    return tuple(sorted(pairs.items()))


def _unsupported(where: Location, message: str, hint: str) -> Diagnostic:
    return warning("unsupported-metadata", message, where, hint)
