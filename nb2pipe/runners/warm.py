"""Warm steps: a run's fork server, and KFP's executor run in the step's own process.

Cold, a step's process asks kfp.local to run the component's command: a shell that checks the
packages, then a fresh ``python3 -m kfp.dsl.executor_main`` that imports kfp and the step's
libraries again. Warm, the runner starts one fork server per run (multiprocessing's
``forkserver``) that imports kfp, KFP's executor and the notebook's prelude modules once
(:mod:`nb2pipe.runners.warm_preload`); each step is a child forked from it, in a process group
of its own as before, and runs the same command's executor in-process (:mod:`nb2pipe.runners.warm_step`),
with the same arguments, environment, folder and log. Only a command of exactly the compiled
shape whose package checks all pass runs in-process; anything else takes the cold path.

Set ``NB2PIPE_WARM=0`` to start every step cold.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import connection, context, forkserver, popen_forkserver, reduction, spawn, util
from pathlib import Path
from typing import Any

from nb2pipe.runners import warm_preload

WARM_ENV = "NB2PIPE_WARM"
#: the longest a step waits for the server's imports before it starts cold instead
READY_WITHIN_S = 120.0
#: servers started when a module taints one (each retry leaves the culprit out)
_ATTEMPTS = 3
#: multiprocessing keeps one fork server per process: one run at a time holds it (runs beside
#: it in the same process, from threads, start their steps cold rather than stop its server)
_HELD = threading.Lock()


def warm_enabled() -> bool:
    return os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass
class WarmServer:
    """The fork server of one run; :meth:`close` stops it (a server outlives nothing: it also
    exits by itself once the runner that started it is gone)."""

    modules: Sequence[str]
    notebook_dir: Path
    report_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    refused: str = ""  # why no step forks from it ("" when they may)
    forked: bool = False  # forked from the runner (:meth:`fork_here`), not started as a new interpreter
    _ready: bool = False
    _modules_pipe: int | None = None  # a forked server reads its prelude modules from here
    _report: Path | None = None  # where the server says what it imported
    _holds: bool = False  # this run holds the process's fork server (``_HELD``)
    _closed: bool = False

    def fork_here(self) -> bool:
        """Start the server as a fork of this process, which imports kfp first (it needs kfp too:
        the server shares those imports instead of paying them again); the prelude modules follow
        with :meth:`send_modules`, so the server imports them while this process compiles. False,
        nothing started, where this process runs a thread, native ones too (a fork copies it half-way)."""
        _import_kfp_without_its_client()
        import kfp.dsl.executor_main
        import kfp.local  # noqa: F401

        if _threads_here() > 1:
            return False
        server = _server()
        server._stop()
        report = self._new_report()
        address = connection.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(address)
        if not util.is_abstract_socket_namespace(address):
            os.chmod(address, 0o600)
        listener.listen()
        modules_r, modules_w = os.pipe()
        alive_r, alive_w = os.pipe()  # as multiprocessing's server: it ends once every writer is gone
        sys.stdout.flush()  # what this process has yet to write is not the server's to write
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the server: it never returns into the runner's code
            code = 0
            try:
                os.close(modules_w)
                os.close(alive_w)
                warm_preload.preload_from(modules_r, str(report), str(self.notebook_dir))
                forkserver.main(listener.fileno(), alive_r, [])
            except SystemExit:
                pass
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        listener.close()
        os.close(alive_r)
        os.close(modules_r)
        server._forkserver_address, server._forkserver_alive_fd, server._forkserver_pid = address, alive_w, pid
        self._report, self._modules_pipe, self.forked = report, modules_w, True
        return True

    def send_modules(self, modules: Sequence[str], *, more_to_come: bool = False) -> None:
        """Modules for a server started by :meth:`fork_here` to import (it waits for them), those
        not sent before; ``more_to_come``: a later call sends the rest (the server imports these
        meanwhile), else the server is told the list is complete."""
        fresh = [name for name in modules if name not in self.modules]
        self.modules = (*self.modules, *fresh)
        if self._modules_pipe is None:
            return
        data = (",".join(fresh) + "\n").encode()
        try:
            while data:
                data = data[os.write(self._modules_pipe, data) :]
        except BrokenPipeError:
            more_to_come = False  # the server ended: ready() says so
        if not more_to_come:
            os.close(self._modules_pipe)
            self._modules_pipe = None

    def start(self) -> None:
        server = _server()
        server._stop()  # a server from an earlier run in this process imported other modules
        server.set_forkserver_preload(["nb2pipe.runners.warm_preload"])
        self._remove_files()  # of a server this run started before (one that a module tainted)
        self.forked = False
        report = self._new_report()
        previous = {name: os.environ.get(name) for name in _ENVS}
        os.environ[warm_preload.MODULES_ENV] = ",".join(m for m in self.modules if m not in self.skipped)
        os.environ[warm_preload.REPORT_ENV] = str(report)
        os.environ[warm_preload.FOLDER_ENV] = str(self.notebook_dir)
        try:
            server.ensure_running()
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        self._report = report

    def ready(self) -> bool:
        """Wait for the server's imports; False where no step may fork from it."""
        if self._ready:
            return not self.refused
        for attempt in range(_ATTEMPTS):
            report = self._wait_for_report()
            if isinstance(report, str):
                self.refused = report
                break
            self.loaded = list(report["loaded"])
            self.skipped.update(report["skipped"])
            self.refused = report["tainted"]
            if not self.refused:
                break
            if attempt + 1 < _ATTEMPTS:  # again, without the module that tainted it
                self.start()
        if self.refused:
            _server()._stop()
        self._ready = True
        return not self.refused

    def context_for(self, task: str, executor_spec: Any, say: Callable[[str], None]) -> Any:
        """The multiprocessing context to start ``task`` with, or None: it starts cold. The
        first call waits for the server's imports and ``say``s what it preloaded and skipped."""
        if is_gpu_step(executor_spec):
            say(f"warm steps: {task} starts cold: it asks for an accelerator")
            return None
        changed = environment_changes(executor_spec)
        if changed:
            say(
                f"warm steps: {task} starts cold: it sets {', '.join(changed)}, which a library may read as it "
                "is imported (the server imported without it)"
            )
            return None
        first = not self._ready
        usable = self.ready()
        if first:
            say(self.summary())
        return _StepContext() if usable else None

    def summary(self) -> str:
        how = "forked from the runner, kfp shared" if self.forked else "a new interpreter"
        lines = [f"warm steps ({how}): preloaded {', '.join(self.loaded) or 'nothing'}"]
        lines += [f"warm steps: skipped {name}: {why}" for name, why in sorted(self.skipped.items())]
        if self.refused:
            lines.append(f"warm steps: off, every step starts cold: {self.refused}")
        return "\n".join(lines)

    def close(self) -> None:
        """Stop the server and let another run of this process have one; once (a run closes its
        early server, and so does the ``with`` that made it)."""
        if self._closed:
            return
        self._closed = True
        if self._modules_pipe is not None:  # the run ended before its compile did: no imports to wait for
            os.close(self._modules_pipe)
            self._modules_pipe = None
            with contextlib.suppress(OSError):
                os.kill(_server()._forkserver_pid, signal.SIGKILL)
        _server()._stop()
        self._remove_files()
        if self._holds:
            self._holds = False
            _HELD.release()

    def _new_report(self) -> Path:
        """Where a server started now says what it imported (its log beside it)."""
        return self.report_dir / f"warm-{os.getpid()}-{time.monotonic_ns()}.json"

    def _remove_files(self) -> None:
        """The server's report and the log of what its imports printed."""
        if self._report is not None:
            for path in (self._report, Path(warm_preload.log_path(str(self._report)))):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _wait_for_report(self) -> dict[str, Any] | str:
        """What the server preloaded, or why there is no telling."""
        deadline = time.monotonic() + READY_WITHIN_S
        while self._report is not None and time.monotonic() < deadline:
            try:
                with open(self._report, encoding="utf-8") as handle:
                    report = dict(json.load(handle))
                os.unlink(self._report)
                return report
            except FileNotFoundError:
                pid = _server()._forkserver_pid
                if pid is None or os.waitpid(pid, os.WNOHANG)[0]:
                    return "the fork server ended while it imported the notebook's modules"
                time.sleep(0.02)
        return f"its imports took over {READY_WITHIN_S:g} s"


_ENVS = (warm_preload.MODULES_ENV, warm_preload.REPORT_ENV, warm_preload.FOLDER_ENV)


class _StepPopen(popen_forkserver.Popen):
    """multiprocessing's forkserver Popen (CPython's ``_launch``), less one thing: the child does
    not import the parent's main module again. multiprocessing re-runs a script's top level in
    each child (``spawn.prepare``), so a script that calls ``run_notebook`` without a
    ``__main__`` guard would start a run in every step; a step needs nothing of that module (its
    target and arguments live in nb2pipe)."""

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_name", None)
        prep_data.pop("init_main_from_path", None)
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        # a duplicate of the data pipe's write end: the child's sentinel of its parent (as CPython)
        parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as pipe:
            pipe.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _StepProcess(context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _StepPopen:
        return _StepPopen(process_obj)


class _StepContext(context.ForkServerContext):
    """The forkserver context a warm step starts from (:class:`_StepPopen`)."""

    Process = _StepProcess


def _server() -> Any:
    """multiprocessing's fork server (one per process: a run stops it when it ends)."""
    return forkserver._forkserver


def _threads_here() -> int:
    """This process's threads, native ones included: an OpenMP or BLAS pool that ran here before
    (in a test, a notebook server) does not survive a fork, and threading does not count it."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _import_kfp_without_its_client() -> None:
    """``import kfp`` imports kfp.client and the Kubernetes client with it (0.2 s of CPU, in the runner
    and its server) unless KFP's runtime flag is set: a local run needs neither. kfp.dsl follows in
    full, without the flag (the compiler needs its decorators)."""
    if "kfp" in sys.modules:
        return
    previous = os.environ.get("_KFP_RUNTIME")
    os.environ["_KFP_RUNTIME"] = "true"
    try:
        import kfp
    finally:
        if previous is None:
            del os.environ["_KFP_RUNTIME"]
        else:
            os.environ["_KFP_RUNTIME"] = previous
    import kfp.dsl  # noqa: F401


@contextlib.contextmanager
def early_server(notebook_dir: Path) -> Iterator[WarmServer | None]:
    """A run's fork server started before its compile (:meth:`WarmServer.fork_here`), closed on
    the way out, or None: warm steps are off, another run of this process holds the server, or
    the run starts one later (:func:`run_server`)."""
    if not warm_enabled() or not _HELD.acquire(blocking=False):
        yield None
        return
    server = WarmServer((), notebook_dir, _holds=True)
    try:
        forked = server.fork_here()
    except BaseException:
        server.close()
        raise
    if not forked:
        server.close()
        yield None
        return
    try:
        yield server
    finally:
        server.close()


def run_server(
    early: WarmServer | None,
    warm: bool,
    modules: Sequence[str],
    notebook_dir: Path,
    report_dir: Path,
    say: Callable[[str], None] | None = None,
) -> WarmServer | None:
    """The fork server a run's steps start from: ``early``, or one started now; None: all cold."""
    if not warm:
        if early is not None:
            early.close()
        return None
    if early is not None:
        return early
    if not _HELD.acquire(blocking=False):
        if say is not None:
            say("warm steps: off, every step starts cold: another run in this process holds its fork server")
        return None
    server = WarmServer(modules, notebook_dir, report_dir, _holds=True)
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def environment_changes(executor_spec: Any) -> list[str]:
    """The variables a step's container sets (``env:`` tags) to other values than this process
    has, the one its server inherited: OMP_NUM_THREADS, KERAS_BACKEND... are read at import."""
    return sorted(
        variable.name for variable in executor_spec.container.env if os.environ.get(variable.name) != variable.value
    )


def is_gpu_step(executor_spec: Any) -> bool:
    """A step that asks for an accelerator: it starts cold (CUDA is never initialised before a fork)."""
    resources = executor_spec.container.resources
    accelerator = resources.accelerator
    return bool(accelerator.type or accelerator.resource_type or accelerator.count or accelerator.resource_count)
