"""Bad input gets errors that name notebook, cell and line, say how to fix it, all at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nb2pipe.cli import main
from nb2pipe.errors import Severity
from tests.support.nbtools import (
    code,
    codes,
    diagnostics_of,
    markdown,
    notebook,
    notebook_text,
    plan_of,
    write_notebook,
)


def test_unknown_tag_suggests_the_closest_known_tag():
    (diagnostic,) = diagnostics_of(notebook(code("x = 1", "stpe:train")))
    assert diagnostic.code == "unknown-tag"
    assert diagnostic.hint == "did you mean 'step:train'?"
    assert (diagnostic.location.cell, diagnostic.location.notebook) == (0, "nb.ipynb")


def test_unknown_bare_tag_close_to_a_role_suggests_it():
    (diagnostic,) = diagnostics_of(notebook(code("import os", "import"), code("x = 1", "step:a")))
    assert diagnostic.hint == "did you mean 'imports'?"


def test_cycle_between_steps_is_reported_with_its_path():
    diagnostics = diagnostics_of(
        notebook(
            code("a = 1", "step:one", "after:two"),
            code("b = a", "step:two"),
        )
    )
    assert codes(diagnostics) == ["cycle"]
    assert "'one' -> 'two' -> 'one'" in diagnostics[0].message or "'two' -> 'one' -> 'two'" in diagnostics[0].message
    assert diagnostics[0].location.cell == 0


def test_after_naming_an_unknown_step():
    (diagnostic,) = diagnostics_of(
        notebook(
            code("a = 1", "step:prepare"),
            code("b = 2", "step:train", "prev:prepair"),
        )
    )
    assert diagnostic.code == "unknown-step"
    assert diagnostic.hint == "did you mean 'prepare'?"
    assert diagnostic.location.cell == 1


def test_duplicate_step_names():
    (diagnostic,) = diagnostics_of(
        notebook(
            code("a = 1", "step:train"),
            code("b = 2", "step:evaluate"),
            code("c = 3", "step:train"),
        )
    )
    assert diagnostic.code == "duplicate-step"
    assert diagnostic.location.cell == 2
    assert "cell 1" in diagnostic.message


def test_the_same_step_name_on_consecutive_cells_continues_the_step():
    plan = plan_of(notebook(code("a = 1", "step:train"), markdown("notes"), code("b = a", "step:train")))
    assert [c.cell for c in plan.step("train").cells] == [0, 2]


def test_syntax_error_names_cell_and_line():
    (diagnostic,) = diagnostics_of(
        notebook(
            code("a = 1", "step:one"),
            code("x = 1\ny = (2 +\n", "step:two"),
        )
    )
    assert diagnostic.code == "syntax-error"
    assert diagnostic.location.cell == 1
    assert diagnostic.location.line == 2
    assert "skip" in diagnostic.hint


def test_invalid_notebook_json_names_line():
    (diagnostic,) = diagnostics_of('{"cells": [\n  {"cell_type": "code",,}\n]}')
    assert diagnostic.code == "invalid-notebook"
    assert diagnostic.location.line == 2


def test_invalid_notebook_structure():
    text = json.dumps({"cells": [{"cell_type": "code", "source": 3, "metadata": {}}], "metadata": {}})
    (diagnostic,) = diagnostics_of(text)
    assert diagnostic.code == "invalid-notebook" and diagnostic.location.cell == 0
    (diagnostic,) = diagnostics_of(json.dumps([1, 2]))
    assert "not a notebook" in diagnostic.message


def test_undefined_name_names_the_reading_line():
    (diagnostic,) = diagnostics_of(notebook(code("a = 1\nb = c + a", "step:one")))
    assert diagnostic.code == "undefined-name"
    assert (diagnostic.location.cell, diagnostic.location.line) == (0, 2)
    assert "'c'" in diagnostic.message


def test_undefined_name_defined_further_down_says_so():
    (diagnostic,) = diagnostics_of(notebook(code("print(model)", "step:use"), code("model = 1", "step:make")))
    assert "further down" in diagnostic.hint


def test_undefined_name_defined_in_a_skipped_cell_says_so():
    (diagnostic,) = diagnostics_of(notebook(code("secret = 1", "skip"), code("print(secret)", "step:use")))
    assert "tagged skip" in diagnostic.hint


@pytest.mark.parametrize(
    ("making", "what"),
    [
        ("handle = open('data.txt', 'w')", "an open file"),
        ("numbers = (i for i in range(3))", "a generator"),
        ("import threading\nguard = threading.Lock()", "a lock"),
        ("import importlib\nlib = importlib.import_module('json')", "a module"),
        ("def gen():\n    yield 1\nstream = gen()", "a generator"),
    ],
)
def test_values_that_cannot_cross_a_step_boundary(making: str, what: str):
    name = making.split("\n")[-1].split(" =")[0]
    (diagnostic,) = diagnostics_of(notebook(code(making, "step:make"), code(f"print({name})", "step:use")))
    assert diagnostic.code == "unserializable-value"
    assert what in diagnostic.message
    assert diagnostic.location.cell == 1
    assert "inside step 'use'" in diagnostic.hint


def test_shell_and_magic_lines_are_stripped_with_warnings_and_pip_becomes_packages():
    plan = plan_of(
        notebook(
            code("%matplotlib inline\n!pip install -q scikit-learn==1.5.2 'rich>=13'\nimport os", "step:one"),
            code("for f in ['a']:\n    !echo {f}\n%pip install tabulate\nfiles = !ls\nx = 1", "step:two"),
        )
    )
    warnings = {(d.code, d.location.cell, d.location.line) for d in plan.warnings}
    assert ("magic-stripped", 0, 1) in warnings
    assert ("pip-to-packages", 0, 2) in warnings
    assert ("magic-stripped", 1, 2) in warnings and ("magic-stripped", 1, 4) in warnings
    assert all(d.severity is Severity.WARNING for d in plan.warnings)
    assert plan.step("one").options.packages == ("scikit-learn==1.5.2", "rich>=13")
    assert plan.step("two").options.packages == ("tabulate",)
    assert plan.step("two").cells[0].source.split("\n")[1] == "    pass"  # line numbers kept


def test_all_problems_are_reported_together():
    diagnostics = diagnostics_of(
        notebook(
            code("x = 1", "stpe:a"),
            code("y = 1", "step:b", "after:nowhere"),
            code("z = q", "step:c"),
        )
    )
    assert sorted(codes(diagnostics)) == ["undefined-name", "unknown-step", "unknown-tag"]


def test_cli_exit_codes_and_nothing_written_on_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    good = write_notebook(tmp_path, notebook(code("x = 1", "step:a")), "good.ipynb")
    target = tmp_path / "good.pipeline.yaml"
    assert main(["compile", str(good)]) == 0
    before = target.read_text()

    bad = notebook(code("x = 1", "step:a"), code("print(y)", "step:b"))
    (tmp_path / "good.ipynb").write_text(notebook_text(bad))
    assert main(["compile", str(good)]) == 1
    assert target.read_text() == before  # the earlier output is untouched
    err = capsys.readouterr().err
    assert "good.ipynb, cell 2, line 1: error[undefined-name]" in err
    assert "nothing was written" in err

    assert main(["compile", str(tmp_path / "missing.ipynb")]) == 1
    assert "no such notebook" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["compile"])
    assert usage.value.code == 2


def test_cli_never_shows_a_traceback_for_bad_input(tmp_path: Path):
    path = tmp_path / "broken.ipynb"
    path.write_bytes(b"\xff\xfe not json")
    done = subprocess.run([sys.executable, "-m", "nb2pipe", "compile", str(path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "broken.ipynb: error[invalid-notebook]: not UTF-8 text" in done.stderr
    assert not (tmp_path / "broken.pipeline.yaml").exists()


def test_a_notebook_without_code_is_an_error_not_a_crash():
    (diagnostic,) = diagnostics_of(notebook(markdown("# only prose"), code("print('x')", "skip")))
    assert diagnostic.code == "no-steps"
