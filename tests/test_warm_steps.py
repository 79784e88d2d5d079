"""Warm steps (nb2pipe/runners/warm.py): forked from a per-run server that imported the prelude,
the executor in the step's own process; the same outputs as cold, refused preloads, gpu: steps
cold, Ctrl-C and the runner's death still stop a step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nb2pipe.runners.local import run_notebook
from nb2pipe.runners.state import RunState
from tests.support.nbtools import code, notebook, write_notebook

#: what a step's first line records: whether it runs in the warm path (nb2pipe's warm module
#: is imported in the step's process only there) and its process id
PROBE = (
    "import json as _json, os as _os, sys as _sys\n"
    "open('probe-{step}.json', 'w').write(_json.dumps("
    "{{'warm': 'nb2pipe.runners.warm' in _sys.modules, 'pid': _os.getpid()}}))\n"
)


def probe(folder: Path, step: str) -> dict:
    return json.loads((folder / f"probe-{step}.json").read_text())


def two_step_notebook(folder: Path, imports: str = "import statistics", gpu: bool = False) -> Path:
    nb = notebook(
        code(imports, "imports"),
        code(PROBE.format(step="make") + "values = [3, 1, 4, 1, 5, 9, 2, 6]", "step:make"),
        code(
            PROBE.format(step="use") + "middle = statistics.median(values)\nspread = max(values) - min(values)",
            "step:use",
            *(["gpu:1"] if gpu else []),
        ),
        code("middle\nspread", "metrics"),
    )
    return write_notebook(folder, nb, "warm.ipynb")


def importable_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> None:
    """``import name`` works here, in the fork server and in every step (outside the notebook's folder)."""
    library = tmp_path / "lib"
    library.mkdir()
    (library / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(library))  # the fork server starts with this process's sys.path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(library), os.environ.get("PYTHONPATH", "")]))


@pytest.mark.slow
def test_warm_and_cold_runs_give_the_same_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = two_step_notebook(tmp_path)
    warm = run_notebook(path, workdir=tmp_path / "warm")
    warm_probe = probe(tmp_path, "use")
    monkeypatch.setenv("NB2PIPE_WARM", "0")
    cold = run_notebook(path, workdir=tmp_path / "cold")
    cold_probe = probe(tmp_path, "use")
    assert warm.status == cold.status == "succeeded"
    assert warm_probe["warm"] and not cold_probe["warm"]
    assert warm.metrics == cold.metrics == {"middle": 3.5, "spread": 8.0}
    warm_state, cold_state = (RunState.load(r.run_dir) for r in (warm, cold))
    for step in ("make", "use"):
        assert set(warm_state.steps[step].outputs) == set(cold_state.steps[step].outputs)
    assert "values" in warm_state.steps["make"].outputs


@pytest.mark.slow
def test_a_module_that_starts_a_thread_is_not_preloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    importable_module(
        tmp_path,
        monkeypatch,
        "threadstarter",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\nFACTOR = 3\n",
    )
    folder = tmp_path / "nb"
    folder.mkdir()
    nb = notebook(
        code("import threadstarter\nimport statistics", "imports"),
        code(PROBE.format(step="only") + "scaled = threadstarter.FACTOR * statistics.mean([1, 2, 3])", "step:only"),
        code("scaled", "metrics"),
    )
    result = run_notebook(write_notebook(folder, nb, "threads.ipynb"), workdir=tmp_path / "w", verbose=True)
    said = capsys.readouterr().err
    assert result.status == "succeeded" and result.metrics == {"scaled": 6.0}
    assert "skipped threadstarter: starts a thread at import" in said
    assert "statistics" in said.split("preloaded")[-1].splitlines()[0]
    assert probe(folder, "only")["warm"]  # the server without it still serves the step


@pytest.mark.slow
def test_runs_at_once_in_one_process_share_nothing_and_both_succeed(tmp_path: Path):
    """multiprocessing keeps one fork server per process: a second run while the first holds
    it starts its steps cold instead of stopping the first run's server under it."""
    import threading

    first_folder, second_folder = tmp_path / "first", tmp_path / "second"
    first_folder.mkdir()
    second_folder.mkdir()
    flag = first_folder / "go.flag"
    slow = notebook(
        code("import os\nimport time\nimport statistics", "imports"),
        code(
            PROBE.format(step="hold") + "while not os.path.exists('go.flag'):\n    time.sleep(0.05)\nv = [1, 2]",
            "step:hold",
        ),
        code(PROBE.format(step="after") + "mean = statistics.mean(v)", "step:after"),
        code("mean", "metrics"),
    )
    first_path = write_notebook(first_folder, slow, "slow.ipynb")
    results = {}
    runner = threading.Thread(target=lambda: results.update(first=run_notebook(first_path, workdir=tmp_path / "w1")))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not (first_folder / "probe-hold.json").exists():
            assert time.monotonic() < deadline, "the first run's step never started"
            time.sleep(0.05)
        second = run_notebook(two_step_notebook(second_folder), workdir=tmp_path / "w2")
    finally:
        flag.write_text("go")
        runner.join(timeout=120)
    assert second.status == "succeeded" and second.metrics == {"middle": 3.5, "spread": 8.0}
    assert not probe(second_folder, "use")["warm"]  # the first run held the server: cold, not broken
    first = results["first"]
    assert first.status == "succeeded" and first.metrics == {"mean": 1.5}
    assert probe(first_folder, "hold")["warm"] and probe(first_folder, "after")["warm"]
    again = run_notebook(two_step_notebook(second_folder), workdir=tmp_path / "w3")
    assert again.status == "succeeded" and probe(second_folder, "use")["warm"]  # released when the first ended


@pytest.mark.slow
def test_warm_steps_draw_their_own_random_numbers(tmp_path: Path):
    """As cold steps do, each from a new interpreter: NumPy's global generator is not reseeded by a fork."""
    draws = "[np.random.rand(3).tolist(), random.random()]"
    draw = f"open('draws-{{step}}.json', 'w').write(json.dumps({draws}))\n{{step}}_done = 1"
    nb = notebook(
        code("import json\nimport random\nimport numpy as np", "imports"),
        code(PROBE.format(step="left") + draw.format(step="left"), "step:left"),
        code(PROBE.format(step="right") + draw.format(step="right"), "step:right"),
    )
    result = run_notebook(write_notebook(tmp_path, nb, "draws.ipynb"), workdir=tmp_path / "w")
    assert result.status == "succeeded"
    assert probe(tmp_path, "left")["warm"] and probe(tmp_path, "right")["warm"]
    left, right = (json.loads((tmp_path / f"draws-{step}.json").read_text()) for step in ("left", "right"))
    assert left[0] != right[0] and left[1] != right[1]


def _noisy_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A notebook whose prelude imports a module that prints on both streams at import."""
    importable_module(
        tmp_path,
        monkeypatch,
        "noisylib",
        "import sys\nprint('NOISE on stdout')\nprint('NOISE on stderr', file=sys.stderr)\nVALUE = 2\n",
    )
    folder = tmp_path / "nb"
    folder.mkdir()
    nb = notebook(
        code("import noisylib", "imports"),
        code(PROBE.format(step="one") + "x = noisylib.VALUE * 3", "step:one"),
        code("x", "metrics"),
    )
    return write_notebook(folder, nb, "noisy.ipynb")


@pytest.mark.slow
def test_what_a_preloaded_import_prints_stays_out_of_the_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = _noisy_notebook(tmp_path, monkeypatch)
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "run", str(path), "--json", "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where the early server's report and log go
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics"] == {"x": 6.0}  # one JSON object, nothing else
    assert "NOISE" not in done.stderr
    assert probe(path.parent, "one")["warm"]
    assert not list(tmp_path.glob("warm-*")), "the server's report and log are removed"


@pytest.mark.slow
@pytest.mark.parametrize("thread", [False, True], ids=["forked-server", "new-interpreter-server"])
def test_a_script_without_a_main_guard_runs_warm_and_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread: bool
):
    """multiprocessing re-runs a script's top level in each child it starts: a warm step must not
    (the script would start a run in every step), and the server's imports print nowhere."""
    path = _noisy_notebook(tmp_path, monkeypatch)
    script = tmp_path / "run_it.py"
    script.write_text(
        "import json, threading, time\n"
        "from nb2pipe.runners.local import run_notebook\n"
        + ("threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n" if thread else "")
        + f"result = run_notebook({str(path)!r}, workdir={str(tmp_path / 'w')!r})\n"
        "print(json.dumps({'status': result.status, 'metrics': dict(result.metrics)}))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"status": "succeeded", "metrics": {"x": 6.0}}
    assert "NOISE" not in done.stderr
    assert probe(path.parent, "one")["warm"]
    assert len(list((tmp_path / "w" / "runs").iterdir())) == 1  # one run, not one more per step


@pytest.mark.slow
@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_a_steps_exit_handlers_run_and_its_runners_do_not(tmp_path: Path, warm: bool):
    """As at the end of a step's own interpreter (an MLflow run ended, a W&B run synced): the
    handlers the step registers run; those of the runner a warm step was forked from do not."""
    marker = tmp_path / "runner-exits.txt"
    nb = notebook(
        code("import atexit", "imports"),
        code("atexit.register(lambda: open('first-exited', 'w').write('1'))\nvalue = 1", "step:first"),
        code("atexit.register(lambda: open('second-exited', 'w').write('1'))\ntotal = value + 1", "step:second"),
        code("total", "metrics"),
    )
    path = write_notebook(tmp_path, nb, "exits.ipynb")
    script = tmp_path / "run_it.py"
    script.write_text(
        "import atexit, json\n"
        "from nb2pipe.runners.local import run_notebook\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'a').write('x'))\n"
        f"result = run_notebook({str(path)!r}, workdir={str(tmp_path / 'w')!r})\n"
        "print(json.dumps(dict(result.metrics)))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NB2PIPE_WARM": "1" if warm else "0"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"total": 2.0}
    assert (tmp_path / "first-exited").read_text() == (tmp_path / "second-exited").read_text() == "1"
    assert marker.read_text() == "x"  # the runner's own handler, once, at its own end


@pytest.mark.slow
def test_a_gpu_step_starts_cold(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = two_step_notebook(tmp_path, gpu=True)
    result = run_notebook(path, workdir=tmp_path / "w", verbose=True)
    said = capsys.readouterr().err
    assert result.status == "succeeded"
    assert probe(tmp_path, "make")["warm"] and not probe(tmp_path, "use")["warm"]
    assert "use starts cold: it asks for an accelerator" in said


def _slow_notebook(folder: Path) -> Path:
    (folder / "slow.flag").write_text("on")
    nb = notebook(
        code("import os\nimport time", "imports"),
        code(
            PROBE.format(step="slow") + "while os.path.exists('slow.flag'):\n    time.sleep(0.05)\ndone = 1",
            "step:slow",
        ),
        code("print(done)", "step:after"),
    )
    return write_notebook(folder, nb, "slow.ipynb")


def _start_and_wait_for_step(folder: Path, path: Path) -> tuple[subprocess.Popen[str], int]:
    runner = subprocess.Popen(
        [sys.executable, "-m", "nb2pipe", "run", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (folder / "probe-slow.json").exists():
        time.sleep(0.1)
    time.sleep(0.3)  # the probe file is written: its content follows at once
    found = probe(folder, "slow")
    assert found["warm"], "the slow step did not start warm"
    return runner, found["pid"]


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return True  # ended, its parent (the fork server) is about to reap it
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_ctrl_c_stops_a_warm_step(tmp_path: Path):
    path = _slow_notebook(tmp_path)
    runner, step_pid = _start_and_wait_for_step(tmp_path, path)
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=30)
    assert runner.returncode == 130 and "--resume" in err
    assert _gone_within(step_pid, 5)
    state = RunState.load(next((tmp_path / ".nb2pipe" / "runs").iterdir()))
    assert state.steps["slow"].status == "interrupted"


@pytest.mark.slow
def test_a_warm_step_ends_with_its_runner(tmp_path: Path):
    path = _slow_notebook(tmp_path)
    runner, step_pid = _start_and_wait_for_step(tmp_path, path)
    runner.kill()  # SIGKILL: nothing of the runner's own clean-up runs
    runner.communicate(timeout=30)
    try:
        assert _gone_within(step_pid, 10)
    finally:
        (tmp_path / "slow.flag").unlink()


def _compiled_command(packages: list[str]) -> list[str]:
    import kfp

    from nb2pipe.emit.kfp import install_script, launch_script

    def here(text: str) -> str:  # as kfp.local's replace_python_executable leaves it
        return text.replace("python3", sys.executable)

    script = here(install_script(packages, kfp.__version__))
    return ["sh", "-c", script, "sh", "-ec", here(launch_script()), "def f(): pass", "--executor_input", "{}"]


@pytest.mark.parametrize(
    ("packages", "present"), [([], True), (["pytest"], True), (["surely-not-installed-nb2pipe==1.0"], False)]
)
def test_the_package_checks_are_run_in_process(packages: list[str], present: bool):
    from nb2pipe.runners.warm_step import _compiled_parts, _packages_present

    parts = _compiled_parts(_compiled_command(packages))
    assert parts is not None and parts[1] == "def f(): pass"
    assert _packages_present(parts[0]) is present


def test_a_command_of_another_shape_or_with_packages_to_install_runs_cold():
    from nb2pipe.runners.warm_step import run_command_here

    calls: list[list[str]] = []

    def cold(full_command: list[str], env_vars: dict[str, str] | None) -> int:
        calls.append(full_command)
        return 7

    missing = _compiled_command(["surely-not-installed-nb2pipe==1.0"])
    other = _compiled_command([])
    other[5] = other[5].replace("executor_main", "executor_main --extra")
    assert run_command_here(missing, {}, cold) == 7 and run_command_here(other, {}, cold) == 7
    assert calls == [missing, other]


#: run in a fresh interpreter: pytest's own process has native threads (BLAS), so no server is forked from it
FORK_PROBE = """
import json, os, sys, time
from pathlib import Path
from nb2pipe.runners import warm
folder = Path(sys.argv[1])
server = warm.WarmServer((), folder)
forked = server.fork_here()
pid = warm._server()._forkserver_pid
stat = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()
same_command = Path(f"/proc/{pid}/cmdline").read_bytes() == Path("/proc/self/cmdline").read_bytes()
server.send_modules(["fractions"], more_to_come=True)  # read from the notebook before the compile
server.send_modules(["fractions", "torch", "statistics"])  # the compile's list: only what is new goes
ready = server.ready()
summary = server.summary()
server.close()
print(json.dumps({"modules": list(server.modules),
                  "forked": forked, "parent": int(stat[1]) == os.getpid(), "same_command": same_command,
                  "ready": ready, "loaded": server.loaded, "skipped": server.skipped, "summary": summary,
                  "pid": pid, "after": warm._server()._forkserver_pid}))
"""

COMPILE_FAILS = """
import json, sys, time
from pathlib import Path
from nb2pipe.errors import Nb2PipeError
from nb2pipe.runners import warm
from nb2pipe.runners.local import run_notebook
started = []
fork_here = warm.WarmServer.fork_here
def recorded(self):
    forked = fork_here(self)
    started.append(warm._server()._forkserver_pid)
    return forked
warm.WarmServer.fork_here = recorded
begun = time.monotonic()
try:
    run_notebook(sys.argv[1], workdir=Path(sys.argv[1]).parent / "w")
    error = ""
except Nb2PipeError as exc:
    error = str(exc)
print(json.dumps({"started": started, "error": error, "seconds": time.monotonic() - begun,
                  "after": warm._server()._forkserver_pid}))
"""


def _fresh_python(script: str, *arguments: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", script, *arguments], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_server_is_forked_from_the_runner_and_takes_its_modules_after_the_compile(tmp_path: Path):
    found = _fresh_python(FORK_PROBE, str(tmp_path))
    # a fork of the runner (its child, the same command line), not a new interpreter
    assert found["forked"] and found["parent"] and found["same_command"]
    assert found["ready"]
    assert {"kfp.local", "nb2pipe.runtime.step", "fractions", "statistics"} <= set(found["loaded"])
    assert found["modules"] == ["fractions", "torch", "statistics"]
    assert "torch" in found["skipped"] and "torch" not in found["loaded"]
    assert "forked from the runner" in found["summary"]
    assert found["after"] is None and _gone_within(found["pid"], 5)


def test_the_notebooks_imports_are_read_before_the_compile(tmp_path: Path):
    from nb2pipe.runners.warm_modules import notebook_modules

    nb = notebook(
        code("import numpy as np\nfrom sklearn.model_selection import train_test_split", "imports"),
        code("%pip install fractions-extra\nimport fractions\nvalues = [1]", "step:make"),
        code("from sklearn.ensemble import RandomForestClassifier\nfrom . import local_helper", "step:fit"),
        code("import heavy_plotting_library", "skip"),
        code("def broken(:\n    import never_read", "step:broken"),
    )
    text = write_notebook(tmp_path, nb, "imports.ipynb").read_text()
    assert notebook_modules(text, "imports.ipynb") == (
        "numpy",
        "sklearn.model_selection",
        "sklearn.model_selection.train_test_split",
        "fractions",
        "sklearn.ensemble",
        "sklearn.ensemble.RandomForestClassifier",
    )
    assert notebook_modules("{not json", "broken.ipynb") == ()  # the compile says what is wrong


@pytest.mark.parametrize(
    "setting",
    [
        "os.environ['OMP_NUM_THREADS'] = '1'",
        "os.environ.update(OMP_NUM_THREADS='1')",
        "os.environ.setdefault('KERAS_BACKEND', 'torch')",
        "environ['OMP_NUM_THREADS'] = '1'",
        "os.putenv('OMP_NUM_THREADS', '1')",
        "del os.environ['OMP_NUM_THREADS']",
    ],
)
def test_modules_imported_after_the_notebook_sets_the_environment_are_left_to_the_step(setting: str):
    import ast

    from nb2pipe.runners.warm_modules import imported_modules

    cells = [
        f"import os\nfrom os import environ\nimport json\nimport scipy\n{setting}\nimport numpy as np\nimport scipy",
        "from sklearn.linear_model import LogisticRegression\nimport pandas.io",
    ]
    found = imported_modules([ast.parse(cell) for cell in cells], first=("os", "numpy", "sklearn", "scipy", "pandas"))
    # imported before the setting (scipy again after it: already loaded then, as in the notebook)
    assert found == ("os", "scipy", "os.environ", "json")


def test_a_notebook_that_sets_no_environment_has_all_its_imports_preloaded():
    import ast

    from nb2pipe.runners.warm_modules import imported_modules

    cells = ["import os\nprint(os.environ.get('HOME'))\nimport numpy", "from sklearn import tree"]
    assert imported_modules([ast.parse(cell) for cell in cells]) == ("os", "numpy", "sklearn", "sklearn.tree")


@pytest.mark.slow
def test_a_step_with_env_variables_starts_cold(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    nb = notebook(
        code("import statistics", "imports"),
        code(PROBE.format(step="plain") + "values = [1, 2, 3]", "step:plain"),
        code(PROBE.format(step="tuned") + "middle = statistics.median(values)", "step:tuned", "env:OMP_NUM_THREADS=1"),
        code("middle", "metrics"),
    )
    result = run_notebook(write_notebook(tmp_path, nb, "env.ipynb"), workdir=tmp_path / "w", verbose=True)
    said = capsys.readouterr().err
    assert result.status == "succeeded" and result.metrics == {"middle": 2.0}
    assert probe(tmp_path, "plain")["warm"] and not probe(tmp_path, "tuned")["warm"]
    assert "tuned starts cold: it sets OMP_NUM_THREADS" in said


def test_a_run_whose_compile_fails_ends_its_early_server(tmp_path: Path):
    path = write_notebook(tmp_path, notebook(code("x = 1", "stpe:first")), "broken.ipynb")
    found = _fresh_python(COMPILE_FAILS, str(path))
    assert found["error"] and len(found["started"]) == 1 and found["started"][0] is not None
    assert found["after"] is None and _gone_within(found["started"][0], 5)
    assert found["seconds"] < 20


def test_no_server_is_forked_while_the_runner_has_a_thread(tmp_path: Path):
    import threading

    from nb2pipe.runners.warm import WarmServer, _server

    stop = threading.Event()
    waiter = threading.Thread(target=stop.wait, daemon=True)
    waiter.start()
    try:
        assert not WarmServer((), tmp_path).fork_here()
        assert _server()._forkserver_pid is None
    finally:
        stop.set()
        waiter.join()
