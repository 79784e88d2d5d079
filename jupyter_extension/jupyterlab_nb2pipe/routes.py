"""The Jupyter Server routes of the nb2pipe panel (see ../API.md).

Each handler parses the request, calls one function of :mod:`nb2pipe.editor` and answers
JSON; errors are turned into API.md's ``{"message", "diagnostics"}`` in one place
(:meth:`Nb2PipeHandler.write_error`). Calls that block (compiling, starting a run, HTTP to
Kubeflow, MLflow, starting a model server) run in a thread so the server stays responsive.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import tornado.httputil
import tornado.ioloop
import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from jupyterlab_nb2pipe.paths import NotebookNotFound, PathEscape, confine_output, confine_workdir, resolve_notebook
from nb2pipe.editor.runs import BackgroundRuns, NoReport, RunFolderOutsideRoot, RunInProgress, UnknownRun
from nb2pipe.errors import CompileError, Nb2PipeError

#: key of the server's one :class:`BackgroundRuns` in ``web_app.settings``
RUNS_SETTING = "nb2pipe_runs"
AUTH_RESOURCE = "nb2pipe"
T = TypeVar("T")


class BadRequest(tornado.web.HTTPError):
    """The body is not JSON, or a field is missing or of the wrong type (400)."""

    def __init__(self, message: str) -> None:
        super().__init__(400)
        self.message = message


def error_reply(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, body) for an exception, as API.md's error table says."""
    if isinstance(exc, BadRequest):
        return 400, {"message": exc.message, "diagnostics": []}
    if isinstance(exc, PathEscape | RunFolderOutsideRoot):
        return 403, {"message": str(exc), "diagnostics": []}
    if isinstance(exc, NotebookNotFound | UnknownRun | NoReport):
        return 404, {"message": str(exc), "diagnostics": []}
    if isinstance(exc, RunInProgress):
        return 409, {"message": str(exc), "diagnostics": [], "run_id": exc.run_id}
    if isinstance(exc, CompileError):
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        message = f"{errors} error{'s' if errors != 1 else ''} in the notebook"
        return 422, {"message": message, "diagnostics": [d.to_json() for d in exc.diagnostics]}
    if isinstance(exc, Nb2PipeError):
        return 422, {"message": str(exc), "diagnostics": []}
    if isinstance(exc, tornado.web.HTTPError):  # authentication, authorization, XSRF
        message = exc.log_message or exc.reason or tornado.httputil.responses.get(exc.status_code, "error")
        return exc.status_code, {"message": message, "diagnostics": []}
    return 500, {"message": f"internal error: {type(exc).__name__}; see the server log", "diagnostics": []}


class Nb2PipeHandler(APIHandler):
    """What every nb2pipe route shares: the JSON body, paths under the root, the error form."""

    auth_resource = AUTH_RESOURCE

    @property
    def root(self) -> Path:
        return Path(self.settings["server_root_dir"]).expanduser()

    @property
    def runs(self) -> BackgroundRuns:
        return self.settings[RUNS_SETTING]

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the request body is not JSON") from None
        except RecursionError:  # [[[[...]]]] deeper than the parser's recursion limit
            raise BadRequest("the request body is nested too deeply") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    def field(self, body: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = False) -> Any:
        value = body.get(name)
        if value is None:
            if required:
                raise BadRequest(f"field {name!r} is missing")
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise BadRequest(f"field {name!r} must be of type {expected}")
        return value

    def parameters(self, body: dict[str, Any]) -> dict[str, str]:
        """``parameters``: pipeline parameter name -> value as typed (the server checks types)."""
        parameters = self.field(body, "parameters", dict) or {}
        if not all(isinstance(value, str) for value in parameters.values()):
            raise BadRequest('field \'parameters\' maps parameter names to strings, e.g. {"n_estimators": "200"}')
        return parameters

    def notebook(self, body: dict[str, Any], must_exist: bool = True) -> tuple[Path, str]:
        path = self.field(body, "path", str, required=True)
        return resolve_notebook(self.root, path, must_exist), path

    def workdir(self, notebook: Path) -> Path:
        """The notebook's ``.nb2pipe/`` (runs, logs and the MLflow store, as BackgroundRuns and
        deploy use it), refused unless it and what is directly in it stay in the root."""
        workdir = notebook.parent / ".nb2pipe"
        confine_workdir(self.root, workdir)
        return workdir

    async def blocking(self, function: Callable[..., T], *args: Any) -> T:
        return await tornado.ioloop.IOLoop.current().run_in_executor(None, functools.partial(function, *args))

    def answer(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        status, reply = (
            status_code,
            {"message": tornado.httputil.responses.get(status_code, "error"), "diagnostics": []},
        )
        if exc_info and exc_info[1] is not None:
            status, reply = error_reply(exc_info[1])
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(reply))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, Nb2PipeError):  # a refusal the user sees, not a server fault
            self.log.info("nb2pipe: %s %s: %s", self.request.method, self.request.path, str(value).splitlines()[0])
            return
        super().log_exception(typ, value, tb)


class GraphHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @authorized(action="read")
    async def post(self) -> None:
        from nb2pipe.compiler import read_notebook_text
        from nb2pipe.editor.graph import describe_source

        body = self.json_body()
        content = self.field(body, "notebook", dict)
        notebook, path = self.notebook(body, must_exist=content is None)
        text = json.dumps(content) if content is not None else await self.blocking(read_notebook_text, notebook)
        graph = await self.blocking(describe_source, text, path)
        self.answer(graph.to_json())


class CompileHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @authorized(action="write")
    async def post(self) -> None:
        from nb2pipe.compiler import default_output
        from nb2pipe.editor.actions import compile_for_editor

        notebook, path = self.notebook(self.json_body())
        confine_output(self.root, default_output(notebook), "compile output")
        result = await self.blocking(compile_for_editor, notebook, path)
        self.answer(result.to_json(self.root))


class RunsHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        """``?path=NB.ipynb``: the notebook's last runs, newest first."""
        notebook = resolve_notebook(self.root, self.get_query_argument("path", ""))
        self.workdir(notebook)
        self.answer({"runs": await self.blocking(self.runs.history, notebook)})

    @tornado.web.authenticated
    @authorized(action="execute")
    async def post(self) -> None:
        body = self.json_body()
        notebook, _ = self.notebook(body)
        parameters = self.parameters(body)
        self.workdir(notebook)
        view = await self.blocking(self.runs.start, notebook, parameters)
        self.answer(view.to_json(), 202)


class RunHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @authorized(action="read")
    async def get(self, run_id: str) -> None:
        view = await self.blocking(self.runs.get, run_id)
        self.answer(view.to_json())


class RunReportHandler(Nb2PipeHandler):
    """A run's HTML report. It holds the notebook's outputs: sandboxed (no scripts, an opaque
    origin) so nothing in it runs with the Jupyter origin's cookies and token."""

    @property
    def content_security_policy(self) -> str:
        return "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"

    @tornado.web.authenticated
    @authorized(action="read")
    async def get(self, run_id: str, task: str | None = None) -> None:
        step = task or self.get_query_argument("step", None)
        path = self.get_query_argument("path", None)
        notebook = None
        if path is not None:  # a run of an earlier server, or of a terminal: found beside its notebook
            notebook = resolve_notebook(self.root, path)
            self.workdir(notebook)
        html = await self.blocking(self.runs.report, run_id, step, notebook)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.finish(html, set_content_type="text/html; charset=utf-8")


class SubmitHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @authorized(action="execute")
    async def post(self) -> None:
        from nb2pipe.editor.actions import submit_for_editor

        body = self.json_body()
        notebook, _ = self.notebook(body)
        host = self.field(body, "host", str)
        experiment = self.field(body, "experiment", str)
        parameters = self.parameters(body)
        self.answer(await self.blocking(submit_for_editor, notebook, host, experiment, parameters))


class DeployHandler(Nb2PipeHandler):
    @tornado.web.authenticated
    @authorized(action="execute")
    async def post(self) -> None:
        from nb2pipe.editor.actions import TARGETS, deploy_champions, deployments_json

        body = self.json_body()
        notebook, _ = self.notebook(body)
        target = self.field(body, "target", str) or "local"
        if target not in TARGETS:
            raise BadRequest(f"field 'target' must be one of {', '.join(TARGETS)}")
        self.workdir(notebook)
        deployed = await self.blocking(deploy_champions, notebook, target)
        self.answer(deployments_json(deployed))


#: (pattern under BASE_URL/nb2pipe/, handler): every route of API.md
ROUTES: tuple[tuple[str, type[Nb2PipeHandler]], ...] = (
    ("graph", GraphHandler),
    ("compile", CompileHandler),
    ("runs", RunsHandler),
    ("runs/([^/]+)", RunHandler),
    ("runs/([^/]+)/report", RunReportHandler),
    # index.html links each step's report as TASK/report.html, relative to .../report
    ("runs/([^/]+)/([^/]+)/report\\.html", RunReportHandler),
    ("submit", SubmitHandler),
    ("deploy", DeployHandler),
)


def setup_route_handlers(server_app: Any) -> None:
    """Mount the routes and give the server its one :class:`BackgroundRuns` (runs are never
    stopped with the server: they finish on their own and stay resumable)."""
    web_app = server_app.web_app
    base_url = web_app.settings["base_url"]
    root = web_app.settings.get("server_root_dir") or server_app.root_dir
    web_app.settings.setdefault(RUNS_SETTING, BackgroundRuns(root))
    handlers = [(url_path_join(base_url, "nb2pipe", pattern), handler) for pattern, handler in ROUTES]
    web_app.add_handlers(".*$", handlers)
