"""Writing output files all or nothing: no reader ever sees a half-written file, and a
failure leaves every earlier version in place.

Outputs are checked before anything is written (:func:`check_outputs`): never over an input,
never two outputs on one file, never into a folder that is missing. A target that is a
symbolic link is refused rather than replaced: writing through it would change a file the
user did not name (a link someone planted), and replacing it would silently break a link
the user made on purpose; refusing says which, and lets them choose.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError

#: (what the output is, the path as the user gave it), e.g. ("-o", "nb.pipeline.yaml")
Output = tuple[str, "str | Path"]

#: a new file only: O_EXCL fails on any existing name, a symlink included (even a dangling
#: one), and O_NOFOLLOW says so again where O_EXCL alone is not enough (some network file systems)
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def check_outputs(
    outputs: Sequence[Output], inputs: Sequence[str | Path | None] = (), *, folders_made: bool = False
) -> None:
    """Raise :class:`Nb2PipeError` naming the path as given when an output cannot or must not
    be written: it is (a link to, another name of) an input or another output, a folder, a
    link, not a regular file, or its folder is missing (unless ``folders_made``: the writer
    makes it, as :func:`write_whole` does) or not writable."""
    given = [source for source in inputs if source]
    for index, (what, path) in enumerate(outputs):
        problem = target_problem(Path(path), folders_made=folders_made)
        if not problem and str(path).endswith(("/", os.sep)):  # Path() drops the slash that meant "a folder"
            problem = "names a folder that is not there; give a file name"
        if problem:
            raise Nb2PipeError(f"{what} {path}: {problem}")
        for source in given:
            if same_file(path, source):
                raise Nb2PipeError(f"{what} {path}: that is the input {source}; writing it would destroy it")
        for other_what, other in outputs[:index]:
            if same_file(path, other):
                raise Nb2PipeError(f"{what} {path} and {other_what} {other} are the same file; give two names")


def target_problem(target: Path, *, folders_made: bool = False) -> str:
    """Why ``target`` cannot be replaced by a new file, or ``""``."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        return f"cannot look at it ({exc.strerror})"
    except ValueError:  # a NUL character
        return "is not a usable path"
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            return f"is a symbolic link (to {os.readlink(target)}); remove the link or give the path it points to"
        if stat.S_ISDIR(info.st_mode):
            return "is a folder; give the path of a file (in it, or elsewhere)"
        if not stat.S_ISREG(info.st_mode):
            return "is not a regular file (a pipe, socket or device)"
    folder = target.parent
    if folders_made:
        while not folder.exists() and folder != folder.parent:  # the first folder that is there is written in
            folder = folder.parent
        if not folder.is_dir():
            return f"{folder} is not a folder"
    if not folder.is_dir():
        return f"folder {folder} does not exist; create it first"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in folder {folder} (permission denied)"
    return ""


def same_file(one: str | Path, other: str | Path) -> bool:
    """One file under two names: the same spelling, ``./x`` and ``x``, a hard or symbolic link."""
    try:
        return os.path.samefile(one, other)
    except OSError:  # one of them does not exist (yet): compare where the names lead
        return os.path.realpath(one) == os.path.realpath(other)
    except ValueError:  # a NUL character: no file at all
        return False


def write_all_or_nothing(files: Mapping[Path, str]) -> None:
    """Write each file to a new temporary sibling, then move them all into place.

    The temporary file is created with ``O_EXCL`` under a random name, so a link planted at a
    predictable name cannot redirect the write; ``os.replace`` swaps the directory entry and
    never follows a link at the target either.
    """
    for target in files:
        problem = target_problem(target)
        if problem:
            raise Nb2PipeError(f"{target}: {problem}")
    staged: list[tuple[Path, Path]] = []
    try:
        for target, text in files.items():
            staged.append((_stage(target, text), target))
        for temporary, target in staged:
            try:
                os.replace(temporary, target)
            except OSError as exc:
                raise Nb2PipeError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def _stage(target: Path, text: str) -> Path:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Nb2PipeError(f"cannot write {target}: text UTF-8 cannot encode ({exc.reason})") from None
    while True:
        # NAME_MAX is 255 bytes on most file systems: keep the temporary name under it
        temporary = target.with_name(f".{target.name[:200]}.{secrets.token_hex(8)}.tmp")
        try:
            descriptor = os.open(temporary, _OPEN_NEW, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise Nb2PipeError(f"cannot write {target}: {exc.strerror}") from None
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise Nb2PipeError(f"cannot write {target}: {exc.strerror}") from None
        return temporary


def write_whole(path: Path, text: str) -> None:
    """One file, all or nothing, its folder made when missing (a task's output path)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Nb2PipeError(f"cannot make folder {path.parent} for {path}: {exc.strerror}") from None
    write_all_or_nothing({path: text})


def read_regular_file(path: str | Path) -> bytes:
    """The bytes of a regular file. A pipe would block the read until something writes to it
    and a device such as /dev/zero never ends, so both raise :class:`OSError` (as a folder
    raises :class:`IsADirectoryError`) instead of being read."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as file:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file but a pipe, socket or device", str(path))
        return file.read()


def read_json(path: Path, missing: str, error: type[Nb2PipeError] = Nb2PipeError) -> Any:
    """A JSON file's value; ``missing`` says how to make the file when there is none. Errors
    (``error``) name the file, and the line for bad JSON."""
    try:
        return json.loads(read_regular_file(path).decode("utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such file; {missing}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}, line {exc.lineno}: not JSON ({exc.msg})") from None
    except RecursionError:
        raise error(f"{path}: not usable JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. a number of more than 4300 digits
        raise error(f"{path}: not usable JSON ({str(exc)[:200]})") from None


#: seconds between tries of a lock another process holds
_LOCK_POLL_S = 0.05


@contextmanager
def exclusive_lock(path: Path, seconds: float, timed_out: Callable[[], Exception]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing; its folder must exist) for
    the block, across threads and processes; the system frees it if the holder dies. Waiting
    longer than ``seconds`` raises ``timed_out()``: no caller waits for ever."""
    with path.open("a") as handle:
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise timed_out() from None
                time.sleep(_LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
