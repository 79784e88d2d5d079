"""Find a step's processes by what the step itself says, warm or cold.

A cold step's code travels on its command line; a warm step is forked from the run's
fork server and its command line is the server's. So a step under test writes its own
pid and its parent's (the step process that waits for it) to a file, and tests check those.
"""

from __future__ import annotations

import time
from pathlib import Path


def record_pids(file: Path) -> str:
    """Code for a step (with ``os`` imported) that writes its pid and its parent's to ``file``."""
    temporary = f"{file}.tmp"
    write = f"open({temporary!r}, 'w').write(f'{{os.getpid()}} {{os.getppid()}}')"
    return f"{write}\nos.replace({temporary!r}, {str(file)!r})"


def recorded_pids(file: Path, timeout: float = 60.0) -> list[int]:
    """The pids a step wrote with :func:`record_pids`, waiting up to ``timeout`` seconds for them."""
    deadline = time.monotonic() + timeout
    while not file.exists():
        assert time.monotonic() < deadline, f"the step never wrote {file.name}"
        time.sleep(0.05)
    return [int(pid) for pid in file.read_text().split()]


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie has ended)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.append(pid)
    return running


def wait_until_ended(pids: list[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` seconds for ``pids`` to end; those still running then."""
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


def descendants(pid: int) -> list[int]:
    """Every running process below ``pid`` (its children, theirs, ...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return alive(found)
