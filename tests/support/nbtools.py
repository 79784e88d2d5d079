"""Notebooks built in code with nbformat, and small helpers the tests share."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nb2pipe.compiler import plan_source
from nb2pipe.errors import CompileError, Diagnostic
from nb2pipe.ir import PipelinePlan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def code(source: str, *tags: str) -> dict[str, Any]:
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def markdown(source: str) -> dict[str, Any]:
    return new_markdown_cell(source)


def notebook(*cells: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    nb = new_notebook()  # cells are set afterwards: nbformat would validate them, and tests need invalid ones
    nb.cells = list(cells)
    if metadata:
        nb.metadata.update(metadata)
    return nb


def notebook_text(nb: dict[str, Any]) -> str:
    return json.dumps(nb, indent=1)


def plan_of(nb: dict[str, Any], **kwargs: Any) -> PipelinePlan:
    return plan_source(notebook_text(nb), "nb.ipynb", **kwargs)


def diagnostics_of(nb: dict[str, Any] | str) -> list[Diagnostic]:
    text = nb if isinstance(nb, str) else notebook_text(nb)
    with pytest.raises(CompileError) as caught:
        plan_source(text, "nb.ipynb")
    return list(caught.value.diagnostics)


def codes(diagnostics: Iterable[Diagnostic]) -> list[str]:
    return [d.code for d in diagnostics]


def upstream(plan: PipelinePlan) -> dict[str, list[str]]:
    return {step.name: list(step.upstream) for step in plan.steps}


def write_notebook(folder: Path, nb: dict[str, Any], name: str = "nb.ipynb") -> Path:
    path = folder / name
    path.write_text(notebook_text(nb) if not isinstance(nb, str) else nb, encoding="utf-8")
    return path


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
