"""Turning an API ``path`` into a notebook file inside the server's root directory.

Every route takes a path from the browser; nothing outside the root may be compiled, run or
written beside. Checked by name first (absolute, ``..``, backslashes, NUL) and then by where
the path really leads once symlinks are followed.
"""

from __future__ import annotations

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
    target = (base / pure).resolve()
    if not target.is_relative_to(base):  # a symlink that leads out of the root
        raise PathEscape(f"{path!r} leads outside the server's root directory")
    if target.suffix != ".ipynb":
        raise NotebookNotFound(f"{path}: not a notebook (.ipynb)")
    if must_exist and not target.is_file():
        raise NotebookNotFound(f"{path}: no such notebook")
    return target
