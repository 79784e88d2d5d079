"""What the command line does when nb2pipe itself fails: a bug is reported in one line with
its traceback saved to a file, and a reader that went away (``nb2pipe ... | head``) ends the
command quietly, as Python's documentation on SIGPIPE recommends."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

#: longest exception message shown on the one line
_SHOWN = 200


def describe_internal_error(exc: BaseException) -> tuple[str, str | None]:
    """The one line that reports a bug, and the file its traceback was saved in (None when
    no folder took it: then the line says why)."""
    try:
        message = " ".join(str(exc).split())
    except Exception:  # an exception whose __str__ fails too
        message = "(its message could not be shown)"
    summary = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    summary = summary if len(summary) <= _SHOWN else summary[: _SHOWN - 3] + "..."
    saved, why_not = save_traceback(exc)
    where = f"the traceback is in {saved}" if saved else f"the traceback could not be saved ({why_not})"
    return f"nb2pipe: internal error ({summary}); this is a bug — {where}; please report it", saved


def crash_folders() -> list[Path]:
    """Where tracebacks go: the user's cache folder ($XDG_CACHE_HOME or ~/.cache)/nb2pipe/crashes,
    else the temporary folder."""
    import tempfile

    folders = []
    cache = os.environ.get("XDG_CACHE_HOME")
    with contextlib.suppress(RuntimeError):  # no home folder: the temporary folder it is
        folders.append((Path(cache) if cache else Path.home() / ".cache") / "nb2pipe" / "crashes")
    return [*folders, Path(tempfile.gettempdir())]


def save_traceback(exc: BaseException) -> tuple[str | None, str]:
    """Write ``exc``'s traceback to a new file (``mkstemp``: a fresh name, opened with O_EXCL,
    readable by the user alone); return its path, or None and why not."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    # no argv: a bug report should not carry a --host URL's credentials
    text = f"nb2pipe {_version()} on Python {sys.version.split()[0]} ({sys.platform})\n\n{text}"
    why_not = "no folder to write to"
    for folder in crash_folders():
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor, name = tempfile.mkstemp(prefix="nb2pipe-crash-", suffix=".txt", dir=folder)
            with os.fdopen(descriptor, "w", encoding="utf-8", errors="backslashreplace") as file:
                file.write(text)
        except OSError as error:
            why_not = f"{folder}: {error.strerror}"
            continue
        return name, ""
    return None, why_not


def _version() -> str:
    from nb2pipe.version import __version__

    return __version__


def is_broken_pipe(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe whose reader has gone (``poll`` reports an error on it;
    where ``poll`` is missing, assume so, as Python's documentation does)."""
    import select

    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test's capture, or closed
        return False
    if not hasattr(select, "poll"):
        return True
    poller = select.poll()
    poller.register(descriptor, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail once more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


@contextlib.contextmanager
def own_warnings_as_lines() -> Iterator[None]:
    """Within: nb2pipe's own warnings (their class defined in nb2pipe, e.g. a payload log with
    torn lines) print as ``nb2pipe: warning: MESSAGE``, like every other line the command
    line prints; other libraries' warnings keep Python's format, whose file and line help
    their authors."""
    shown_before = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if category.__module__.split(".")[0] != "nb2pipe":
            shown_before(message, category, filename, lineno, file, line)
            return
        with contextlib.suppress(OSError):  # as Python's own showwarning: a closed stderr loses it
            print(f"nb2pipe: warning: {message}", file=file or sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
