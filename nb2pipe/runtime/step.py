"""nb2pipe's step runtime: runs one pipeline step's notebook code inside a KFP component.

The compiler embeds this file verbatim in every component it emits, after ``values.py``
(and without the import of it below), so a step needs no nb2pipe in its image: only
Python's standard library at import time, and the libraries of the values it loads or
saves, imported when used. Keep it free of ``from __future__`` imports and of syntax newer
than Python 3.9.
"""

import ast
import contextlib
import io
import json
import linecache
import os
import pickle
import sys
import traceback
import types
from typing import Any, Dict, List

# embedded in a component, values.py's text stands above this module's instead of this import
from nb2pipe.runtime.values import VALUE_SIDECAR as VALUE_SIDECAR, StepError, Workspace, load_value, save_value

ERROR_MARKER = "NB2PIPE_STEP_ERROR "


def run_step(
    spec: Dict[str, Any],
    parameters: Dict[str, Any],
    inputs: Dict[str, Any],
    outputs: Dict[str, Any],
    metrics: Any = None,
    report: Any = None,
    workspace: Any = None,
) -> None:
    """Run a step: parameters, prelude, inputs, re-run definitions, the step's cells; then
    save the values later steps need, log its metrics and write its HTML report. ``workspace``:
    the pipeline's workspace path, through which values above ``spec["large_value_bytes"]`` go."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    recorder = _Report(spec)
    namespace["display"] = recorder.display
    namespace["get_ipython"] = lambda: None
    previous_main = sys.modules.get("__main__")
    sys.modules["__main__"] = module  # so pickles of notebook classes resolve here
    try:
        namespace.update(parameters)
        for block in spec["prelude"]:
            _run_block(block, namespace, spec, None)
        for name, artifact in inputs.items():
            namespace[name] = load_value(
                artifact.path,
                wait=os.environ.get("NB2PIPE_WAIT_FOR_INPUTS") == "1",
                on_gpu=bool(spec.get("gpu")),
                workspace=workspace,
                name=name,
            )
        for block in spec["replays"]:
            _run_block(block, namespace, spec, None)
        for block in spec["cells"]:
            _run_block(block, namespace, spec, recorder)
        # Everything that can fail is checked before any output appears: a later step may be
        # waiting for the outputs and start the moment they exist.
        values = {}
        for name in spec["metrics"]:
            value = namespace.get(name)
            if value is None:  # e.g. an optional parameter the run left unset: nothing to log
                sys.stderr.write("metric %r is None and is not logged\n" % name)
                continue
            values[name] = _metric_value(name, value)
        for name in outputs:
            if name not in namespace:
                raise StepError(
                    "step %r was expected to define %r for the steps after it, but did not" % (spec["step"], name)
                )
        large = Workspace(workspace, spec["step"], spec["large_value_bytes"]) if workspace else None
        for name, artifact in outputs.items():
            artifact.metadata.update(save_value(namespace[name], artifact.path, name, large))
        if metrics is not None:
            for name, value in values.items():
                metrics.log_metric(name, value)
            # also as a file: downstream tasks (model registration) read it on any backend
            with open(metrics.path + ".partial", "w") as handle:
                json.dump(values, handle)
            os.replace(metrics.path + ".partial", metrics.path)
        _keep_variables(spec, namespace)
        _exit_fast_when_done()
    finally:
        if report is not None:
            recorder.write(report.path)
        if previous_main is not None:
            sys.modules["__main__"] = previous_main


def _run_block(block: List[Any], namespace: Dict[str, Any], spec: Dict[str, Any], recorder: Any) -> None:
    """Execute one cell's code; with a recorder, capture its output and show the value of a
    last bare expression, as a notebook does."""
    cell, execution_count, first_line, source = block
    filename = "<%s cell %d>" % (spec["notebook"], cell + 1)
    linecache.cache[filename] = (len(source), None, _pad(source, first_line).splitlines(True), filename)
    tree = ast.parse(source, filename)
    ast.increment_lineno(tree, first_line - 1)
    last = None
    if recorder is not None and tree.body and isinstance(tree.body[-1], ast.Expr) and not _silenced(source):
        last = ast.Expression(tree.body.pop().value)
    capture = recorder.cell(cell, execution_count, source) if recorder is not None else _NoCapture()
    try:
        with capture:
            exec(compile(tree, filename, "exec"), namespace)
            if last is not None:
                value = eval(compile(last, filename, "eval"), namespace)
                if value is not None:
                    recorder.display(value)
    except BaseException as exc:
        # exit(), quit() and sys.exit() end the process: the step would stop without its outputs
        error = _early_exit(exc, filename, [tree, last]) if isinstance(exc, SystemExit) else exc
        _report_failure(error, spec, cell, execution_count, filename)
        if recorder is not None:
            recorder.failed(error)
        if error is exc:
            raise
        raise error from None


def _early_exit(exc: SystemExit, filename: str, trees: List[Any]) -> StepError:
    """A failure for a cell that raised SystemExit, quoting the call as written."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == filename]
    done = "raised SystemExit(%r)" % (exc.code,)
    for node in (node for tree in trees if tree is not None for node in ast.walk(tree)):
        if lines and getattr(node, "lineno", None) == lines[-1]:
            if isinstance(node, ast.Raise):
                done = "ran %s" % ast.unparse(node)
            elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("exit", "quit", "sys.exit"):
                done = "called %s" % ast.unparse(node)
    message = "the cell %s; a pipeline step cannot end the process early: remove it, or raise an exception to fail "
    return StepError(message % done + "the step").with_traceback(exc.__traceback__)


def _silenced(source: str) -> bool:
    """A trailing ``;`` hides a notebook cell's last value."""
    lines = [line.split("#", 1)[0].rstrip() for line in source.splitlines()]
    lines = [line for line in lines if line]
    return bool(lines) and lines[-1].endswith(";")


def _pad(source: str, first_line: int) -> str:
    """Source laid out at its notebook line numbers, for tracebacks."""
    return "\n" * (first_line - 1) + source


def _report_failure(exc: BaseException, spec: Dict[str, Any], cell: int, execution_count: Any, filename: str) -> None:
    frames = traceback.extract_tb(exc.__traceback__)
    notebook_frames = [frame for frame in frames if frame.filename.startswith("<" + spec["notebook"] + " cell ")]
    line = notebook_frames[-1].lineno if notebook_frames else None
    shown = traceback.format_list(notebook_frames) if notebook_frames else []
    where = "%s, cell %d%s, line %s" % (
        spec["notebook"],
        cell + 1,
        " [%s]" % execution_count if execution_count is not None else "",
        line,
    )
    text = "Traceback (most recent call last):\n%s%s" % (
        "".join(shown),
        "".join(traceback.format_exception_only(type(exc), exc)),
    )
    sys.stderr.write("Step %r failed at %s:\n%s" % (spec["step"], where, text))
    record = {
        "step": spec["step"],
        "notebook": spec["notebook"],
        "cell": cell,
        "execution_count": execution_count,
        "line": line,
        "error": type(exc).__name__,
        "message": str(exc),
        "traceback": text,
    }
    sys.stderr.write(ERROR_MARKER + json.dumps(record) + "\n")
    sys.stderr.flush()


def _keep_variables(spec: Dict[str, Any], namespace: Dict[str, Any]) -> None:
    """Where the local runner asks (``NB2PIPE_VARIABLES_DIR``), keep the values this step
    leaves as the notebook's final variables, for inspection and equivalence checks."""
    folder = os.environ.get("NB2PIPE_VARIABLES_DIR")
    if not folder or not spec.get("finals"):
        return
    try:
        import cloudpickle as pickler
    except ImportError:
        pickler = pickle
    kept = {}
    for name in spec["finals"]:
        if name not in namespace:
            continue
        try:
            kept[name] = pickler.dumps(namespace[name])
        except Exception:  # an unpicklable value is simply not kept
            continue
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, spec["step"] + ".pkl")
    with open(target + ".partial", "wb") as handle:
        pickle.dump(kept, handle)
    os.replace(target + ".partial", target)


def _exit_fast_when_done() -> None:
    """Where the local runner asks (``NB2PIPE_FAST_EXIT``), end the step's process without
    tearing down every imported library (~0.3 s with scikit-learn loaded) once KFP's
    executor has written its outputs, after the exit handlers the step registered. A later
    uncaught exception still exits with 1."""
    if os.environ.get("NB2PIPE_FAST_EXIT") != "1":
        return
    import atexit

    failed = []
    previous_hook = sys.excepthook

    def remember_failure(*info: Any) -> None:
        failed.append(True)
        previous_hook(*info)

    leaving: List[bool] = []

    def leave() -> None:
        if leaving:  # the handlers' run below calls this again
            return
        leaving.append(True)
        # the other exit handlers run as at a normal exit (an MLflow run ended, a W&B run synced);
        # only the interpreter's teardown is skipped
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(1 if failed else 0)

    sys.excepthook = remember_failure
    atexit.register(leave)


# --- the step's HTML report -------------------------------------------------------------


class _NoCapture:
    def __enter__(self) -> "_NoCapture":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class _Tee(io.TextIOBase):
    """Writes to the real stream and keeps a bounded copy for the report."""

    LIMIT = 200000

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.parts: List[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        self.stream.write(text)
        if self.size < self.LIMIT:
            self.parts.append(text[: self.LIMIT - self.size])
            self.size += len(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    @property
    def encoding(self) -> Any:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.stream.fileno()


class _Report:
    """Per cell: source, printed output, displayed values and matplotlib figures."""

    def __init__(self, spec: Dict[str, Any]) -> None:
        self.spec = spec
        self.sections: List[Dict[str, Any]] = []
        self.saved: List[Any] = []

    def cell(self, cell: int, execution_count: Any, source: str) -> "_Report":
        self.sections.append({"cell": cell, "count": execution_count, "source": source, "items": []})
        return self

    def __enter__(self) -> "_Report":
        self.saved = [sys.stdout, sys.stderr]
        sys.stdout, sys.stderr = _Tee(sys.stdout), _Tee(sys.stderr)
        return self

    def __exit__(self, *exc: Any) -> None:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self.saved
        self._collect_figures()
        items = self.sections[-1]["items"]
        for stream, kind in ((out, "stdout"), (err, "stderr")):
            text = "".join(getattr(stream, "parts", []))
            if text:
                items.insert(0, (kind, _escape(text)))

    def display(self, *values: Any) -> None:
        # printed for the step's log only: the report shows the value once, as HTML
        stream = sys.stdout.stream if isinstance(sys.stdout, _Tee) else sys.stdout
        for value in values:
            print(repr(value) if not isinstance(value, str) else value, file=stream)
            if self.sections:
                self.sections[-1]["items"].append(("html", _as_html(value)))

    def failed(self, exc: BaseException) -> None:
        if self.sections:
            text = "".join(traceback.format_exception_only(type(exc), exc))
            self.sections[-1]["items"].append(("error", _escape(text)))

    def _collect_figures(self) -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None or not self.sections:
            return
        import base64

        for number in pyplot.get_fignums():
            buffer = io.BytesIO()
            pyplot.figure(number).savefig(buffer, format="png", bbox_inches="tight")
            image = base64.b64encode(buffer.getvalue()).decode("ascii")
            self.sections[-1]["items"].append(("html", '<img src="data:image/png;base64,%s"/>' % image))
        pyplot.close("all")

    def write(self, path: str) -> None:
        title = "%s — step %s" % (_escape(self.spec["notebook"]), _escape(self.spec["step"]))
        body = []
        for section in self.sections:
            count = "[%s]" % section["count"] if section["count"] is not None else ""
            body.append(
                '<section><h2>cell %d %s</h2><details><summary>code</summary><pre class="code">%s</pre></details>'
                % (section["cell"] + 1, count, _escape(section["source"]))
            )
            for kind, content in section["items"]:
                body.append(content if kind == "html" else '<pre class="%s">%s</pre>' % (kind, content))
            body.append("</section>")
        html = (
            '<!doctype html><html><head><meta charset="utf-8"><title>%s</title><style>'
            "body{font-family:sans-serif;margin:1.5em}pre{background:#f6f6f6;padding:.5em;overflow:auto}"
            "pre.stderr{background:#fff4e5}pre.error{background:#fde8e8}table{border-collapse:collapse}"
            "td,th{border:1px solid #ddd;padding:2px 6px}</style></head><body><h1>%s</h1>%s</body></html>"
        ) % (title, title, "".join(body))
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path + ".partial", "w", encoding="utf-8") as handle:
            handle.write(html)
        os.replace(path + ".partial", path)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _as_html(value: Any) -> str:
    render = getattr(value, "_repr_html_", None)
    if callable(render):
        try:
            html = render()
        except Exception:  # a broken _repr_html_ falls back to repr
            html = None
        if html:
            return html
    return "<pre>%s</pre>" % _escape(repr(value))


def _metric_value(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StepError("metric %r must be a number, got %s" % (name, type(value).__name__)) from None


#: The name compiled step functions call, one no notebook variable is likely to shadow.
_nb2pipe_run_step = run_step
