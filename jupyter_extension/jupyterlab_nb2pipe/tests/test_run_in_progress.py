"""POST /nb2pipe/runs while a run of the same notebook is going answers 409 naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Fetch

import nb2pipe.editor.runs as runs_module
from nb2pipe.processes import spawn, stop_group


async def test_a_second_run_of_a_running_notebook_is_409(
    root: Path, fetch: Fetch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[subprocess.Popen[bytes]] = []
    stop = tmp_path / "stop"

    def stand_in(command: list[str], *, log: Path, **_: object) -> subprocess.Popen[bytes]:
        """A run's process that lives until ``stop`` appears."""
        wait = f"import os, time\nwhile not os.path.exists({str(stop)!r}): time.sleep(0.05)"
        spawned.append(spawn([sys.executable, "-c", wait], log=log))
        return spawned[-1]

    monkeypatch.setattr(runs_module, "spawn", stand_in)
    try:
        status, first = await fetch("POST", "nb2pipe/runs", {"path": "parameters_metrics.ipynb"})
        assert status == 202
        status, reply = await fetch("POST", "nb2pipe/runs", {"path": "parameters_metrics.ipynb"})
        assert status == 409 and reply["run_id"] == first["run_id"] and reply["diagnostics"] == []
        assert f"run {first['run_id']} of parameters_metrics.ipynb is still running" in reply["message"]
        stop.touch()
        spawned[0].wait(10)
        status, again = await fetch("POST", "nb2pipe/runs", {"path": "parameters_metrics.ipynb"})
        assert status == 202 and again["run_id"] != first["run_id"]
    finally:
        stop.touch()
        for process in spawned:
            stop_group(process)
