"""How a step's pod runs, as the compiler's stages pass it on: resources, secrets, scheduling
(tolerations, node selectors and affinity), volumes, the package index its installs use and the
run's workspace. Frozen values, re-exported by :mod:`nb2pipe.ir`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    accelerator_type: str | None = None
    accelerator_limit: int | None = None


@dataclass(frozen=True)
class SecretEnv:
    env: str
    secret: str
    key: str


@dataclass(frozen=True)
class Toleration:
    """A taint the step's pod tolerates (``toleration:KEY[=VALUE]:EFFECT``): operator ``Exists``
    without a value, ``Equal`` with one."""

    key: str
    operator: str
    effect: str
    value: str | None = None


@dataclass(frozen=True)
class NodeAffinityRule:
    """One node-affinity expression (``affinity:`` required, ``prefer-affinity:`` preferred with
    ``weight``); operator In, NotIn, Exists, DoesNotExist, Gt or Lt, as Kubernetes spells it."""

    key: str
    operator: str
    values: tuple[str, ...] = ()
    weight: int | None = None


@dataclass(frozen=True)
class NewClaim:
    """A PersistentVolumeClaim the pipeline creates once per run, before its steps (Kale's
    ``new_pvc``; Kale's ``pv`` when ``volume_name`` binds an existing PersistentVolume), named
    ``<run>-<name>``; it outlives the run, as Kale's does."""

    name: str
    size: str
    access_modes: tuple[str, ...] = ("ReadWriteMany",)
    storage_class: str | None = None
    volume_name: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VolumeMount:
    """A claim mounted at ``path`` in a step: an existing claim (``volume:CLAIM:PATH``, Kale's
    ``pvc``) or, with ``new``, the one the pipeline creates (``claim`` is then its ``name``)."""

    path: str
    claim: str
    new: NewClaim | None = None


@dataclass(frozen=True)
class StepOptions:
    """Settings a step takes from its tags, merged over the notebook's step defaults."""

    image: str | None = None
    packages: tuple[str, ...] = ()
    cache: bool | None = None
    retries: int | None = None
    timeout_seconds: int | None = None
    resources: Resources = Resources()
    annotations: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    secrets: tuple[SecretEnv, ...] = ()
    html_report: bool | None = None
    #: sorted by path; two at one path (two tags in one step) are kept for the planner to report
    volumes: tuple[VolumeMount, ...] = ()
    #: sorted by (key, effect)
    tolerations: tuple[Toleration, ...] = ()
    #: node label key -> value, sorted by key
    node_selector: tuple[tuple[str, str], ...] = ()
    #: the required rules, then the preferred ones, each sorted by key
    node_affinity: tuple[NodeAffinityRule, ...] = ()
    #: size of the in-memory emptyDir mounted at /dev/shm (``shm:SIZE``)
    shm_size: str | None = None
    #: plain environment variables (``env:NAME=VALUE``), sorted by name
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PackageIndex:
    """Where steps' pip installs come from (a private index on an air-gapped cluster): the
    first URL is pip's ``--index-url``, the rest ``--extra-index-url``; ``trusted_hosts`` are
    ``--trusted-host``. Empty: PyPI, as pip's own configuration says."""

    urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workspace:
    """KFP's per-run workspace (``metadata.nb2pipe.workspace``), a volume every step mounts: a
    value whose saved files are larger than ``large_value_bytes`` travels through it instead of
    the artifact store (:mod:`nb2pipe.runtime.values`)."""

    size: str
    storage_class: str | None = None
    large_value_bytes: int = 64 * 2**20
