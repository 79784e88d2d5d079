"""Two runs at once: each gets a run id of its own (its folder is claimed with one ``mkdir``),
a new sqlite MLflow store is set up by one process at a time (MLflow's own set-up fails when
two race), and both runs register their version; ``--json`` reports an endpoint's pid as an
int."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from nb2pipe.errors import Nb2PipeError
from nb2pipe.lifecycle.endpoints import list_endpoints, read_endpoint, stop_endpoint
from nb2pipe.runners import local, run_folder
from nb2pipe.runners.local import run_notebook
from nb2pipe.runners.run_folder import create_run_folder, new_run_id
from nb2pipe.store.registry import STORE_ENV, TRACKING_ENV
from nb2pipe.store.store_lock import StoreLockError, exclusive_file_lock, lock_path, sqlite_database
from tests.support.lifecycle_notebooks import lifecycle_notebook
from tests.support.nbtools import code, notebook, write_notebook

#: far beyond what a run of these notebooks needs, short of a hang
RUN_LIMIT_S = 600
STAMP = "20240102-030405"


class _FrozenClock:
    """``datetime`` whose ``now()`` is always the same second."""

    @staticmethod
    def now() -> datetime:
        return datetime(2024, 1, 2, 3, 4, 5)


@pytest.fixture
def same_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_folder, "datetime", _FrozenClock)


def clean_environment() -> dict[str, str]:
    """Each run keeps its MLflow store in its own workdir, whatever the caller's shell set."""
    return {k: v for k, v in os.environ.items() if k not in (TRACKING_ENV, STORE_ENV)}


# -- run ids ----------------------------------------------------------------------------------


def test_runs_started_in_the_same_second_get_distinct_ids(tmp_path: Path, same_second: None):
    runs = tmp_path / "runs"
    first = create_run_folder(runs, "pipe")
    second = create_run_folder(runs, "pipe")
    assert (first.name, second.name) == (f"pipe-{STAMP}", f"pipe-{STAMP}-2")
    assert first.is_dir() and second.is_dir()
    assert new_run_id(runs, "pipe") == f"pipe-{STAMP}-3"  # the next suggestion skips both


def test_threads_claiming_run_folders_at_once_each_get_their_own(tmp_path: Path, same_second: None):
    runs, claimed, errors = tmp_path / "runs", [], []
    start = threading.Barrier(8)

    def claim() -> None:
        start.wait()
        try:
            claimed.append(create_run_folder(runs, "pipe").name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(claimed) == sorted({f"pipe-{STAMP}", *(f"pipe-{STAMP}-{n}" for n in range(2, 9))})


def test_an_id_taken_between_the_look_and_the_mkdir_is_not_an_error(
    tmp_path: Path, same_second: None, monkeypatch: pytest.MonkeyPatch
):
    """Another process makes the folder of the very id this one just picked: it takes the next."""
    runs = tmp_path / "runs"
    picked = []

    def racing_new_run_id(*arguments, **keywords) -> str:
        candidate = new_run_id(*arguments, **keywords)
        if not picked:
            (runs / candidate).mkdir(parents=True)  # the other process wins the race
        picked.append(candidate)
        return candidate

    monkeypatch.setattr(run_folder, "new_run_id", racing_new_run_id)
    run_dir = create_run_folder(runs, "pipe")
    assert picked == [f"pipe-{STAMP}", f"pipe-{STAMP}-2"]
    assert run_dir == runs / f"pipe-{STAMP}-2"


def test_a_chosen_run_id_that_exists_is_a_clear_error(tmp_path: Path):
    runs = tmp_path / "runs"
    assert create_run_folder(runs, "pipe", "mine").name == "mine"
    with pytest.raises(Nb2PipeError, match=r"run mine already exists in .*--resume"):
        create_run_folder(runs, "pipe", "mine")
    with pytest.raises(Nb2PipeError, match="letters, digits"):
        create_run_folder(runs, "pipe", "../outside")


@pytest.mark.slow
def test_the_cli_reports_an_existing_run_id_as_one_json_error(tmp_path: Path):
    nb = write_notebook(tmp_path, notebook(code("x = 1", "step:one")), "tiny.ipynb")
    (tmp_path / ".nb2pipe" / "runs" / "taken").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "run", str(nb), "--run-id", "taken", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment(),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["kind"] == "error" and "run taken already exists" in error["message"]
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_a_run_whose_id_is_taken_at_the_last_moment_starts_under_the_next(
    tmp_path: Path, same_second: None, monkeypatch: pytest.MonkeyPatch
):
    """The same notebook started twice in the same second: the second run to reach ``mkdir``
    runs as ``-2`` instead of failing."""
    nb = write_notebook(tmp_path, notebook(code("x = 1", "step:one"), code("x", "metrics")), "tiny.ipynb")
    runs = tmp_path / ".nb2pipe" / "runs"
    real = run_folder.new_run_id

    def racing_new_run_id(*arguments, **keywords) -> str:
        candidate = real(*arguments, **keywords)
        (runs / candidate).mkdir(parents=True, exist_ok=True)  # the other run wins the race once
        monkeypatch.setattr(run_folder, "new_run_id", real)
        return candidate

    monkeypatch.setattr(run_folder, "new_run_id", racing_new_run_id)
    monkeypatch.setattr(local, "new_run_id", racing_new_run_id, raising=False)  # where the runner once took it
    result = run_notebook(nb)
    assert result.status == "succeeded"
    assert result.run_id == f"tiny-{STAMP}-2"
    assert result.metrics == {"x": 1}


@pytest.mark.slow
def test_the_same_notebook_started_twice_at_once_runs_twice(tmp_path: Path):
    nb = write_notebook(tmp_path, notebook(code("x = 1", "step:one"), code("x", "metrics")), "tiny.ipynb")
    reports = run_at_once(tmp_path, [nb.name, "--json"], [nb.name, "--json"])
    assert [report["status"] for report in reports] == ["succeeded", "succeeded"]
    run_ids = {report["run_id"] for report in reports}
    assert len(run_ids) == 2
    assert {path.name for path in (tmp_path / ".nb2pipe" / "runs").iterdir()} == run_ids


# -- the store's set-up ---------------------------------------------------------------------


def test_the_lock_file_sits_next_to_a_sqlite_database_only(tmp_path: Path):
    database = sqlite_database(f"sqlite:///{tmp_path}/mlflow.db")
    assert database == tmp_path / "mlflow.db"
    assert lock_path(database) == tmp_path / "mlflow.db.lock"
    assert sqlite_database("http://127.0.0.1:5000") is None
    assert sqlite_database("postgresql://user@host/db") is None


def test_waiting_for_the_store_lock_ends_with_an_error_naming_the_lock_file(tmp_path: Path):
    path = tmp_path / "mlflow.db.lock"
    with path.open("a") as holder:  # another process's hold: flock locks open files, not processes
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(StoreLockError, match=re.escape(str(path))), exclusive_file_lock(path, seconds=0.3):
            pass
        assert time.monotonic() - started < 5
    with exclusive_file_lock(path, seconds=0.3):  # free again once the holder lets go
        pass


_OPEN_STORE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mlflow import MlflowClient
    from nb2pipe.store.registry import use_tracking
    Path(sys.argv[3]).touch()
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.01)
    use_tracking(sys.argv[1])
    client = MlflowClient()
    client.search_experiments()
    client.search_registered_models()
    """
)


@pytest.mark.slow
def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path):
    """The processes import MLflow, then all open the store at the same moment."""
    store, go = tmp_path / "store", tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(3)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_STORE, str(store), str(go), str(flag)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean_environment(),
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    outputs = [process.communicate(timeout=RUN_LIMIT_S)[0] for process in processes]
    codes = [process.returncode for process in processes]
    assert codes == [0, 0, 0], "\n\n".join(outputs)
    assert (store / "mlflow.db").is_file() and (store / "mlflow.db.lock").is_file()


@pytest.mark.slow
def test_two_runs_register_in_a_new_store_at_once(tmp_path: Path):
    """Both runs set up, log and register against the same brand-new sqlite store."""
    nb = write_notebook(tmp_path, lifecycle_notebook("register:iris", "promote:accuracy>="), "reg.ipynb")
    reports = run_at_once(tmp_path, [nb.name, "--json"], [nb.name, "--json"])
    failures = [report["failures"] for report in reports]
    assert [report["status"] for report in reports] == ["succeeded", "succeeded"], failures
    assert len({report["run_id"] for report in reports}) == 2
    versions = sorted(model["version"] for report in reports for model in report["models"])
    assert versions == ["1", "2"]

    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / '.nb2pipe' / 'mlflow.db'}"
    registered = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions("name='iris'")
    assert sorted(str(version.version) for version in registered) == ["1", "2"]


def run_at_once(folder: Path, *argument_lists: list[str]) -> list[dict]:
    """``nb2pipe run ARGUMENTS`` once for each list, all started together; their --json reports."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "nb2pipe", "run", *arguments],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_environment(),
        )
        for arguments in argument_lists
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=RUN_LIMIT_S)
        assert process.returncode == 0, out + err
        reports.append(json.loads(out))
    return reports


# -- the endpoint's pid -------------------------------------------------------------------------


@pytest.fixture
def served_folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for endpoint in list_endpoints(tmp_path / ".nb2pipe"):  # never leave a server behind
        stop_endpoint(endpoint.service, tmp_path / ".nb2pipe")


@pytest.mark.slow
def test_run_json_reports_the_endpoints_pid_as_an_int(served_folder: Path):
    nb = write_notebook(served_folder, lifecycle_notebook("register:iris", deploy_tags=("deploy:iris",)), "dep.ipynb")
    (report,) = run_at_once(served_folder, [nb.name, "--json"])
    (deployment,) = report["endpoints"]
    assert deployment["deployed"] is True
    assert type(deployment["pid"]) is int
    endpoint = read_endpoint("iris", served_folder / ".nb2pipe")
    assert endpoint is not None and deployment["pid"] == endpoint.pid
