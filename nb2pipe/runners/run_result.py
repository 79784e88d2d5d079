"""What ``nb2pipe run`` hands back: a run's outcome, and the error of a run that was stopped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.runners.failures import StepFailure
from nb2pipe.runners.state import StepState


class RunInterrupted(Nb2PipeError):
    exit_code = 130


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: str
    run_dir: Path
    steps: tuple[StepState, ...]
    metrics: Mapping[str, Any]
    failures: tuple[StepFailure, ...] = ()
    #: metadata of the models the run registered and of the services it deployed
    models: tuple[Mapping[str, Any], ...] = ()
    endpoints: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "steps": [
                {"name": s.step, "status": s.status, "seconds": s.seconds, "reused": s.reused} for s in self.steps
            ],
            "metrics": dict(self.metrics),
            "outputs_dir": str(self.run_dir),
            "models": [dict(m) for m in self.models],
            "endpoints": [dict(e) for e in self.endpoints],
        }


def deployment_record(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A deploy task's outcome with its server's ``pid`` an int again: KFP hands artifact
    metadata over as a protobuf Struct, whose numbers are all floats."""
    record = dict(metadata)
    pid = record.get("pid")
    if isinstance(pid, float) and pid.is_integer():
        record["pid"] = int(pid)
    return record
