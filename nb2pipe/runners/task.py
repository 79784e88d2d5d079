"""One pipeline task run by kfp.local's SubprocessRunner, in a child process of its own.

Each task gets a forked child that starts a new process group, writes everything to the
step's log file, reads nothing from a terminal, runs from the notebook's folder, ends with
its runner, and asks kfp.local to execute the task's component exactly as compiled. A
process per task lets independent steps run at the same time, keeps kfp.local's
process-wide logging set-up out of the way of other tasks, and lets an interrupt stop a
task together with everything it started.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

from nb2pipe.processes import is_alive, output_to, stop_group

SCHEMA_VERSION = "0.0.1"


@dataclass(frozen=True)
class TaskLaunch:
    task: str
    component_name: str
    component_spec: Any  # kfp.pipeline_spec ComponentSpec
    executor_spec: Any  # kfp.pipeline_spec ExecutorSpec
    arguments: dict[str, Any]
    pipeline_root: str
    run_id: str
    workdir: str
    log_path: str
    result_path: str
    environment: dict[str, str] = field(default_factory=dict)


def artifact_argument(name: str, record: dict[str, Any]) -> Any:
    """A kfp artifact object for an upstream output recorded in a run's state."""
    from kfp import dsl

    artifact = dsl.Artifact(name=name, uri=record["uri"], metadata=dict(record.get("metadata", {})))
    artifact.schema_title = record["schema_title"]
    artifact.schema_version = record.get("schema_version", SCHEMA_VERSION)
    return artifact


class TaskProcess:
    """A running task: poll it, or stop it and everything it started."""

    def __init__(self, launch: TaskLaunch, warm_context: Any = None) -> None:
        """``warm_context``: the run's fork server (:mod:`nb2pipe.runners.warm`) to fork this task
        from, which runs the executor in the task's own process; None starts it cold."""
        self.launch = launch
        self.warm = warm_context is not None
        context = warm_context or multiprocessing.get_context("fork")
        sent = _portable(launch) if self.warm else launch  # a fork server's child gets it pickled
        self._process = context.Process(
            target=_run_in_child, args=(sent, os.getpid(), self.warm), name=f"nb2pipe-{launch.task}"
        )
        self.started = time.time()

    def start(self) -> None:
        self._process.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def exit_code(self) -> int | None:
        return self._process.exitcode

    @property
    def sentinel(self) -> int:
        """Ready once the task's process has ended (see :func:`multiprocessing.connection.wait`)."""
        return self._process.sentinel

    def stop(self, grace_seconds: float = 5.0) -> None:
        """SIGTERM the task's process group, up to ``grace_seconds`` for all of it to exit, then
        SIGKILL whatever is left (:func:`nb2pipe.processes.stop_group`). A task that has ended
        is left alone."""
        if self._process.pid is None or self._process.exitcode is not None:
            return
        stop_group(self._process, grace_seconds)


def _portable(launch: TaskLaunch) -> TaskLaunch:
    """``launch`` with its protobuf messages as bytes: generated classes do not pickle."""
    return replace(
        launch,
        component_spec=launch.component_spec.SerializeToString(),
        executor_spec=launch.executor_spec.SerializeToString(),
    )


def _restored(launch: TaskLaunch) -> TaskLaunch:
    from kfp.pipeline_spec import pipeline_spec_pb2

    if not isinstance(launch.component_spec, bytes):
        return launch
    return replace(
        launch,
        component_spec=pipeline_spec_pb2.ComponentSpec.FromString(launch.component_spec),
        executor_spec=pipeline_spec_pb2.PipelineDeploymentConfig.ExecutorSpec.FromString(launch.executor_spec),
    )


def read_result(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _run_in_child(launch: TaskLaunch, runner: int, warm: bool = False) -> None:
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if warm:
        _let_the_server_end()
    # a warm task's parent is the run's fork server, which exits once the runner is gone
    watch = (runner, os.getppid())
    threading.Thread(target=_end_with_runner, args=watch, name="nb2pipe-runner-watch", daemon=True).start()
    # a step has no terminal: input() fails at once instead of waiting for a keyboard (as in nbclient)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    log = os.open(launch.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    output_to(log)
    os.close(log)
    code = 2
    try:
        os.chdir(launch.workdir)
        os.environ.update(launch.environment)
        code = _execute(_restored(launch), warm)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _end_with_runner(runner: int, parent: int, every: float = 0.5) -> None:
    """A task must not outlive its run: once the runner is gone (killed, even with SIGKILL,
    the task is handed to another parent), end this task's process group, steps included.
    ``parent`` is the runner, or the run's fork server (it ends with the runner)."""
    while os.getppid() == parent and is_alive(runner):
        time.sleep(every)
    os.killpg(0, signal.SIGKILL)


def _let_the_server_end() -> None:
    """A fork server runs while any of its children holds its "alive" pipe, as each does: a
    task must not keep it, or the server could not end with the runner, nor the task with it."""
    from multiprocessing import forkserver

    server: Any = forkserver._forkserver
    if server._forkserver_alive_fd is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None


def _execute(launch: TaskLaunch, warm: bool = False) -> int:
    from kfp import local
    from kfp.local import status, subprocess_task_handler, task_dispatcher

    if warm:
        import functools

        from nb2pipe.runners.warm_step import run_command_here

        cold = subprocess_task_handler.run_local_subprocess
        subprocess_task_handler.run_local_subprocess = functools.partial(run_command_here, cold=cold)

    outputs, task_status = task_dispatcher.run_single_task_implementation(
        pipeline_resource_name=launch.run_id,
        component_name=launch.component_name,
        component_spec=launch.component_spec,
        executor_spec=launch.executor_spec,
        arguments=launch.arguments,
        pipeline_root=launch.pipeline_root,
        runner=local.SubprocessRunner(use_venv=False),
        raise_on_error=False,
        block_input_artifact=False,
        unique_pipeline_id=launch.run_id,
    )
    succeeded = task_status == status.Status.SUCCESS
    recorded: dict[str, Any] = {}
    for name, value in (outputs or {}).items():
        if hasattr(value, "schema_title"):
            recorded[name] = {
                "schema_title": value.schema_title,
                "schema_version": value.schema_version,
                "uri": value.uri,
                "metadata": dict(value.metadata),
            }
        else:
            recorded[name] = {"value": value}
    partial = launch.result_path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump({"status": "succeeded" if succeeded else "failed", "outputs": recorded}, handle)
    os.replace(partial, launch.result_path)
    return 0 if succeeded else 1
