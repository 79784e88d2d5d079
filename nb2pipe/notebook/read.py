"""Notebook JSON text -> :class:`~nb2pipe.ir.Notebook`.

Plain :mod:`json` keeps compilation fast (nbformat with jsonschema costs ~1 s to import in a
full environment); nbformat is only loaded to upgrade notebooks older than format 4.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from nb2pipe.errors import CompileError, Location, error
from nb2pipe.ir import Cell, Notebook

_CELL_TYPES = ("code", "markdown", "raw")


def parse_notebook(text: str, path: str) -> Notebook:
    """Parse notebook JSON; raise :class:`CompileError` naming what is wrong and where."""
    where = Location(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CompileError(
            (
                error(
                    "invalid-notebook",
                    f"not valid notebook JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                    Location(path, line=exc.lineno),
                    "open and save the notebook in JupyterLab, or restore it from version control",
                ),
            )
        ) from None
    if not isinstance(data, dict):
        raise _invalid(where, "the file holds JSON but not a notebook (expected an object at the top)")
    if int(data.get("nbformat", 4) or 4) < 4 or "worksheets" in data:
        data = _upgrade(text, where)
    cells_data = data.get("cells")
    if not isinstance(cells_data, list):
        raise _invalid(where, "the notebook has no 'cells' list")
    metadata = data.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise _invalid(where, "the notebook's 'metadata' is not an object")
    diagnostics = []
    cells: list[Cell] = []
    for index, raw in enumerate(cells_data):
        cell, problem = _parse_cell(index, raw)
        if problem:
            diagnostics.append(error("invalid-notebook", problem, Location(path, index), _FIX_HINT))
        else:
            cells.append(cell)
    if diagnostics:
        raise CompileError(tuple(diagnostics))
    return Notebook(path=path, cells=tuple(cells), metadata=MappingProxyType(metadata))


_FIX_HINT = "open and save the notebook in JupyterLab, which repairs cell structure"


def _parse_cell(index: int, raw: Any) -> tuple[Cell, str]:
    empty = Cell(index, "raw", "", ())
    if not isinstance(raw, dict):
        return empty, "cell is not a JSON object"
    cell_type = raw.get("cell_type")
    if cell_type not in _CELL_TYPES:
        return empty, f"unknown cell_type {cell_type!r} (expected one of {', '.join(_CELL_TYPES)})"
    source = raw.get("source", "")
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        source = "".join(source)
    if not isinstance(source, str):
        return empty, "cell source is neither a string nor a list of strings"
    metadata = raw.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        return empty, "cell metadata is not an object"
    tags = metadata.get("tags")
    tags = [] if tags is None else tags
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return empty, f"cell tags must be a list of strings, found {tags!r}"
    count = raw.get("execution_count")
    if not isinstance(count, int) or isinstance(count, bool):
        count = None
    return Cell(index, cell_type, source, tuple(tag.strip() for tag in tags if tag.strip()), count), ""


def _upgrade(text: str, where: Location) -> dict[str, Any]:
    import nbformat  # only for old notebooks: it is slow to import

    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises many types for malformed input
        raise _invalid(where, f"could not upgrade this old-format notebook: {exc}") from None
    return json.loads(nbformat.writes(notebook))


def _invalid(where: Location, message: str) -> CompileError:
    return CompileError((error("invalid-notebook", message, where, _FIX_HINT),))
