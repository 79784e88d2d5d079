"""Retraining on drift, locally: run a notebook's monitoring pipeline once (``nb2pipe
retrain``, for cron or CI), or again and again in the foreground (``nb2pipe schedule
--local --every``). On a cluster the same pipeline is a KFP recurring run
(:func:`nb2pipe.runners.kubeflow.submit_notebook` with ``monitoring=True``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.compiler import compile_source, read_notebook_text
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DRIFT_REPORT_OUTPUT, FORCE_PARAMETER, PAYLOADS_PARAMETER, RETRAIN_OUTPUT
from nb2pipe.runners.local import LocalRun
from nb2pipe.runners.parameters import coerce_parameters
from nb2pipe.runners.progress import SilentObserver
from nb2pipe.runners.warm_modules import prelude_modules
from nb2pipe.store.logged_payloads import is_blob_url


@dataclass(frozen=True)
class RetrainOutcome:
    """One monitoring run: what the gate decided and what the run did about it."""

    run: Any  # nb2pipe.runners.local.RunResult
    gate: str
    retrain: bool | None
    drift_report: Path | None

    @property
    def status(self) -> str:
        return str(self.run.status)

    def to_json(self) -> dict[str, Any]:
        report = self.run.to_json()
        report.update(
            retrain=self.retrain, gate=self.gate, drift_report=str(self.drift_report) if self.drift_report else None
        )
        return report


def retrain_notebook(
    notebook: str | Path,
    *,
    payloads: str | Path | None = None,
    workdir: str | Path | None = None,
    force: bool = False,
    parameters: Sequence[str] = (),
    parallel: int | None = None,
    observer: Any = None,
) -> RetrainOutcome:
    """Compile ``notebook``'s monitoring pipeline and run it once on the local runner.

    The payload folder defaults to the one the notebook's ``deploy:SERVICE`` with ``monitor``
    writes in ``workdir``; ``payloads`` may also be KServe's payload log (an s3://, gs:// or
    abfs:// URL, or a local copy of its objects); ``force`` retrains whatever the drift test says.
    """

    path = Path(notebook).resolve()
    compiled = compile_source(read_notebook_text(path), str(path), monitoring=True)
    reserved = {PAYLOADS_PARAMETER, FORCE_PARAMETER}
    if any(item.split("=", 1)[0] in reserved for item in parameters):
        raise Nb2PipeError(f"set {' and '.join(sorted(reserved))} with --payloads and --force, not --param")
    values = coerce_parameters(compiled.plan.parameters, list(parameters))
    if payloads is not None and is_blob_url(payloads):
        values[PAYLOADS_PARAMETER] = str(payloads)
    elif payloads is not None and not Path(payloads).is_dir():
        raise Nb2PipeError(
            f"--payloads {payloads}: no such folder; give the folder nb2pipe serve --log-payloads wrote, or the "
            "s3://, gs:// or abfs:// prefix KServe's logger writes to"
        )
    else:
        values[PAYLOADS_PARAMETER] = str(Path(payloads).resolve()) if payloads is not None else ""
    values[FORCE_PARAMETER] = bool(force)
    local = LocalRun(
        notebook=path,
        pipeline_yaml=compiled.yaml,
        workdir=Path(workdir).resolve() if workdir else path.parent / ".nb2pipe",
        parameters=values,
        observer=observer or SilentObserver(),
        warm_modules=prelude_modules(compiled.plan),
    )
    if parallel:
        local.parallel = parallel
    result = local.start()
    gate = compiled.plan.gate
    assert gate is not None
    return RetrainOutcome(result, gate.task, _gate_verdict(result, gate.task), _report(result.run_dir, gate.task))


def _gate_verdict(result: Any, gate: str) -> bool | None:
    for step in result.steps:
        if step.task == gate:
            value = step.outputs.get(RETRAIN_OUTPUT, {})
            return bool(value["value"]) if isinstance(value, Mapping) and "value" in value else None
    return None


def _report(run_dir: Path, gate: str) -> Path | None:
    found = run_dir / gate / DRIFT_REPORT_OUTPUT
    return found if found.is_file() else None


def retrain_every(
    notebook: str | Path,
    every_seconds: float,
    *,
    on_outcome: Callable[[RetrainOutcome], None],
    runs: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    **options: Any,
) -> int:
    """Run the monitoring pipeline every ``every_seconds`` (measured start to start) until
    interrupted, or ``runs`` times; a failed run is reported and the schedule goes on, like a
    recurring run's. Returns how many runs were made."""
    if every_seconds <= 0:
        raise Nb2PipeError("the interval must be positive, e.g. --every 1h")
    made = 0
    while runs is None or made < runs:
        started = clock()
        on_outcome(retrain_notebook(notebook, **options))
        made += 1
        if runs is not None and made >= runs:
            break
        sleep(max(0.0, every_seconds - (clock() - started)))
    return made
