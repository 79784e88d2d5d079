"""IPython-only syntax (``!cmd``, ``%magic``, ``%%cell`` magics, ``obj?``) out of cell code.

Stripped lines are replaced by blank lines (``pass`` inside blocks) so that line numbers stay
those of the notebook. ``pip install`` lines become the step's packages instead.
"""

from __future__ import annotations

import ast
import gc
import io
import shlex
import textwrap
import tokenize
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: Cell magics whose body is still Python that runs once: keep the body.
_PYTHON_BODY_CELL_MAGICS = frozenset({"time", "capture", "prun"})
_PIP_FLAGS = frozenset(
    {
        "-q",
        "--quiet",
        "-qq",
        "-U",
        "--upgrade",
        "--user",
        "--no-cache-dir",
        "--pre",
        "-I",
        "--ignore-installed",
        "--force-reinstall",
        "--no-warn-script-location",
        "--no-deps",
        "--disable-pip-version-check",
        "-v",
        "--verbose",
        "--upgrade-strategy",
    }
)
_PIP_OPTIONS_WITH_VALUE = frozenset(
    {
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-t",
        "--target",
        "-e",
        "--editable",
        "--progress-bar",
    }
)


@dataclass(frozen=True)
class MagicNote:
    line: int
    code: str
    message: str
    hint: str


@dataclass(frozen=True)
class CleanSource:
    source: str
    packages: tuple[str, ...]
    notes: tuple[MagicNote, ...]


def strip_magics(source: str) -> CleanSource:
    """Remove IPython syntax, keeping line numbers; ``pip install`` becomes packages."""
    if _parses(source):
        return CleanSource(source, (), ())
    return _strip(source)


def parse_cell(source: str) -> tuple[CleanSource, ast.Module]:
    """A cell's code without IPython syntax, and its parse (one parse when it is plain
    Python). Raises SyntaxError when what is left is not Python."""
    tree = _parse_or_none(source)
    if tree is not None:
        return CleanSource(source, (), ()), tree
    clean = _strip(source)
    return clean, parse_code(clean.source)


def parse_code(source: str) -> ast.Module:
    """``ast.parse``, where code nested too deeply for CPython's parser is a SyntaxError at
    its line too: CPython raises RecursionError or MemoryError for it, with no line."""
    try:
        return _parse(source)
    except (RecursionError, MemoryError):
        pass  # out of the handler, so that the exhausted stack and memory are free again
    raise SyntaxError(
        "this code is nested too deeply for Python's parser; break the expression into several statements",
        ("<cell>", _too_deep_line(source), None, None),
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector while a big AST is built or walked: its nodes hold no
    cycles, and collections over millions of them cost more than the parse itself."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _parse(source: str) -> ast.Module:
    with gc_paused():
        return ast.parse(source)


def _parse_or_none(source: str) -> ast.Module | None:
    try:
        return _parse(source)
    except (SyntaxError, RecursionError, MemoryError):
        return None


def _too_deep_line(source: str) -> int | None:
    """The first line of the statement CPython cannot build: each logical line is parsed on
    its own, longest first (the deep one is long), until one fails the same way."""
    spans: list[tuple[int, int, int, bool]] = []  # (-tokens, first line, last line, ends with ':')
    first, count, last_token = 0, 0, ""
    skipped = (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING)
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in skipped:
                continue
            if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                if count:
                    spans.append((-count, first, token.start[0], last_token == ":"))
                count = 0
                continue
            first = first if count else token.start[0]
            count += 1
            last_token = token.string
    except (tokenize.TokenError, SyntaxError):
        pass  # the statements read so far are still worth trying
    lines = source.split("\n")
    for _, start, end, header in sorted(spans):
        text = textwrap.dedent("\n".join(lines[start - 1 : end])) + ("\n    pass" if header else "")
        try:
            _parse(text)
        except (RecursionError, MemoryError):
            return start
        except SyntaxError:
            continue
    return None


def _strip(source: str) -> CleanSource:
    lines = source.split("\n")
    notes: list[MagicNote] = []
    packages: list[str] = []
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].strip()[2:].split(" ", 1)[0]
        if magic in _PYTHON_BODY_CELL_MAGICS:
            lines[first] = ""
            notes.append(
                MagicNote(
                    first + 1,
                    "magic-stripped",
                    f"cell magic %%{magic} removed; its body runs",
                    "the pipeline runs the code once, without the magic",
                )
            )
        else:
            notes.append(
                MagicNote(
                    first + 1,
                    "magic-stripped",
                    f"cell magic %%{magic} removed with the whole cell",
                    "rewrite the cell in Python if the pipeline needs what it does",
                )
            )
            return CleanSource("\n".join("" for _ in lines), (), tuple(notes))
    index = 0
    while index < len(lines):
        line = lines[index]
        command = _magic_command(line)
        if command is None:
            index += 1
            continue
        # A trailing backslash continues the magic on the next line.
        span = [index]
        while lines[span[-1]].rstrip().endswith("\\") and span[-1] + 1 < len(lines):
            span.append(span[-1] + 1)
        text = " ".join(lines[i].strip().rstrip("\\") for i in span)
        command = _magic_command(text) or command
        found, problems = _pip_requirements(command)
        packages.extend(found)
        for problem in problems:
            notes.append(
                MagicNote(
                    index + 1, "pip-option-ignored", problem, "declare what the step needs with a packages:PKG tag"
                )
            )
        if found:
            notes.append(
                MagicNote(
                    index + 1,
                    "pip-to-packages",
                    f"'{command.strip()}' removed; the step installs {', '.join(found)}",
                    "",
                )
            )
        elif not problems:
            notes.append(
                MagicNote(
                    index + 1,
                    "magic-stripped",
                    f"IPython line '{text.strip()}' removed",
                    "the pipeline runs plain Python; use subprocess or os for shell work",
                )
            )
        indent = line[: len(line) - len(line.lstrip())]
        for i in span:
            lines[i] = indent + "pass" if indent else ""
        index = span[-1] + 1
    return CleanSource("\n".join(lines), tuple(dict.fromkeys(packages)), tuple(notes))


def _parses(source: str) -> bool:
    return _parse_or_none(source) is not None


def _magic_command(line: str) -> str | None:
    """The IPython command on a line (``!ls`` -> ``ls``), or None for plain Python."""
    stripped = line.strip()
    if not stripped:
        return None
    if stripped[0] in "!%":
        return stripped.lstrip("!%")
    if stripped[0] == "?" or (stripped.endswith("?") and not _parses(stripped)):
        return stripped.strip("?")
    return _assignment_magic(stripped)


def _assignment_magic(stripped: str) -> str | None:
    """``files = !ls`` / ``t = %timeit f()``: names, ``=``, then ``!`` or ``%``."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(stripped).readline) if t.string.strip()]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    # Expect NAME (, NAME)* then "=": the names alternate with commas.
    equals = next((i for i, token in enumerate(tokens) if token.string == "="), None)
    if equals is None or equals == 0:
        return None
    for offset, token in enumerate(tokens[:equals]):
        expected_name = offset % 2 == 0
        if expected_name != (token.type == tokenize.NAME) or (not expected_name and token.string != ","):
            return None
    rest = tokens[equals + 1 :]
    if rest and rest[0].string in ("!", "%"):
        return stripped[rest[0].end[1] :]
    return None


def _pip_requirements(command: str) -> tuple[list[str], list[str]]:
    """Requirements of a ``pip install`` command, and what could not be carried over."""
    try:
        words = shlex.split(command)
    except ValueError:
        return [], []
    if words[:2] in (["pip", "install"], ["pip3", "install"]):
        args = words[2:]
    elif len(words) >= 4 and words[0].startswith("python") and words[1:4] == ["-m", "pip", "install"]:
        args = words[4:]
    elif words[:2] in (["conda", "install"], ["mamba", "install"]):
        return [], [f"'{command}' removed: conda installs are not carried into the pipeline"]
    else:
        return [], []
    from packaging.requirements import InvalidRequirement, Requirement

    requirements: list[str] = []
    problems: list[str] = []
    skip_next = False
    for word in args:
        if skip_next:
            skip_next = False
            continue
        if word in _PIP_OPTIONS_WITH_VALUE:
            problems.append(f"pip option {word} is not carried into the pipeline")
            skip_next = True
            continue
        if word.startswith("-"):
            if word.split("=", 1)[0] not in _PIP_FLAGS:
                problems.append(f"pip option {word} is not carried into the pipeline")
            continue
        if "{" in word or "$" in word:
            problems.append(f"pip argument {word} uses a notebook variable, which the pipeline cannot expand")
            continue
        try:
            Requirement(word)
        except InvalidRequirement:
            problems.append(f"pip argument {word} is not a package requirement (local paths are not carried)")
            continue
        requirements.append(word)
    return requirements, problems
