"""Reading notebook JSON into cells."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v3 import new_code_cell as v3_code_cell, new_notebook as v3_notebook, new_worksheet

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


def _parse_problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(CompileError) as caught:
        parse_notebook(text, "nb.ipynb")
    return [(d.code, d.message) for d in caught.value.diagnostics]


def _with(**top) -> str:
    data = {"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}}], "metadata": {}, "nbformat": 4}
    data.update(top)
    return json.dumps(data)


@pytest.mark.parametrize("version", ["abc", [4], 4.0, 4.5, None, True, 5, 0, -1, 10**30])
def test_odd_nbformat_values_are_invalid_notebooks(version):
    ((code, message),) = _parse_problems(_with(nbformat=version))
    assert code == "invalid-notebook" and "'nbformat' must be the notebook format number" in message


@pytest.mark.parametrize(
    "text",
    [
        '{"nbformat": ' + "9" * 5000 + "}",  # past int()'s 4300-digit limit
        '{"nbformat": 1e400, "cells": []}',  # infinity
        "[" * 100_000,
        '{"cells": [], "metadata": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        "",
        "  \n",
        "null",
        '"a string"',
    ],
    ids=["huge-int", "infinity", "deep-list", "deep-metadata", "empty", "blank", "null", "string"],
)
def test_malformed_json_is_an_invalid_notebook(text: str):
    ((code, message),) = _parse_problems(text)
    assert code == "invalid-notebook" and message


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ({"cell_type": "code", "source": {"a": 1}, "metadata": {}}, "neither a string nor a list"),
        ({"cell_type": "code", "source": ["x", 1], "metadata": {}}, "neither a string nor a list"),
        ({"cell_type": "code", "source": "", "metadata": {}, "execution_count": 2.5}, "execution_count"),
        ({"cell_type": "code", "source": "", "metadata": {}, "execution_count": "3"}, "execution_count"),
        ({"cell_type": "code", "source": "", "metadata": {}, "execution_count": True}, "execution_count"),
        ({"cell_type": "code", "source": "", "metadata": {"tags": {"step": "a"}}}, "list of strings"),
        ({"cell_type": "code", "source": "", "metadata": {"tags": [None]}}, "list of strings"),
        ({"cell_type": ["code"], "source": ""}, "unknown cell_type"),
        ({"cell_type": "code", "source": 'x = "\ud800"'}, "not UTF-8"),  # a lone surrogate from a \\ud800 escape
        ({"cell_type": "code", "source": "", "metadata": {"tags": ["step:\udfff"]}}, "not UTF-8"),
        (None, "not a JSON object"),
    ],
)
def test_cell_fields_of_odd_types_are_reported(cell, needle: str):
    ((code, message),) = _parse_problems(_with(cells=[cell]))
    assert code == "invalid-notebook" and needle in message


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ({"kernelspec": [1]}, "'kernelspec' is not an object"),
        ({"kernelspec": "python3"}, "'kernelspec' is not an object"),
        ({"language_info": 3}, "'language_info' is not an object"),
        ({"kernelspec": {"language": 7}}, "kernelspec.language is not a string"),
        ({"language_info": {"name": ["python"]}}, "language_info.name is not a string"),
        ({"title": "\ud800"}, "not UTF-8"),
    ],
)
def test_odd_notebook_metadata_is_reported(metadata, needle: str):
    ((code, message),) = _parse_problems(_with(metadata=metadata))
    assert code == "invalid-notebook" and needle in message


@pytest.mark.parametrize(
    ("metadata", "language"),
    [
        ({"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}, "language_info": {"name": "R"}}, "'R'"),
        ({"kernelspec": {"name": "julia-1.10", "language": "julia"}}, "'julia'"),
        ({"language_info": {"name": "scala"}}, "'scala'"),
        ({"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "R"}}, "'R'"),
    ],
)
def test_notebooks_in_other_languages_are_refused(metadata, language: str):
    ((code, message),) = _parse_problems(_with(metadata=metadata))
    assert code == "not-python" and language in message and "Python notebooks only" in message


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        {"language_info": {"name": "python", "version": "3.11.4"}},
        {"kernelspec": {"name": "xpython", "language": "Python"}, "language_info": {"name": "python"}},
        {"kernelspec": {"name": "python3"}},  # no language said: Python, as today
        {"kernelspec": None, "language_info": {"name": ""}},
    ],
)
def test_python_and_unspecified_languages_go_on(metadata):
    notebook = parse_notebook(_with(metadata=metadata), "nb.ipynb")
    assert [c.source for c in notebook.cells] == ["x = 1"]
