"""Notebook JSON text -> :class:`~nb2pipe.ir.Notebook`.

Plain :mod:`json` keeps compilation fast (nbformat with jsonschema costs ~1 s to import in a
full environment); nbformat is only loaded to upgrade notebooks older than format 4. Every
field the compiler reads is checked here, so a notebook that another tool wrote oddly ends in
an ``invalid-notebook`` diagnostic rather than an exception further on.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from nb2pipe.errors import CompileError, Diagnostic, Location, error
from nb2pipe.ir import Cell, Notebook

_CELL_TYPES = ("code", "markdown", "raw")
_FORMAT = 4

#: ``kernelspec.language`` / ``language_info.name`` values of Python kernels (ipykernel,
#: xeus-python, pyodide, old IPython notebooks)
PYTHON_LANGUAGES = frozenset({"python", "python2", "python3", "ipython", "ipython2", "ipython3"})

_FIX_HINT = "open and save the notebook in JupyterLab, which repairs cell structure"
_RESTORE_HINT = "open and save the notebook in JupyterLab, or restore it from version control"


def parse_notebook(text: str, path: str) -> Notebook:
    """Parse notebook JSON; raise :class:`CompileError` naming what is wrong and where."""
    where = Location(path)
    data = _load_json(text, where)
    if not isinstance(data, dict):
        raise _invalid(where, "the file holds JSON but not a notebook (expected an object at the top)")
    version = data.get("nbformat", _FORMAT)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= _FORMAT:
        raise _invalid(
            where,
            f"'nbformat' must be the notebook format number, {_FORMAT} (1-3 for old notebooks), "
            f"found {_shown(version)}",
        )
    if version < _FORMAT or "worksheets" in data:
        data = _upgrade(text, where)
    cells_data = data.get("cells")
    if not isinstance(cells_data, list):
        raise _invalid(where, "the notebook has no 'cells' list")
    metadata = data.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise _invalid(where, "the notebook's 'metadata' is not an object")
    language = _language_problem(metadata, where)
    if language is not None:
        raise CompileError((language,))
    diagnostics = []
    problem = _text_problem(metadata)
    if problem:
        diagnostics.append(_invalid_at(where, f"the notebook's metadata holds {problem}"))
    cells: list[Cell] = []
    for index, raw in enumerate(cells_data):
        cell, problem = _parse_cell(index, raw)
        if problem:
            diagnostics.append(_invalid_at(Location(path, index, cell.execution_count), problem))
        else:
            cells.append(cell)
    if diagnostics:
        raise CompileError(tuple(diagnostics))
    return Notebook(path=path, cells=tuple(cells), metadata=MappingProxyType(metadata))


def _load_json(text: str, where: Location) -> Any:
    if not text.strip():
        raise _invalid(where, "the file is empty", _RESTORE_HINT)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CompileError(
            (
                error(
                    "invalid-notebook",
                    f"not valid notebook JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                    Location(where.notebook, line=exc.lineno),
                    _RESTORE_HINT,
                ),
            )
        ) from None
    except RecursionError:
        raise _invalid(where, "the JSON is nested too deeply to be a notebook", _RESTORE_HINT) from None
    except ValueError as exc:  # e.g. a number of more than 4300 digits
        raise _invalid(where, f"not valid notebook JSON: {exc}", _RESTORE_HINT) from None


def _language_problem(metadata: dict[str, Any], where: Location) -> Diagnostic | None:
    """The kernel's language when it is not Python: nb2pipe analyses every cell as Python."""
    for key, field in (("kernelspec", "language"), ("language_info", "name")):
        section = metadata.get(key)
        if section is None:
            continue
        if not isinstance(section, dict):
            return _invalid_at(where, f"notebook metadata {key!r} is not an object (found {_shown(section)})")
        language = section.get(field)
        if language is None or language == "":
            continue
        if not isinstance(language, str):
            return _invalid_at(where, f"notebook metadata {key}.{field} is not a string (found {_shown(language)})")
        if language.strip().lower() not in PYTHON_LANGUAGES:
            return error(
                "not-python",
                f"the notebook's language is {_shown(language.strip())} (metadata {key}.{field}); nb2pipe "
                "compiles Python notebooks only",
                where,
                "if its cells are Python, choose a Python kernel (Kernel > Change Kernel) and save the notebook",
            )
    return None


def _parse_cell(index: int, raw: Any) -> tuple[Cell, str]:
    empty = Cell(index, "raw", "", ())
    if not isinstance(raw, dict):
        return empty, f"cell is not a JSON object (found {_shown(raw)})"
    count = raw.get("execution_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        return empty, f"execution_count must be a whole number or null, found {_shown(count)}"
    empty = Cell(index, "raw", "", (), count)
    cell_type = raw.get("cell_type")
    if not isinstance(cell_type, str) or cell_type not in _CELL_TYPES:
        return empty, f"unknown cell_type {_shown(cell_type)} (expected one of {', '.join(_CELL_TYPES)})"
    source = raw.get("source", "")
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        source = "".join(source)
    if not isinstance(source, str):
        return empty, f"cell source is neither a string nor a list of strings (found {_shown(source)})"
    metadata = raw.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        return empty, f"cell metadata is not an object (found {_shown(metadata)})"
    tags = metadata.get("tags")
    tags = [] if tags is None else tags
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return empty, f"cell tags must be a list of strings, found {_shown(tags)}"
    problem = _text_problem([source, tags])
    if problem:
        return empty, f"the cell's source or tags hold {problem}"
    return Cell(index, cell_type, source, tuple(tag.strip() for tag in tags if tag.strip()), count), ""


def _text_problem(value: Any) -> str:
    """JSON's ``\\ud800`` escapes decode to lone surrogates, which no file or parser takes."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "text that is not UTF-8 (a \\ud800-style escape of half a character)"
    except RecursionError:
        return "JSON nested too deeply"
    return ""


def _shown(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: its repr, cut short (a value may be a 4000-digit number)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _upgrade(text: str, where: Location) -> dict[str, Any]:
    import nbformat  # only for old notebooks: it is slow to import

    try:
        notebook = nbformat.reads(text, as_version=_FORMAT)
        upgraded = json.loads(nbformat.writes(notebook))
    except Exception as exc:  # nbformat raises many types for malformed input
        raise _invalid(where, f"could not upgrade this old-format notebook: {str(exc)[:300]}") from None
    if not isinstance(upgraded, dict):
        raise _invalid(where, "could not upgrade this old-format notebook")
    return upgraded


def _invalid_at(where: Location, message: str, hint: str = _FIX_HINT) -> Diagnostic:
    return error("invalid-notebook", message, where, hint)


def _invalid(where: Location, message: str, hint: str = _FIX_HINT) -> CompileError:
    return CompileError((_invalid_at(where, message, hint),))
