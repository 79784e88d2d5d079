"""JupyterLab extension of nb2pipe: the sidebar's front end (prebuilt, in ``labextension/``)
and the Jupyter Server routes it calls, which hand every request to nb2pipe's library."""

from __future__ import annotations

from typing import Any

try:
    from jupyterlab_nb2pipe._version import __version__
except ImportError:  # a source checkout that was never built
    __version__ = "0.0.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyterlab-nb2pipe"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyterlab_nb2pipe"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from jupyterlab_nb2pipe.routes import setup_route_handlers

    setup_route_handlers(server_app)
    server_app.log.info("Registered jupyterlab_nb2pipe server extension")
