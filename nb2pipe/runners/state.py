"""A local run's record on disk (``DIR/runs/RUN_ID/run.json``): enough to report on it
and to resume it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import write_all_or_nothing

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, INTERRUPTED = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "interrupted",
)
#: inside a dsl.If whose condition was false: not run, and not a failure
NOT_RUN = "not run"
FINISHED = frozenset({SUCCEEDED, FAILED, SKIPPED, INTERRUPTED, NOT_RUN})
STATE_FILE = "run.json"


@dataclass
class StepState:
    task: str
    step: str
    status: str = PENDING
    started: float | None = None
    finished: float | None = None
    fingerprint: str = ""
    reused: bool = False
    #: started before its inputs exist; its time counts from when they do
    waiting: bool = False
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return round(self.finished - self.started, 3)


@dataclass
class RunState:
    run_id: str
    notebook: str
    pipeline: str
    parameters: dict[str, Any]
    status: str = RUNNING
    steps: dict[str, StepState] = field(default_factory=dict)

    def save(self, run_dir: Path) -> None:
        """Write atomically: an interrupted write never leaves a broken record, and a link
        planted at the temporary or the record's name is never written through."""
        write_all_or_nothing({run_dir / STATE_FILE: json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"})

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        path = run_dir / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise Nb2PipeError(f"no run record at {path}; check the run id and --workdir") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Nb2PipeError(f"{path} is damaged ({exc}); start a new run instead of resuming") from None
        steps = {name: StepState(**step) for name, step in data.pop("steps").items()}
        return cls(**data, steps=steps)
