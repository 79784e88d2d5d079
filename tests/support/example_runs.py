"""Each example notebook run once per test session with ``nb2pipe run`` (kfp.local), shared
by the tests that check what such a run leaves: a run of the Keras examples costs a minute."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.lifecycle.endpoints import list_endpoints, stop_endpoint
from nb2pipe.runners.local import RunResult, run_notebook

ExampleRun = Callable[[Path], tuple[RunResult, Path]]


@pytest.fixture(scope="session")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """``example_run(path)`` -> (the run's result, its workdir), with the notebook's final
    variables kept; a local endpoint a deploy: step started is stopped right after the run."""
    done: dict[Path, tuple[RunResult, Path]] = {}

    def run(path: Path) -> tuple[RunResult, Path]:
        if path not in done:
            workdir = tmp_path_factory.mktemp(f"run-{path.stem}")
            try:
                result = run_notebook(path, workdir=workdir, keep_variables=True)
            finally:
                for endpoint in list_endpoints(workdir):
                    assert stop_endpoint(endpoint.service, workdir)
            done[path] = (result, workdir)
        return done[path]

    return run


def as_json(result: RunResult) -> dict[str, Any]:
    """What ``nb2pipe run --json`` prints for the run."""
    report = result.to_json()
    report["failures"] = [failure.to_json() for failure in result.failures]
    return report
