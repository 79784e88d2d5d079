"""IPython syntax out, line numbers kept, pip installs turned into packages."""

from __future__ import annotations

import ast

from nb2pipe.analysis.magics import strip_magics


def test_plain_python_is_untouched():
    source = "x = 5 % 2\nprint(x)"
    assert strip_magics(source).source == source


def test_line_magics_and_shell_lines_become_blank_or_pass():
    clean = strip_magics("%load_ext autoreload\nif True:\n    !ls -la\nobj?\nx = 1")
    assert clean.source == "\nif True:\n    pass\n\nx = 1"
    ast.parse(clean.source)
    assert [n.line for n in clean.notes] == [1, 3, 4]


def test_continued_magic_lines_are_removed_together():
    clean = strip_magics("!pip install \\\n    pandas\ny = 2")
    assert clean.source == "\n\ny = 2"
    assert clean.packages == ("pandas",)


def test_pip_forms_and_unsupported_options():
    assert strip_magics("%pip install -U 'numpy<2' tabulate").packages == ("numpy<2", "tabulate")
    assert strip_magics("!python -m pip install rich==13.7.0").packages == ("rich==13.7.0",)
    clean = strip_magics("!pip install -r requirements.txt")
    assert clean.packages == ()
    assert clean.notes[0].code == "pip-option-ignored"
    clean = strip_magics("!pip install {package}")
    assert "notebook variable" in clean.notes[0].message
    clean = strip_magics("!conda install numpy")
    assert "conda" in clean.notes[0].message


def test_cell_magics():
    timed = strip_magics("%%time\ntotal = sum(range(10))")
    assert timed.source == "\ntotal = sum(range(10))"
    bash = strip_magics("%%bash\necho hi\nls")
    assert bash.source == "\n\n"
    assert "with the whole cell" in bash.notes[0].message


def test_assignment_magics():
    clean = strip_magics("files = !ls\nt = %timeit -o sum([1])\nz = 3")
    assert clean.source == "\n\nz = 3"
