"""The JupyterLab extension as users install it: a wheel that carries the prebuilt
labextension and the server extension's config, so ``pip install`` needs no Node.js, and
that JupyterLab in this environment finds and enables (``make test`` builds and installs it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel and asks JupyterLab; needs the lab extension built (make test)

REPO = Path(__file__).resolve().parents[1]
EXTENSION = REPO / "jupyter_extension"
SHARE = "jupyterlab_nb2pipe-0.1.0.data/data/share/jupyter/labextensions/jupyterlab-nb2pipe"
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
CONFIG = "jupyterlab_nb2pipe-0.1.0.data/data/etc/jupyter/jupyter_server_config.d/jupyterlab_nb2pipe.json"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", folder, EXTENSION],
        check=True,
        capture_output=True,
    )
    (built,) = folder.glob("jupyterlab_nb2pipe-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_ships_the_prebuilt_labextension(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    package = json.loads(wheel.read(f"{SHARE}/package.json"))
    assert package["name"] == "jupyterlab-nb2pipe"
    assert package["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert f"{SHARE}/{package['jupyterlab']['_build']['load']}" in names
    assert f"{SHARE}/schemas/jupyterlab-nb2pipe/plugin.json" in names
    assert json.loads(wheel.read(f"{SHARE}/install.json"))["packageName"] == "jupyterlab-nb2pipe"
    enabled = json.loads(wheel.read(CONFIG))["ServerApp"]["jpserver_extensions"]
    assert enabled == {"jupyterlab_nb2pipe": True}
    assert "jupyterlab_nb2pipe/routes.py" in names
    assert not [n for n in names if "node_modules" in n or "/tests/" in n or n.endswith(".ts")]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in wheel.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert any(line.split()[1].startswith("nb2pipe") for line in requires)


def _jupyter(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", *args], check=True, capture_output=True, text=True, timeout=120
    )
    return ANSI_COLOUR.sub("", done.stdout + done.stderr)


def test_jupyterlab_finds_both_halves() -> None:
    labextensions = _jupyter("labextension", "list")
    line = next(line for line in labextensions.splitlines() if "jupyterlab-nb2pipe" in line)
    assert "enabled" in line and "OK" in line, labextensions
    server = _jupyter("server", "extension", "list")
    assert "jupyterlab_nb2pipe enabled" in server, server
    assert any(line.split()[:1] == ["jupyterlab_nb2pipe"] and "OK" in line for line in server.splitlines()), server
