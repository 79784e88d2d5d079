"""Turning an API ``path`` into a notebook file inside the server's root directory.

Every route takes a path from the browser; nothing outside the root may be compiled, run or
written beside. Checked by name first (absolute, ``..``, backslashes, NUL) and then by where
the path really leads once symlinks are followed. What the server writes (the compiled
pipeline, a run's workdir ``.nb2pipe/``) is checked the same way before it is written: on a
shared server a link planted beside a notebook must not carry a button's writes elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from nb2pipe.errors import Nb2PipeError


class PathEscape(Nb2PipeError):
    """The path leaves the root directory (403)."""


class NotebookNotFound(Nb2PipeError):
    """No notebook at that path (404)."""


def resolve_notebook(root: str | Path, path: str, must_exist: bool = True) -> Path:
    """The notebook file ``path`` names under ``root`` (contents-API form: ``/`` separators,
    relative). Raises :class:`PathEscape` or :class:`NotebookNotFound`. ``must_exist=False``
    when the request brings the notebook's content and the path only names it."""
    if not isinstance(path, str) or not path.strip():
        raise NotebookNotFound("no notebook path given")
    if "\0" in path or "\\" in path:
        raise PathEscape(f"{path!r}: NUL characters and backslashes are not allowed in a path")
    pure = PurePosixPath(path)
    if pure.is_absolute() or (len(path) > 1 and path[1] == ":"):  # /etc/passwd, C:...
        raise PathEscape(f"{path!r}: give the path relative to the server's root directory")
    if ".." in pure.parts:
        raise PathEscape(f"{path!r}: '..' is not allowed in a path")
    base = Path(root).resolve()
    target = _leads_to(base / pure, path)
    if not target.is_relative_to(base):  # a symlink that leads out of the root
        raise PathEscape(f"{path!r} leads outside the server's root directory")
    if target.suffix != ".ipynb":
        raise NotebookNotFound(f"{path}: not a notebook (.ipynb)")
    if must_exist and not _is_file(target):
        raise NotebookNotFound(f"{path}: no such notebook")
    return target


def confine_output(root: str | Path, target: Path, what: str) -> Path:
    """``target``, a path the server is about to write, where it really leads; raises
    :class:`PathEscape` when that is outside ``root`` (a symlink at the name, or above it)."""
    base = Path(root).resolve()
    leads = _leads_to(target, str(target))
    if not leads.is_relative_to(base):
        raise PathEscape(f"{what} {_shown(target, base)} leads outside the server's root directory (a symbolic link)")
    return leads


def confine_workdir(root: str | Path, workdir: Path) -> Path:
    """``workdir`` (a notebook's ``.nb2pipe/``) and each entry directly in it (``runs/``,
    ``logs/``, the MLflow store...) lead inside ``root``; else :class:`PathEscape`."""
    leads = confine_output(root, workdir, "run folder")
    try:
        entries = [workdir / name for name in os.listdir(leads)] if leads.is_dir() else []
    except OSError as exc:
        raise PathEscape(f"run folder {workdir.name}: cannot look in it ({exc.strerror})") from None
    for entry in entries:
        confine_output(root, entry, "run folder entry")
    return leads


def _leads_to(path: Path, shown: str) -> Path:
    """Where ``path`` leads once every symlink is followed (the parts that exist). A loop of
    links, or a name the file system refuses (too long), is no notebook: 404, not a crash."""
    try:
        return path.resolve()
    except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
        raise NotebookNotFound(f"{shown!r}: a loop of symbolic links") from None
    except OSError as exc:  # ELOOP (Python >= 3.13), ENAMETOOLONG
        raise NotebookNotFound(f"{shown!r}: not a usable path ({exc.strerror})") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name longer than the file system allows
        return False


def _shown(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
