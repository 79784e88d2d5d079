"""What the compiling environment says about step images: installed versions of the
libraries a notebook imports, the Python version, and — inside a Kubeflow notebook server —
the server's own image. Reading the environment is I/O, so it lives here, at the edge, and
hands plain values to the pure compiler stages.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from nb2pipe.ir import Packaging

#: Import names whose distribution is named differently (checked against what is installed).
_KNOWN_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "cv2": "opencv-python",
    "PIL": "Pillow",
    "yaml": "PyYAML",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "tf_keras": "tf-keras",
    "attr": "attrs",
    "google": "protobuf",
    "jwt": "PyJWT",
    "dotenv": "python-dotenv",
    "mpl_toolkits": "matplotlib",
    "tensorflow_probability": "tensorflow-probability",
    "alibi_detect": "alibi-detect",
    "Crypto": "pycryptodome",
}
#: What the step runtime needs beside a library: pandas values travel as parquet.
_RUNTIME_COMPANIONS = {"pandas": ("pyarrow",)}
_SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def default_base_image() -> str:
    """``NB2PIPE_BASE_IMAGE``, else the slim Python image of the compiling interpreter's
    version, so pinned wheels match."""
    return os.environ.get("NB2PIPE_BASE_IMAGE") or f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


def packaging_for(imports: Iterable[str], base_image: str | None = None) -> Packaging:
    """Pin each third-party import (and what its values need to travel, and cloudpickle)
    to the distribution version installed here."""
    modules = set(imports) | {"cloudpickle"}
    for name in list(modules):
        modules.update(_RUNTIME_COMPANIONS.get(name, ()))
    pins: dict[str, str] = {}
    for module in sorted(modules):
        if module in sys.stdlib_module_names or module.startswith("_"):
            continue
        distribution = distribution_of(module)
        if distribution is not None:
            pins[module] = f"{distribution}=={metadata.version(distribution)}"
    return Packaging(base_image or default_base_image(), pins)


def distribution_of(module: str) -> str | None:
    """The installed distribution that provides top-level module ``module``."""
    for candidate in (module, _KNOWN_DISTRIBUTIONS.get(module), module.replace("_", "-")):
        if candidate and _provides(candidate, module):
            return metadata.distribution(candidate).metadata["Name"]
    providers = _all_providers().get(module)
    return providers[0] if providers else None


def _provides(distribution: str, module: str) -> bool:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    top_level = dist.read_text("top_level.txt")
    if top_level:
        return module in top_level.split()
    normalized = dist.metadata["Name"].lower().replace("-", "_")
    return normalized == module.lower() or distribution == _KNOWN_DISTRIBUTIONS.get(module)


@cache
def _all_providers() -> Mapping[str, list[str]]:
    """Every installed module -> distributions map; slow (reads every RECORD), so last resort."""
    return metadata.packages_distributions()


def notebook_server_image(core_api: Any | None = None) -> str | None:
    """Inside a Kubeflow notebook server, the image the server runs (as Kale does).

    The notebook controller sets ``NB_PREFIX``; the pod is read through the Kubernetes API
    with the server's service account. Anything else answers None.
    """
    if not os.environ.get("NB_PREFIX") or not os.environ.get("HOSTNAME"):
        return None
    try:
        if core_api is None:
            from kubernetes import client, config

            config.load_incluster_config()
            core_api = client.CoreV1Api()
        namespace = os.environ.get("NB2PIPE_NAMESPACE") or (_SERVICE_ACCOUNT / "namespace").read_text().strip()
        pod = core_api.read_namespaced_pod(name=os.environ["HOSTNAME"], namespace=namespace)
    except Exception:  # not a pod we can read: fall back to the default image
        return None
    containers = pod.spec.containers or []
    server = os.environ["NB_PREFIX"].rstrip("/").rsplit("/", 1)[-1]
    for container in containers:
        if container.name == server:
            return container.image
    return containers[0].image if containers else None
