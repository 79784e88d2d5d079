"""Step images: base image plus pinned imports, explicit images, the notebook server's image."""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from pathlib import Path

import pytest

from nb2pipe.compiler import compile_notebook
from nb2pipe.environment import default_base_image, distribution_of, notebook_server_image, packaging_for
from tests.support.kfpspec import parse_ir
from tests.support.loopback import LoopbackServer, Recorded
from tests.support.nbtools import EXAMPLES, code, notebook, write_notebook


def containers(yaml_text: str) -> dict[str, tuple[str, str]]:
    spec, _ = parse_ir(yaml_text)
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    found = {}
    for name, executor in executors.items():
        container = executor.struct_value.fields["container"].struct_value.fields
        found[name.removeprefix("exec-")] = (
            container["image"].string_value,
            container["command"].list_value.values[2].string_value,
        )
    return found


def test_default_is_the_base_image_plus_the_notebooks_imports_pinned(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("NB2PIPE_BASE_IMAGE", raising=False)
    result = compile_notebook(EXAMPLES / "sklearn_train.ipynb", output=tmp_path / "p.yaml")
    python = f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"
    for image, install in containers(result.output.read_text()).values():
        assert image == python
        for distribution in ("scikit-learn", "pandas", "numpy", "pyarrow", "cloudpickle"):
            assert f"{distribution}=={metadata.version(distribution)}" in install


def test_explicit_images_install_only_declared_packages(tmp_path: Path):
    nb = notebook(
        code("import pandas as pd", "imports"),
        code("df = pd.DataFrame()", "step:a"),
        code("print(df)", "step:b", "image:registry.example.com/ml:2", "packages:rich"),
    )
    path = write_notebook(tmp_path, nb)
    found = containers(compile_notebook(path, base_image="base:1").output.read_text())
    assert found["a"][0] == "base:1" and "pandas==" in found["a"][1]
    assert found["b"][0] == "registry.example.com/ml:2"
    assert "pandas==" not in found["b"][1] and "rich" in found["b"][1]
    found = containers(compile_notebook(path, image="cli:3").output.read_text())
    assert found["a"][0] == "cli:3" and "pandas==" not in found["a"][1]


def test_base_image_from_the_environment(monkeypatch):
    monkeypatch.setenv("NB2PIPE_BASE_IMAGE", "mirror.example.com/python:3.11")
    assert default_base_image() == "mirror.example.com/python:3.11"


def test_import_names_map_to_distributions():
    assert distribution_of("sklearn") == "scikit-learn"
    assert distribution_of("yaml") == "PyYAML"
    assert distribution_of("numpy") == "numpy"
    assert distribution_of("definitely_not_installed_module") is None
    pins = packaging_for({"pandas", "json", "os"}).pins
    assert set(pins) == {"pandas", "pyarrow", "cloudpickle"}  # stdlib left out, parquet support added


def test_inside_a_kubeflow_notebook_server_its_image_is_the_default(tmp_path: Path, monkeypatch):
    from kubernetes import client

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lab-0", "namespace": "team"},
        "spec": {
            "containers": [
                {"name": "sidecar", "image": "istio/proxy:1"},
                {"name": "lab", "image": "registry.example.com/jupyter-ml:5"},
            ]
        },
    }

    def respond(request: Recorded) -> tuple[int, object]:
        if request.method == "GET" and request.path == "/api/v1/namespaces/team/pods/lab-0":
            return 200, pod
        return 404, {"kind": "Status", "code": 404}

    monkeypatch.setenv("NB_PREFIX", "/notebook/team/lab")
    monkeypatch.setenv("HOSTNAME", "lab-0")
    monkeypatch.setenv("NB2PIPE_NAMESPACE", "team")
    with LoopbackServer(respond) as server:
        api = client.CoreV1Api(client.ApiClient(client.Configuration(host=server.url)))
        assert notebook_server_image(api) == "registry.example.com/jupyter-ml:5"
        assert [r.path for r in server.requests] == ["/api/v1/namespaces/team/pods/lab-0"]
        monkeypatch.setenv("HOSTNAME", "someone-else")
        assert notebook_server_image(api) is None  # unreadable pod: fall back quietly
    monkeypatch.delenv("NB_PREFIX")
    assert notebook_server_image(api) is None  # not in a notebook server at all


@pytest.mark.parametrize("module", ["sklearn", "pandas"])
def test_pins_are_installed_versions(module: str):
    requirement = packaging_for({module}).pins[module]
    name, version = requirement.split("==")
    assert metadata.version(name) == version
