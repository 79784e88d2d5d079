"""Reading notebook JSON into cells."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v3 import new_code_cell as v3_code_cell
from nbformat.v3 import new_notebook as v3_notebook
from nbformat.v3 import new_worksheet

from nb2pipe.errors import CompileError
from nb2pipe.notebook.read import parse_notebook


def test_cells_sources_tags_and_execution_counts():
    text = json.dumps(
        {
            "cells": [
                {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "text"]},
                {
                    "cell_type": "code",
                    "metadata": {"tags": [" step:a ", ""]},
                    "source": ["x = 1\n", "y = 2"],
                    "execution_count": 7,
                    "outputs": [],
                },
                {"cell_type": "code", "metadata": {}, "source": "z = 3", "execution_count": None, "outputs": []},
            ],
            "metadata": {"kubeflow_notebook": {"pipeline_name": "p"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )
    notebook = parse_notebook(text, "dir/nb.ipynb")
    assert notebook.name == "nb.ipynb"
    assert [c.cell_type for c in notebook.cells] == ["markdown", "code", "code"]
    assert notebook.cells[1].source == "x = 1\ny = 2"
    assert notebook.cells[1].tags == ("step:a",)
    assert [c.execution_count for c in notebook.cells] == [None, 7, None]
    assert notebook.metadata["kubeflow_notebook"] == {"pipeline_name": "p"}


def test_old_format_notebooks_are_upgraded():
    old = v3_notebook(worksheets=[new_worksheet(cells=[v3_code_cell(input="x = 1")])])
    notebook = parse_notebook(nbformat.v3.writes_json(old), "old.ipynb")
    assert [(c.cell_type, c.source) for c in notebook.cells] == [("code", "x = 1")]


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ({"cell_type": "heading", "source": ""}, "unknown cell_type"),
        ({"cell_type": "code", "source": "", "metadata": {"tags": "step:a"}}, "list of strings"),
        ({"cell_type": "code", "source": "", "metadata": {"tags": [1]}}, "list of strings"),
        ({"cell_type": "code", "source": "", "metadata": []}, "metadata is not an object"),
        ("just a string", "not a JSON object"),
    ],
)
def test_broken_cells_are_reported_by_index(cell, needle: str):
    text = json.dumps({"cells": [{"cell_type": "code", "source": "ok", "metadata": {}}, cell], "metadata": {}})
    with pytest.raises(CompileError) as caught:
        parse_notebook(text, "nb.ipynb")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.location.cell == 1 and needle in diagnostic.message
