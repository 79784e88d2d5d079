"""A Jupyter Server with the nb2pipe extension, on a root directory holding copies of the
examples; the recording KFP server of nb2pipe's own tests stands in for Kubeflow."""

from __future__ import annotations

import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's server fixtures and hooks, confined to this folder. The extension template's
# ``pytest_plugins = ("pytest_jupyter.jupyter_server",)`` would register them for the whole
# run when nb2pipe's suite runs with these tests (testpaths): their autouse fixtures (a fresh
# event loop and a ServerApp cleanup) would then wrap each of nb2pipe's own tests too.
from pytest_jupyter.jupyter_server import *  # noqa: F403

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"

#: examples copied into the server's root directory
NOTEBOOKS = ("sklearn_train.ipynb", "lifecycle.ipynb", "parameters_metrics.ipynb", "kale_five_models.ipynb")

Fetch = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture(autouse=True)
def own_tracking_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each notebook's MLflow store is the one beside it: an MLFLOW_TRACKING_URI that an
    earlier test left in this process (mlflow exports the URI it is set to) must not win."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {
        "ServerApp": {
            # the terminals extension (enabled by its installed config) is not needed here
            "jpserver_extensions": {"jupyterlab_nb2pipe": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        }
    }


def broken_notebook() -> dict[str, Any]:
    """A notebook whose cell 2 carries a tag nb2pipe refuses."""
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# broken"},
        {"cell_type": "code", "metadata": {"tags": ["step:load"]}, "source": "x = 1", "outputs": []},
        {"cell_type": "code", "metadata": {"tags": ["gpu:many"]}, "source": "y = x + 1", "outputs": []},
    ]
    for cell in cells:
        if cell["cell_type"] == "code":
            cell["execution_count"] = None
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    for name in NOTEBOOKS:
        shutil.copy(EXAMPLES / name, jp_root_dir / name)
    (jp_root_dir / "sub").mkdir()
    shutil.copy(EXAMPLES / "sklearn_train.ipynb", jp_root_dir / "sub" / "sklearn_train.ipynb")
    (jp_root_dir / "broken.ipynb").write_text(json.dumps(broken_notebook()), encoding="utf-8")
    (jp_root_dir / "notes.txt").write_text("not a notebook", encoding="utf-8")
    outside = jp_root_dir.parent / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "sklearn_train.ipynb", outside / "x.ipynb")
    (jp_root_dir / "link.ipynb").symlink_to(outside / "x.ipynb")
    (jp_root_dir / "linkdir").symlink_to(outside, target_is_directory=True)
    return jp_root_dir


@pytest.fixture
def fetch(jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_auth_header: dict[str, str]) -> Fetch:
    """``await fetch(METHOD, "nb2pipe/...", body, auth=True, headers=None)`` -> (status, JSON);
    never raises on an HTTP error status."""
    from jupyter_server.utils import url_path_join

    async def call(
        method: str, route: str, body: Any = None, *, auth: bool = True, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        sent = dict(jp_auth_header) if auth else {}
        sent.update(headers or {})
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        if method == "POST" and body is None:
            body = b""
        response = await http_server_client.fetch(
            url_path_join(jp_base_url, route),
            method=method,
            body=body,
            headers=sent,
            raise_error=False,
            follow_redirects=False,
            request_timeout=120,
        )
        text = response.body.decode("utf-8", errors="replace") if response.body else ""
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return response.code, payload

    return call
