"""Background processes: start one in a process group of its own, wait until it is ready,
stop its whole group. Servers (``nb2pipe serve`` endpoints, ``nb2pipe profile``'s variants,
the benchmarks' servers), background runs and pipeline tasks all go through here.

One stop policy everywhere (:func:`stop_group`): SIGTERM to the group, up to ``grace``
seconds for every member to exit, then SIGKILL to what is left (grandchildren included),
and the leader is reaped when it is our own child. Waiting (:func:`wait_until`) never lasts
for ever: it ends when the process exits or the deadline passes, with an error that names
what failed and quotes the end of its log. Standard library only.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

from nb2pipe.errors import Nb2PipeError

#: seconds between two readiness probes
POLL_SECONDS = 0.2
#: seconds between two looks at a group being stopped
_STOP_POLL_SECONDS = 0.1
#: log lines quoted when a wait fails
LOG_LINES = 15
#: seconds a killed group has to vanish (only a process stuck in the kernel takes longer)
KILLED_WITHIN_S = 5.0

#: what :func:`stop_group` accepts: a PID, a :class:`subprocess.Popen`, a multiprocessing process
Stoppable = int | subprocess.Popen[bytes] | BaseProcess


class ProcessError(Nb2PipeError):
    """A background process did not start, get ready, or stop."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port of ``host`` that nothing listens on now (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``port`` of ``host`` now. SO_REUSEADDR, as uvicorn
    and http.server set it: connections left in TIME_WAIT (by readiness probes, say) do not
    keep a server off its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def spawn(
    command: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session (and process group) of its own, stdout and stderr to
    ``log`` (truncated), stdin from /dev/null. Its own group lets :func:`stop_group` reach
    everything it starts, keeps a ^C in our terminal from reaching it, and lets it outlive us."""
    with log.open("wb") as output:
        return subprocess.Popen(
            list(command),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=None if cwd is None else str(cwd),
            env=None if env is None else dict(env),
            start_new_session=True,
        )


def http_ready(url: str, timeout: float = 2.0) -> Callable[[], bool]:
    """A readiness probe for :func:`wait_until`: a GET of ``url`` answers 200."""

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return bool(response.status == 200)
        except (OSError, http.client.HTTPException):  # refused, not up yet, or an error status
            return False

    return ready


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    seconds: float,
    what: str,
    *,
    log: Path | None = None,
    log_lines: int = LOG_LINES,
    error: type[Nb2PipeError] = ProcessError,
) -> None:
    """Call ``ready`` until it returns True. If ``process`` exits first, or ``seconds`` pass,
    its group is stopped and ``error`` is raised, naming ``what`` and quoting the last
    ``log_lines`` lines of ``log``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop_group(process)  # anything the process left behind in its group
            raise error(f"{what} exited ({process.returncode}):\n{log_tail(log, log_lines)}")
        if ready():
            return
        time.sleep(POLL_SECONDS)
    stop_group(process)
    where = f"; see {log}" if log is not None else ""
    raise error(f"{what} was not ready after {seconds:g} s{where}:\n{log_tail(log, log_lines)}")


def log_tail(log: Path | None, lines: int = LOG_LINES) -> str:
    """The last ``lines`` lines of ``log`` ('' when there is none)."""
    if log is None:
        return ""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def stop_group(process: Stoppable, grace: float = 10.0) -> None:
    """Stop ``process`` and everything in its process group: SIGTERM to the group, up to
    ``grace`` s for all of it to exit, then SIGKILL to what is left; returns once nothing of it
    runs. The leader is reaped when it is our child. A process already gone is fine.

    A process that does not lead a group of its own (not started by :func:`spawn` or with
    ``start_new_session``) is signalled alone: its group is someone else's, ours perhaps."""
    pid = process if isinstance(process, int) else process.pid
    if pid is None:  # a multiprocessing process never started
        return
    own_group = _leads_group(pid)
    _signal(pid, signal.SIGTERM, own_group)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not _stopped(process, pid, own_group):
        time.sleep(_STOP_POLL_SECONDS)
    _signal(pid, signal.SIGKILL, own_group)  # the stubborn, or what the leader left in its group
    deadline = time.monotonic() + KILLED_WITHIN_S
    while not _stopped(process, pid, own_group):
        if time.monotonic() > deadline:
            raise ProcessError(f"process group {pid} still runs {KILLED_WITHIN_S:g} s after SIGKILL")
        time.sleep(_STOP_POLL_SECONDS)


def output_to(fd: int) -> None:
    """This process's output, both file descriptors and Python's streams (a host such as pytest's
    capture or a notebook kernel may have pointed ``sys.stdout`` elsewhere than fd 1), to ``fd``."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs: not gone and not a zombie. Reaps it when it is our own child
    (so do not use it on a child a :class:`subprocess.Popen` still waits for)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return _proc_stat(pid)[:1] != ["Z"]


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return True  # gone already: a group it led may still hold what it started


def _signal(pid: int, sig: signal.Signals, own_group: bool) -> None:
    try:
        if own_group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass  # nothing left to signal
    except PermissionError:
        raise ProcessError(f"not allowed to signal process {pid} ({sig.name})") from None


def _leader_ended(process: Stoppable, pid: int) -> bool:
    """Whether the leader has exited, reaping it when it is our child."""
    if isinstance(process, subprocess.Popen):
        return process.poll() is not None
    if isinstance(process, BaseProcess):
        return process.exitcode is not None  # multiprocessing reaps it
    return not is_alive(pid)


def _stopped(process: Stoppable, pid: int, own_group: bool) -> bool:
    """The leader has exited and, for a group, no member of it still runs (zombies left to
    their parents do not count: they run nothing)."""
    if not _leader_ended(process, pid):
        return False
    if not own_group:
        return True
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return not _running_members(pid)


def _running_members(group: int) -> list[int]:
    """PIDs in process group ``group`` that are not zombies, from /proc. Without /proc
    (macOS) every member counts: the group is waited for until it is empty or ``grace`` ends."""
    proc = Path("/proc")
    if not proc.is_dir():
        return [group]
    members = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            # fields after the command: state, ppid, pgrp, ...
            if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _proc_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name ([] when unreadable)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text.rsplit(")", 1)[-1].split()


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so a killed run also stops its steps cleanly."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
