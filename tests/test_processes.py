"""nb2pipe.processes with real processes on 127.0.0.1: starting a group, waiting until it is
ready (or exits, or runs out of time), and stopping all of it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nb2pipe.errors import Nb2PipeError
from nb2pipe.processes import (
    ProcessError,
    free_port,
    http_ready,
    is_alive,
    port_is_free,
    spawn,
    stop_group,
    wait_until,
)

#: a grandchild that ignores SIGTERM, started by a leader that exits on it
GRANDCHILD = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1] + ".partial", "w") as out:
    out.write(str(os.getpid()))
os.replace(sys.argv[1] + ".partial", sys.argv[1])
while True:
    time.sleep(0.05)
"""
LEADER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
while True:
    time.sleep(0.05)
"""


def _wait_for_file(path: Path, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def _sleeper(tmp_path: Path, *, ignore_term: bool = False) -> subprocess.Popen[bytes]:
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('up', flush=True)\ntime.sleep(600)"
    process = spawn([sys.executable, "-c", code], log=tmp_path / "sleeper.log")
    _wait_for_file_text(tmp_path / "sleeper.log", "up")
    return process


def _wait_for_file_text(path: Path, text: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def test_a_group_with_a_grandchild_that_ignores_sigterm_is_killed_entirely(tmp_path: Path):
    pid_file = tmp_path / "grandchild.pid"
    leader = spawn([sys.executable, "-c", LEADER, GRANDCHILD, str(pid_file)], log=tmp_path / "leader.log")
    grandchild = int(_wait_for_file(pid_file))
    assert os.getpgid(grandchild) == leader.pid  # spawn gave the leader a group of its own
    began = time.monotonic()
    stop_group(leader, grace=1.0)
    elapsed = time.monotonic() - began
    assert leader.returncode == -signal.SIGTERM  # the leader exited on SIGTERM and was reaped
    assert not is_alive(grandchild)  # the grandchild got SIGKILL once the grace ran out
    assert 1.0 <= elapsed < 10


def test_a_leader_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path):
    process = _sleeper(tmp_path, ignore_term=True)
    began = time.monotonic()
    stop_group(process.pid, grace=0.5)  # by PID, as a recorded endpoint is stopped
    assert 0.5 <= time.monotonic() - began < 10
    assert not is_alive(process.pid)
    process.poll()  # reaped by stop_group already: the Popen learns it is done


def test_a_well_behaved_group_stops_without_waiting_out_the_grace(tmp_path: Path):
    process = _sleeper(tmp_path)
    began = time.monotonic()
    stop_group(process, grace=30)
    assert time.monotonic() - began < 10
    assert process.returncode == -signal.SIGTERM


def test_stopping_a_process_that_already_exited_is_fine(tmp_path: Path):
    process = spawn([sys.executable, "-c", "pass"], log=tmp_path / "quick.log")
    process.wait(30)
    stop_group(process, grace=5)
    stop_group(process.pid, grace=5)  # gone, and reaped already
    assert process.returncode == 0


def test_a_process_outside_a_group_of_its_own_is_signalled_alone(tmp_path: Path):
    # shares the test's process group: signalling that group would stop pytest too
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    assert os.getpgid(process.pid) == os.getpgrp()
    stop_group(process, grace=5)
    assert process.returncode == -signal.SIGTERM


def _task_in_own_group() -> None:
    # a fork inherits the test process's handlers: an earlier test may have set one for SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()
    time.sleep(600)


def test_a_multiprocessing_child_is_stopped_and_reaped():
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_task_in_own_group)
    child.start()
    deadline = time.monotonic() + 30
    while os.getpgid(child.pid or 0) != child.pid:  # until the child made its own group
        assert time.monotonic() < deadline
        time.sleep(0.02)
    stop_group(child, grace=5)
    assert child.exitcode == -signal.SIGTERM


def test_is_alive_sees_a_zombie_as_gone_and_reaps_our_own():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while is_alive(process.pid):
        assert time.monotonic() < deadline, "a process that exited still counts as alive"
        time.sleep(0.02)
    with pytest.raises(ChildProcessError):  # is_alive reaped it
        os.waitpid(process.pid, os.WNOHANG)
    process.poll()


def test_a_process_that_exits_early_fails_the_wait_with_its_log(tmp_path: Path):
    log = tmp_path / "early.log"
    code = "import sys\nfor n in range(30): print('line', n)\nprint('cannot start: no model'); sys.exit(3)"
    process = spawn([sys.executable, "-c", code], log=log)
    began = time.monotonic()
    with pytest.raises(ProcessError) as caught:
        wait_until(lambda: False, process, 60, "the toy server", log=log)
    assert time.monotonic() - began < 30
    message = str(caught.value)
    assert message.startswith("the toy server exited (3):\n")
    assert message.endswith("cannot start: no model")
    assert "line 29" in message and "line 10" not in message  # the end of the log only
    assert isinstance(caught.value, Nb2PipeError)


def test_the_deadline_is_honoured_and_the_process_stopped(tmp_path: Path):
    process = _sleeper(tmp_path)
    began = time.monotonic()
    with pytest.raises(ProcessError, match=r"^sleeper was not ready after 1 s; see .*sleeper\.log:\nup$"):
        wait_until(lambda: False, process, 1.0, "sleeper", log=tmp_path / "sleeper.log")
    assert 1.0 <= time.monotonic() - began < 15
    assert process.returncode is not None  # stopped before the error was raised


def test_the_wait_raises_the_callers_error(tmp_path: Path):
    class ServerError(Nb2PipeError):
        pass

    process = spawn([sys.executable, "-c", "raise SystemExit(2)"], log=tmp_path / "x.log")
    with pytest.raises(ServerError, match=r"^the server for 'x' exited \(2\)"):
        wait_until(lambda: False, process, 30, "the server for 'x'", log=tmp_path / "x.log", error=ServerError)


def test_http_ready_waits_for_a_real_server(tmp_path: Path):
    port = free_port()
    ready = http_ready(f"http://127.0.0.1:{port}/")
    assert not ready()  # nothing listens yet
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    process = spawn(command, log=tmp_path / "http.log")
    try:
        wait_until(ready, process, 60, "http.server", log=tmp_path / "http.log")
        assert http_ready(f"http://127.0.0.1:{port}/missing")() is False  # 404 is not ready
    finally:
        stop_group(process, grace=5)
    assert not ready()  # the server's whole group is gone: nothing listens any more


def test_free_port_returns_a_bindable_port():
    port = free_port("127.0.0.1")
    assert 0 < port < 65536
    assert port_is_free("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert not port_is_free("127.0.0.1", port)
