"""``nb2pipe run``: compile a notebook and execute its IR on kfp.local, step by step.

kfp.local's own pipeline runner executes tasks one after another and cannot resume; this
module walks the compiled DAG itself and hands each task to kfp.local's task executor
(SubprocessRunner, current environment) in a process of its own, so independent steps run
at the same time, a failed or interrupted run can be resumed, and progress is reported as it
happens. Everything a run makes is kept under ``DIR/runs/RUN_ID/``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing import connection
from pathlib import Path
from typing import Any

from nb2pipe.analysis.graph import topological_order
from nb2pipe.compiler import compile_source, read_notebook_text
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DEPLOYMENT_OUTPUT, REGISTERED_OUTPUT, REPORT_OUTPUT, PackageIndex
from nb2pipe.processes import interrupt_on_sigterm
from nb2pipe.runners import state as states
from nb2pipe.runners.components import run_timeout, step_fingerprint, step_timeouts, without_unset_inputs
from nb2pipe.runners.failures import StepFailure, failure_from_log, timed_out
from nb2pipe.runners.graph import Source, TaskNode, guard_holds, task_graph
from nb2pipe.runners.parameters import coerce_parameters
from nb2pipe.runners.progress import RunObserver, SilentObserver
from nb2pipe.runners.run_folder import create_run_folder, running_here, write_index
from nb2pipe.runners.run_result import RunInterrupted, RunResult, deployment_record
from nb2pipe.runners.state import RunState, StepState
from nb2pipe.runners.task import TaskLaunch, TaskProcess, artifact_argument, read_result
from nb2pipe.runners.volumes import check_local_mounts, claim_task_outputs, local_claim_tasks
from nb2pipe.runners.warm import WarmServer, early_server, run_server, warm_enabled
from nb2pipe.runners.warm_modules import notebook_modules, prelude_modules
from nb2pipe.runners.workspace import without_workspace_constants, workspace_arguments, workspace_inputs
from nb2pipe.store.data import WAIT_FOR_INPUTS_ENV
from nb2pipe.store.registry import TRACKING_ENV

METRICS_SCHEMA = "system.Metrics"


@dataclass
class LocalRun:
    """Everything one ``nb2pipe run`` needs: the compiled pipeline and where it runs."""

    notebook: Path
    pipeline_yaml: str
    workdir: Path
    parameters: dict[str, Any]
    parallel: int = field(default_factory=lambda: os.cpu_count() or 2)
    keep_variables: bool = False
    observer: RunObserver = field(default_factory=SilentObserver)
    #: the notebook's MLflow server (``metadata.nb2pipe.mlflow_tracking_uri``); MLFLOW_TRACKING_URI wins
    tracking_uri: str | None = None
    #: steps fork from a server that imported these first (nb2pipe/runners/warm.py); NB2PIPE_WARM=0: all cold
    warm: bool = field(default_factory=warm_enabled)
    warm_modules: tuple[str, ...] = ()
    #: a server started before the compile (:func:`nb2pipe.runners.warm.early_server`); the run closes it
    warm_server: WarmServer | None = None
    #: where what a run decides about its steps is said (``--verbose``); nowhere when None
    say: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        import yaml
        from google.protobuf import json_format
        from kfp.pipeline_spec import pipeline_spec_pb2

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster than pure Python
        document, *platforms = yaml.load_all(self.pipeline_yaml, Loader=loader)
        self.spec = json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
        self.timeouts = step_timeouts(platforms)
        self.run_timeout = run_timeout(platforms)
        check_local_mounts(self.spec, platforms)
        self.workspace_inputs = workspace_inputs(self.spec)  # the runner passes the workspace folder
        self.nodes = without_workspace_constants(task_graph(self.spec), self.workspace_inputs)
        #: kfp-kubernetes' CreatePVC/DeletePVC tasks: no claim is made here (runners/volumes.py)
        self.claim_tasks = local_claim_tasks(self.spec, self.nodes)
        self.order = _topological(self.nodes)
        defaults = {
            name: json_format.MessageToDict(definition.default_value)
            for name, definition in self.spec.root.input_definitions.parameters.items()
            if definition.HasField("default_value")
        }
        self.values = {**defaults, **self.parameters}

    # -- public ---------------------------------------------------------------------------
    def start(self, run_id: str | None = None) -> RunResult:
        run_dir = create_run_folder(self.runs_dir, self.spec.pipeline_info.name, run_id)
        run_id = run_dir.name
        (run_dir / "pipeline.yaml").write_text(self.pipeline_yaml, encoding="utf-8")
        run = RunState(run_id, str(self.notebook), self.spec.pipeline_info.name, dict(self.parameters))
        run.steps = {
            name: StepState(name, self.nodes[name].step, fingerprint=self.fingerprint(name)) for name in self.order
        }
        with running_here(run_dir):
            return self._execute(run, run_dir)

    def resume(self, run_id: str) -> RunResult:
        run_dir = self.runs_dir / run_id
        RunState.load(run_dir)  # no such run, or a damaged record: say so before locking
        with running_here(run_dir):  # before anything of a live run is cleared
            return self._resume(run_id, run_dir)

    def _resume(self, run_id: str, run_dir: Path) -> RunResult:
        previous = RunState.load(run_dir)
        run = RunState(run_id, str(self.notebook), self.spec.pipeline_info.name, previous.parameters)
        for name in self.order:
            old = previous.steps.get(name)
            fingerprint = self.fingerprint(name)
            upstream_reused = all(run.steps[parent].status == states.SUCCEEDED for parent in self.nodes[name].upstream)
            if old and old.status == states.SUCCEEDED and old.fingerprint == fingerprint and upstream_reused:
                run.steps[name] = StepState(
                    name,
                    self.nodes[name].step,
                    states.SUCCEEDED,
                    old.started,
                    old.finished,
                    fingerprint,
                    reused=True,
                    outputs=old.outputs,
                )
            else:
                run.steps[name] = StepState(name, self.nodes[name].step, fingerprint=fingerprint)
                shutil.rmtree(run_dir / name, ignore_errors=True)
        (run_dir / "pipeline.yaml").write_text(self.pipeline_yaml, encoding="utf-8")
        return self._execute(run, run_dir)

    @property
    def runs_dir(self) -> Path:
        return self.workdir / "runs"

    def fingerprint(self, task: str) -> str:
        return step_fingerprint(self.spec, self.nodes[task], self.values)

    # -- scheduling ------------------------------------------------------------------------
    def _execute(self, run: RunState, run_dir: Path) -> RunResult:
        run.status = states.RUNNING
        run.save(run_dir)
        self.observer.on_start(run)
        running: dict[str, TaskProcess] = {}
        self._server = run_server(
            self.warm_server, self.warm, self.warm_modules, self.notebook.parent, run_dir, say=self.say
        )
        deadline = None if self.run_timeout is None else time.monotonic() + self.run_timeout
        try:
            with interrupt_on_sigterm():
                while self._schedule(run, run_dir, running):
                    if deadline is not None and time.monotonic() > deadline:  # KFP's activeDeadlineSeconds
                        raise RunInterrupted(
                            f"run {run.run_id} stopped: the pipeline's timeout of {self.run_timeout} s passed; "
                            f"finish it with: nb2pipe run {self.notebook} --resume {run.run_id}, or raise the timeout"
                        )
                    self.observer.tick(run)
                    # wake as soon as a task ends: a chain of short steps waits on each hand-over
                    connection.wait([process.sentinel for process in running.values()], timeout=0.05)
        except BaseException as exc:
            # whatever ends the runner ends its steps: none may wait for a runner that is gone
            for name, process in running.items():
                process.stop()
                self._mark(run, run_dir, name, states.INTERRUPTED)
                shutil.rmtree(run_dir / name, ignore_errors=True)  # no half-written artifacts remain
            for step in run.steps.values():
                if step.status == states.PENDING:
                    self._mark(run, run_dir, step.task, states.INTERRUPTED)
            run.status = states.INTERRUPTED
            run.save(run_dir)
            if not isinstance(exc, KeyboardInterrupt):
                raise
            raise RunInterrupted(
                f"run {run.run_id} interrupted; finish it with: nb2pipe run {self.notebook} --resume {run.run_id}"
            ) from None
        finally:
            if self._server is not None:
                self._server.close()
        ok = all(step.status in (states.SUCCEEDED, states.NOT_RUN) for step in run.steps.values())
        run.status = states.SUCCEEDED if ok else states.FAILED
        run.save(run_dir)
        result = self._result(run, run_dir)
        write_index(run_dir, result)
        return result

    def _schedule(self, run: RunState, run_dir: Path, running: dict[str, TaskProcess]) -> bool:
        """One pass: collect finished tasks, start ready ones. False when nothing is left.

        A step whose parents are all still running and all hand it data starts early: it
        imports its libraries while they work, then waits for their outputs to appear. At
        most ``parallel`` steps compute at once, and as many more may wait.
        """
        for name, process in list(running.items()):
            code = process.exit_code()
            if code is not None:
                del running[name]
                self._collect(run, run_dir, name, code)
            elif self._blocked(run, name):
                process.stop()
                del running[name]
                shutil.rmtree(run_dir / name, ignore_errors=True)
                self._mark(run, run_dir, name, states.SKIPPED)
            elif self._timed_out(run, name):
                process.stop()
                del running[name]
                log = run_dir / name / "step.log"
                self._fail(run, run_dir, name, timed_out(run.steps[name].step, self._timeout(name) or 0, log))
        for name in running:
            step = run.steps[name]
            if step.waiting and self._parents_done(run, name):
                step.waiting, step.started = False, time.time()
                self.observer.on_step(run, step)
        computing = sum(1 for name in running if not run.steps[name].waiting)
        for name in self.order:
            step = run.steps[name]
            if step.status != states.PENDING:
                continue
            if self._blocked(run, name):
                self._mark(run, run_dir, name, states.SKIPPED)
            elif self._not_triggered(run, name):
                self._mark(run, run_dir, name, states.NOT_RUN)
            elif self._parents_done(run, name) and name in self.claim_tasks:
                step.outputs = claim_task_outputs()
                self._mark(run, run_dir, name, states.SUCCEEDED)
            elif self._parents_done(run, name):
                if computing < self.parallel:
                    running[name] = self._launch(run, run_dir, name, early=False)
                    computing += 1
            elif self._can_start_early(run, name) and len(running) < 2 * self.parallel:
                running[name] = self._launch(run, run_dir, name, early=True)
        return bool(running) or any(step.status == states.PENDING for step in run.steps.values())

    def _parents_done(self, run: RunState, name: str) -> bool:
        return all(run.steps[parent].status == states.SUCCEEDED for parent in self.nodes[name].upstream)

    def _not_triggered(self, run: RunState, name: str) -> bool:
        """Inside a ``dsl.If`` whose condition is false (known once its inputs are)."""
        node = self.nodes[name]
        if any(run.steps[parent].status == states.NOT_RUN for parent in node.upstream):
            return True
        if not node.guards or not self._parents_done(run, name):
            return False
        return not all(guard_holds(guard, lambda source: self._value(run, source)) for guard in node.guards)

    def _value(self, run: RunState, source: Source) -> Any:
        if source[0] == "parameter":
            return self.values[source[1]]
        if source[0] == "value":
            return json.loads(source[1])
        return run.steps[source[1]].outputs[source[2]]["value"]

    def _timeout(self, name: str) -> int | None:
        component = self.spec.components[self.nodes[name].component_name]
        return self.timeouts.get(component.executor_label)

    def _timed_out(self, run: RunState, name: str) -> bool:
        """Past its ``timeout:`` since its inputs were ready (KFP counts from the pod's start,
        which on a cluster is when they are)."""
        step, limit = run.steps[name], self._timeout(name)
        if not limit:
            return False
        return not step.waiting and step.started is not None and time.time() - step.started > limit

    def _blocked(self, run: RunState, name: str) -> bool:
        bad = (states.FAILED, states.SKIPPED, states.INTERRUPTED)
        return any(run.steps[parent].status in bad for parent in self.nodes[name].upstream)

    def _can_start_early(self, run: RunState, name: str) -> bool:
        """Only a step that depends on nothing but data: an after: edge may stand for a file
        that appears at any point of the earlier step."""
        node = self.nodes[name]
        providers = {producer for producer, _ in node.artifact_inputs.values()}
        statuses = [run.steps[parent].status for parent in node.upstream]
        return (
            bool(node.upstream)
            and not node.task_parameter_inputs  # a parameter's value is known only once its task ends
            and providers == set(node.upstream)
            and all(status in (states.RUNNING, states.SUCCEEDED) for status in statuses)
        )

    def _artifact_record(self, run: RunState, run_dir: Path, producer: str, output: str) -> dict[str, Any]:
        recorded = run.steps[producer].outputs.get(output)
        if recorded is not None:
            return recorded
        # The producer still runs: its output will appear where kfp.local puts outputs, a folder
        # named after its component (a sub-pipeline's task is not named so in the flat graph)
        from kfp.local.executor_input_utils import get_local_task_resource_name

        component_name = self.nodes[producer].component_name
        component = self.spec.components[component_name]
        artifact_type = component.output_definitions.artifacts[output].artifact_type
        return {
            "schema_title": artifact_type.schema_title,
            "schema_version": artifact_type.schema_version,
            "uri": str(run_dir / get_local_task_resource_name(component_name) / output),
            "metadata": {},
        }

    def _launch(self, run: RunState, run_dir: Path, name: str, early: bool) -> TaskProcess:
        node = self.nodes[name]
        # an optional parameter the run leaves unset (a None default) is not passed at all
        arguments: dict[str, Any] = {
            key: self.values[source] for key, source in node.parameter_inputs.items() if source in self.values
        }
        for key, (producer, output) in node.task_parameter_inputs.items():
            arguments[key] = run.steps[producer].outputs[output]["value"]
        arguments.update(node.literal_inputs)
        for key, (producer, output) in node.artifact_inputs.items():
            arguments[key] = artifact_argument(key, self._artifact_record(run, run_dir, producer, output))
        arguments.update(workspace_arguments(self.workspace_inputs.get(name, ()), run_dir))
        component = without_unset_inputs(self.spec.components[node.component_name], arguments)
        from kfp.local import utils as local_utils

        executor = local_utils.struct_to_executor_spec(
            self.spec.deployment_spec.fields["executors"].struct_value.fields[component.executor_label].struct_value
        )
        task_dir = run_dir / name
        shutil.rmtree(task_dir, ignore_errors=True)
        task_dir.mkdir(parents=True)
        # register/deploy tasks keep the MLflow store and endpoints in the run's workdir
        environment = {
            "PYTHONUNBUFFERED": "1",
            "NB2PIPE_FAST_EXIT": "1",
            "NB2PIPE_STORE": str(self.workdir),
            # a step waiting for its inputs gives up once this process is gone
            "NB2PIPE_RUNNER_PID": str(os.getpid()),
        }
        if early:
            environment[WAIT_FOR_INPUTS_ENV] = "1"
        if self.keep_variables:
            environment["NB2PIPE_VARIABLES_DIR"] = str(run_dir / "variables")
        if self.tracking_uri and not os.environ.get(TRACKING_ENV, "").strip():
            environment[TRACKING_ENV] = self.tracking_uri
        launch = TaskLaunch(
            task=name,
            component_name=node.component_name,
            component_spec=component,
            executor_spec=executor,
            arguments=arguments,
            pipeline_root=str(self.runs_dir),
            run_id=run.run_id,
            workdir=str(self.notebook.parent),
            log_path=str(task_dir / "step.log"),
            result_path=str(task_dir / "nb2pipe-task.json"),
            environment=environment,
        )
        process = TaskProcess(launch, self._warm_context(name, executor))
        process.start()
        step = run.steps[name]
        step.started, step.finished, step.error, step.waiting = time.time(), None, None, early
        self._mark(run, run_dir, name, states.RUNNING)
        return process

    def _warm_context(self, name: str, executor: Any) -> Any:
        """The fork server to start task ``name`` from, or None: it starts cold."""
        return None if self._server is None else self._server.context_for(name, executor, self._say)

    def _say(self, message: str) -> None:
        if self.say is not None:
            self.say(message)

    def _collect(self, run: RunState, run_dir: Path, name: str, code: int) -> None:
        step = run.steps[name]
        finished = step.finished = time.time()
        if step.waiting:  # it finished in the same pass its inputs appeared
            started = step.started or finished
            parents = [run.steps[parent].finished or started for parent in self.nodes[name].upstream]
            step.started, step.waiting = max([started, *parents]), False
        task_dir = run_dir / name
        result = read_result(str(task_dir / "nb2pipe-task.json"))
        report = task_dir / REPORT_OUTPUT
        if report.is_file():
            shutil.copyfile(report, task_dir / "report.html")
        # A step that ends without its outputs failed, whatever its exit code: sys.exit(0) in
        # the component, os._exit, a killed process. Its children must not wait for them.
        missing = self._missing_outputs(name, result)
        if code == 0 and result and result["status"] == states.SUCCEEDED and not missing:
            step.outputs = result["outputs"]
            self._mark(run, run_dir, name, states.SUCCEEDED)
        else:
            self._fail(run, run_dir, name, failure_from_log(step.step, task_dir / "step.log", missing))

    def _missing_outputs(self, name: str, result: dict[str, Any] | None) -> list[str]:
        """The component's declared outputs the task did not write: a parameter without a
        value; an artifact with neither a file at its path nor metadata (a Metrics artifact
        or a deployment record may be metadata alone)."""
        component = self.spec.components[self.nodes[name].component_name]
        recorded = (result or {}).get("outputs", {})
        missing = [output for output in component.output_definitions.parameters if output not in recorded]
        for output in component.output_definitions.artifacts:
            record = recorded.get(output)
            uri = (record or {}).get("uri")
            if record is None or not (record.get("metadata") or (uri and Path(uri).exists())):
                missing.append(output)
        return sorted(missing)

    def _fail(self, run: RunState, run_dir: Path, name: str, failure: StepFailure) -> None:
        step = run.steps[name]
        step.finished = step.finished or time.time()
        step.error = failure.to_json()
        self._mark(run, run_dir, name, states.FAILED)

    def _mark(self, run: RunState, run_dir: Path, name: str, status: str) -> None:
        step = run.steps[name]
        step.status = status
        run.save(run_dir)
        self.observer.on_step(run, step)

    def _result(self, run: RunState, run_dir: Path) -> RunResult:
        metrics: dict[str, Any] = {}
        failures = []
        models, endpoints = [], []
        for name in self.order:
            step = run.steps[name]
            for output_name, output in sorted(step.outputs.items()):
                if output.get("schema_title") == METRICS_SCHEMA:
                    metrics.update(output.get("metadata", {}))
                elif output_name == REGISTERED_OUTPUT:
                    models.append(output.get("metadata", {}))
                elif output_name == DEPLOYMENT_OUTPUT:
                    endpoints.append(deployment_record(output.get("metadata", {})))
            if step.error:
                failures.append(StepFailure(**step.error))
        steps = tuple(run.steps[name] for name in self.order)
        return RunResult(
            run.run_id, run.status, run_dir, steps, metrics, tuple(failures), tuple(models), tuple(endpoints)
        )


def _topological(nodes: Mapping[str, TaskNode]) -> list[str]:
    return topological_order(list(nodes), {name: node.upstream for name, node in nodes.items()})


def run_notebook(
    notebook: str | Path,
    *,
    parameters: Sequence[str] = (),
    workdir: str | Path | None = None,
    resume: str | None = None,
    keep_variables: bool = False,
    parallel: int | None = None,
    observer: RunObserver | None = None,
    run_id: str | None = None,
    package_index: PackageIndex | None = None,
    verbose: bool = False,
) -> RunResult:
    """Compile ``notebook`` and run it on kfp.local; ``resume`` finishes an earlier run.
    ``run_id`` names a new run (an id that exists is refused) instead of one made of the
    pipeline's name and the time, so a caller that starts the run knows where it will be kept.
    ``package_index``: where steps install missing packages from (see :func:`nb2pipe.compiler.plan_source`)."""

    if resume and parameters:
        raise Nb2PipeError("--param cannot change a resumed run; it keeps the parameters it started with")
    if resume and run_id:
        raise Nb2PipeError("--run-id names a new run; --resume continues the run it names")
    path = Path(notebook).resolve()
    with early_server(path.parent) as server:  # it imports the steps' modules while this process compiles
        text = read_notebook_text(path)
        if server is not None:
            server.send_modules(notebook_modules(text, str(path)), more_to_come=True)
        compiled = compile_source(text, str(path), package_index=package_index)
        modules = prelude_modules(compiled.plan)
        if server is not None:
            server.send_modules(modules)
        values = coerce_parameters(compiled.plan.parameters, parameters)
        local = LocalRun(
            notebook=path,
            pipeline_yaml=compiled.yaml,
            workdir=Path(workdir).resolve() if workdir else path.parent / ".nb2pipe",
            parameters=values,
            keep_variables=keep_variables,
            observer=observer or SilentObserver(),
            tracking_uri=compiled.plan.mlflow_tracking_uri,
            warm_modules=modules,
            warm_server=server,
            say=(lambda message: print(message, file=sys.stderr, flush=True)) if verbose else None,
        )
        if parallel:
            local.parallel = parallel
        return local.resume(resume) if resume else local.start(run_id)
