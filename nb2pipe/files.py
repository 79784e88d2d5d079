"""Writing output files all or nothing: no reader ever sees a half-written file, and a
failure leaves every earlier version in place."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError


def write_all_or_nothing(files: Mapping[Path, str]) -> None:
    """Write each file to a temporary sibling, then move them all into place."""
    staged: list[tuple[Path, Path]] = []
    try:
        for target, text in files.items():
            if not target.parent.is_dir():
                raise Nb2PipeError(f"{target}: folder {target.parent} does not exist; create it first")
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            temporary.write_text(text, encoding="utf-8")
            staged.append((temporary, target))
        for temporary, target in staged:
            os.replace(temporary, target)
    except OSError as exc:
        raise Nb2PipeError(f"cannot write {exc.filename}: {exc.strerror}") from None
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def write_whole(path: Path, text: str) -> None:
    """One file, all or nothing, its folder made when missing (a task's output path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_all_or_nothing({path: text})


def read_json(path: Path, missing: str, error: type[Nb2PipeError] = Nb2PipeError) -> Any:
    """A JSON file's value; ``missing`` says how to make the file when there is none. Errors
    (``error``) name the file, and the line for bad JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such file; {missing}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}, line {exc.lineno}: not JSON ({exc.msg})") from None
