"""Seeded mutants of the example notebooks, for the fuzz test (tests/test_fuzz.py) and
bench/fuzz.py; tests/support/mutant_judge.py compiles them and judges what happened.

Mutant ``number`` of ``seed`` is rebuilt from those two numbers alone (its own
``random.Random``), so a failure names its mutant fully and any one can be replayed:
``python bench/fuzz.py --seed S --show N``. Each mutant applies 1-3 mutations drawn from
:data:`MUTATORS` (tags, cells, sources, parameters, metadata) and, now and then, one from
:data:`FILE_MUTATORS` (broken JSON, bytes that are not UTF-8, a folder in place of the file).
The values and places mutations draw are in tests/support/mutation_values.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.mutation_values import (
    METADATA_KEYS,
    METADATA_VALUES,
    METRICS_LINES,
    NOTEBOOK_PATHS,
    ODD_PARAMETERS,
    SNIPPETS,
    Notebook,
    cells_of,
    compile_options,
    dict_cells,
    fill_name,
    pick_cell,
    random_tag,
    role_cell,
    source_text,
    tags_of,
    typo,
    weighted,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

_BASES: list[tuple[str, Notebook]] = []


def bases() -> list[tuple[str, Notebook]]:
    """The example notebooks, read once per process; mutants copy them."""
    if not _BASES:
        for path in sorted(EXAMPLES.glob("*.ipynb")):
            _BASES.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
    return _BASES


@dataclass(frozen=True)
class Mutant:
    """One mutated notebook and how to compile it.

    ``content`` is the file's text, or bytes when the file is not UTF-8, or ``None`` when a
    folder stands where the notebook should be. ``file_edge`` mutants go through
    ``compile_notebook`` with real files; the rest through ``compile_source``.
    """

    seed: int
    number: int
    base: str
    path: str
    mutations: tuple[str, ...]
    content: str | bytes | None
    options: dict[str, Any] = field(default_factory=dict)
    file_edge: bool = False
    #: file edge only: outputs exist before the compile; where ``output=`` points (see OUTPUT_KINDS)
    previous_outputs: bool = False
    output_kind: str = "default"

    def describe(self, limit: int = 1500) -> str:
        if self.content is None:
            shown = "<a folder, not a file>"
        else:
            shown = self.content if isinstance(self.content, str) else repr(self.content)
            if len(shown) > limit and isinstance(self.content, str):
                shown = _compact(self.content)
            if len(shown) > limit:
                shown = shown[:limit] + f"... <{len(shown) - limit} more characters>"
        how = f"compile_source {self.options}"
        if self.file_edge:
            files = (
                f"{'outputs there before' if self.previous_outputs else 'no outputs before'}, output {self.output_kind}"
            )
            how = f"compile_notebook {self.options}, {files}"
        return (
            f"seed {self.seed}, mutant {self.number} (from {self.base}, path {self.path!r}, {how}; "
            f"replay: python bench/fuzz.py --seed {self.seed} --show {self.number})\n"
            f"  mutations: {'; '.join(self.mutations)}\n  notebook: {shown}"
        )


def _compact(text: str) -> str:
    """The notebook JSON on as few characters as it takes (for reports), else as it is."""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):
        return text


Mutator = Callable[[random.Random, Notebook], str]


# --- tag mutations ---------------------------------------------------------------------------


def add_tag(rng: random.Random, nb: Notebook) -> str:
    cell = pick_cell(rng, nb, code_only=False)
    tags = tags_of(cell, create=True) if cell is not None else None
    if tags is None:
        return "add tag: no cell takes one"
    tag = random_tag(rng, nb)
    tags.insert(rng.randint(0, len(tags)), tag)
    return f"add tag {tag[:80]!r} to cell {cells_of(nb).index(cell)}"


def remove_tag(rng: random.Random, nb: Notebook) -> str:
    tagged = [(i, c) for i, c in enumerate(cells_of(nb)) if isinstance(c, dict) and tags_of(c)]
    if not tagged:
        return "remove tag: none tagged"
    index, cell = rng.choice(tagged)
    tags = tags_of(cell) or []
    removed = tags.pop(rng.randrange(len(tags)))
    return f"remove tag {removed!r} from cell {index}"


def duplicate_tag(rng: random.Random, nb: Notebook) -> str:
    tagged = [(i, c) for i, c in enumerate(cells_of(nb)) if isinstance(c, dict) and tags_of(c)]
    if not tagged:
        return "duplicate tag: none tagged"
    index, cell = rng.choice(tagged)
    tags = tags_of(cell) or []
    tag = rng.choice(tags)
    tags.append(tag)
    return f"duplicate tag {tag!r} on cell {index}"


def move_tag(rng: random.Random, nb: Notebook) -> str:
    tagged = [c for c in cells_of(nb) if isinstance(c, dict) and tags_of(c)]
    target = pick_cell(rng, nb, code_only=False)
    if not tagged or target is None or tags_of(target) is None:
        return "move tag: nothing to move"
    source = rng.choice(tagged)
    tags = tags_of(source) or []
    tag = tags.pop(rng.randrange(len(tags)))
    (tags_of(target, create=True) or []).append(tag)
    return f"move tag {tag!r} from cell {cells_of(nb).index(source)} to cell {cells_of(nb).index(target)}"


def typo_tag(rng: random.Random, nb: Notebook) -> str:
    tagged = [c for c in cells_of(nb) if isinstance(c, dict) and tags_of(c)]
    if not tagged:
        return "typo tag: none tagged"
    tags = tags_of(rng.choice(tagged)) or []
    at = rng.randrange(len(tags))
    before = tags[at]
    tags[at] = typo(rng, before) if isinstance(before, str) else "x"
    return f"typo tag {before!r} -> {tags[at]!r}"


def clear_tags(rng: random.Random, nb: Notebook) -> str:
    for cell in dict_cells(nb):
        tags = tags_of(cell)
        if tags is not None:
            tags.clear()
    return "clear every tag"


def odd_tag_container(rng: random.Random, nb: Notebook) -> str:
    cell = pick_cell(rng, nb)
    if cell is None:
        return "odd tags: no cell"
    where = rng.choice(("tags", "metadata"))
    if where == "tags":
        value = rng.choice(("step:a", [1, 2], [None], {"a": 1}, [["step:a"]], [], None, ["step:a", 3], [True]))
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = {}
        cell["metadata"]["tags"] = value
    else:
        value = rng.choice(([], "x", None, 5, {"tags": None}, {"tags": {}}))
        cell["metadata"] = value
    return f"cell {cells_of(nb).index(cell)} {where} = {value!r}"


# --- cell mutations --------------------------------------------------------------------------


def reorder_cells(rng: random.Random, nb: Notebook) -> str:
    cells = cells_of(nb)
    if len(cells) < 2:
        return "reorder: too few cells"
    if rng.random() < 0.3:
        rng.shuffle(cells)
        return "shuffle all cells"
    a, b = rng.sample(range(len(cells)), 2)
    cells.insert(b, cells.pop(a))
    return f"move cell {a} to {b}"


def delete_cells(rng: random.Random, nb: Notebook) -> str:
    cells = cells_of(nb)
    if not cells:
        return "delete: no cells"
    count = min(len(cells), rng.choice((1, 1, 1, 2, 3, len(cells))))
    dropped = sorted(rng.sample(range(len(cells)), count), reverse=True)
    for index in dropped:
        del cells[index]
    return f"delete cells {sorted(dropped)}"


def duplicate_cell(rng: random.Random, nb: Notebook) -> str:
    cells = cells_of(nb)
    if not cells:
        return "duplicate: no cells"
    index = rng.randrange(len(cells))
    to = index + 1 if rng.random() < 0.5 else rng.randint(0, len(cells))
    cells.insert(to, json.loads(json.dumps(cells[index])))
    return f"duplicate cell {index} at {to}"


def change_cell_type(rng: random.Random, nb: Notebook) -> str:
    cells = dict_cells(nb)
    if not cells:
        return "cell type: no cells"
    cell = rng.choice(cells)
    new = rng.choice(("code", "code", "markdown", "raw", "heading", None, 5, "Code"))
    before = cell.get("cell_type")
    cell["cell_type"] = new
    if new == "code":
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
    return f"cell {cells_of(nb).index(cell)} type {before!r} -> {new!r}"


def replace_source(rng: random.Random, nb: Notebook) -> str:
    cell = pick_cell(rng, nb)
    if cell is None:
        return "replace source: no cell"
    family = rng.choice(sorted(SNIPPETS))
    snippet = fill_name(rng, nb, rng.choice(SNIPPETS[family]))
    if rng.random() < 0.5:
        cell["source"] = snippet
    else:
        where = rng.choice(("append", "prepend"))
        cell["source"] = source_text(cell) + "\n" + snippet if where == "append" else snippet + "\n" + source_text(cell)
    return f"{family} source in cell {cells_of(nb).index(cell)}: {snippet[:100]!r}"


def insert_cell(rng: random.Random, nb: Notebook) -> str:
    cells = cells_of(nb)
    family = rng.choice(sorted(SNIPPETS))
    snippet = fill_name(rng, nb, rng.choice(SNIPPETS[family]))
    tags = [random_tag(rng, nb)] if rng.random() < 0.6 else []
    cell = {"cell_type": "code", "metadata": {"tags": tags}, "source": snippet, "outputs": [], "execution_count": None}
    at = rng.randint(0, len(cells))
    cells.insert(at, cell)
    if "cells" not in nb:
        nb["cells"] = cells
    return f"insert {family} cell {tags} at {at}: {snippet[:100]!r}"


def odd_source_shape(rng: random.Random, nb: Notebook) -> str:
    cell = pick_cell(rng, nb, code_only=False)
    if cell is None:
        return "source shape: no cell"
    text = source_text(cell)
    shape = rng.choice(("lines", "lines without newlines", "int", "null", "missing", "non-str part", "empty"))
    if shape == "lines":
        cell["source"] = text.splitlines(keepends=True)
    elif shape == "lines without newlines":
        cell["source"] = text.splitlines()
    elif shape == "int":
        cell["source"] = 5
    elif shape == "null":
        cell["source"] = None
    elif shape == "missing":
        cell.pop("source", None)
    elif shape == "non-str part":
        cell["source"] = [text, 7]
    else:
        cell["source"] = ""
    return f"source of cell {cells_of(nb).index(cell)} as {shape}"


def odd_execution_count(rng: random.Random, nb: Notebook) -> str:
    cell = pick_cell(rng, nb)
    if cell is None:
        return "execution_count: no cell"
    value = rng.choice((1.5, "3", -1, True, 10**30, None, 0, float("nan"), [1], {"n": 1}))
    cell["execution_count"] = value
    if rng.random() < 0.3:
        cell["outputs"] = rng.choice((None, "x", [1], [{"output_type": "bogus"}]))
    return f"cell {cells_of(nb).index(cell)} execution_count = {value!r}"


def many_steps(rng: random.Random, nb: Notebook) -> str:
    """A chain of tens of steps, each reading the one before it (and now and then all of
    the last few): compile time must grow gently with the size of a notebook."""
    cells = cells_of(nb)
    count = rng.randint(30, 80)
    at = rng.randint(0, len(cells))
    for i in range(count):
        reads = " + ".join(f"chain_{j}" for j in range(max(0, i - rng.choice((1, 1, 5))), i)) or "1"
        source = f"chain_{i} = {reads}"
        cell = {"cell_type": "code", "metadata": {"tags": [f"step:chain-{i}"]}, "source": source, "outputs": []}
        cells.insert(at + i, cell)
    if "cells" not in nb:
        nb["cells"] = cells
    return f"insert a chain of {count} steps at {at}"


# --- parameters, metrics, metadata ------------------------------------------------------------


def odd_parameters(rng: random.Random, nb: Notebook) -> str:
    cell = role_cell(rng, nb, "parameters", ("parameters", "pipeline-parameters"))
    lines = [fill_name(rng, nb, rng.choice(ODD_PARAMETERS)) for _ in range(rng.randint(1, 3))]
    cell["source"] = ("\n".join(lines) if rng.random() < 0.5 else source_text(cell) + "\n" + "\n".join(lines)).strip()
    return f"parameters: {' | '.join(lines)[:160]!r}"


def odd_metrics(rng: random.Random, nb: Notebook) -> str:
    cell = role_cell(rng, nb, "metrics", ("metrics", "pipeline-metrics"))
    lines = [fill_name(rng, nb, rng.choice(METRICS_LINES)) for _ in range(rng.randint(1, 3))]
    cell["source"] = "\n".join(lines)
    return f"metrics: {' | '.join(lines)[:160]!r}"


def odd_notebook_metadata(rng: random.Random, nb: Notebook) -> str:
    metadata = nb.get("metadata")
    if not isinstance(metadata, dict):
        metadata = nb["metadata"] = {}
    section_name = rng.choice(("kubeflow_notebook", "nb2pipe"))
    if rng.random() < 0.25:
        value: Any = rng.choice(([], "str", 5, None, True, 1.5, [{"pipeline_name": "p"}]))
        metadata[section_name] = value
        return f"metadata.{section_name} = {value!r}"
    section = metadata.get(section_name)
    if not isinstance(section, dict):
        section = metadata[section_name] = {}
    key = rng.choice(METADATA_KEYS)
    value = rng.choice(METADATA_VALUES.get(key, METADATA_VALUES["*"]))
    if key == "steps_defaults" and rng.random() < 0.4:
        value = [random_tag(rng, nb) for _ in range(rng.randint(1, 3))]
    section[key] = value
    return f"metadata.{section_name}.{key} = {value!r}"[:200]


def odd_kernel(rng: random.Random, nb: Notebook) -> str:
    metadata = nb.get("metadata")
    if not isinstance(metadata, dict):
        metadata = nb["metadata"] = {}
    choice = rng.choice(("R", "kernelspec str", "language_info int", "julia", "no kernelspec"))
    if choice == "R":
        metadata["kernelspec"] = {"display_name": "R", "language": "R", "name": "ir"}
        metadata["language_info"] = {"name": "R"}
    elif choice == "julia":
        metadata["kernelspec"] = {"display_name": "Julia 1.10", "language": "julia", "name": "julia-1.10"}
    elif choice == "kernelspec str":
        metadata["kernelspec"] = "python3"
    elif choice == "language_info int":
        metadata["language_info"] = 5
    else:
        metadata.pop("kernelspec", None)
    return f"kernel: {choice}"


def odd_top_level(rng: random.Random, nb: Notebook) -> str:
    what = rng.choice(("nbformat", "nbformat", "nbformat_minor", "cells", "metadata", "worksheets"))
    pools: dict[str, tuple[Any, ...]] = {
        "nbformat": ("abc", 3, 5, None, "4", [4], float("inf"), -1, True, 4.5, 10**30, {}),
        "nbformat_minor": ("x", -1, None, 10**30),
        "cells": ({}, None, "x", 5, [None]),
        "metadata": ([], "x", None, 5),
        "worksheets": ([], [{"cells": []}], "x", None),
    }
    value = rng.choice(pools[what])
    nb[what] = value
    return f"top-level {what} = {value!r}"


MUTATORS: tuple[tuple[Mutator, int], ...] = (
    (add_tag, 14),
    (remove_tag, 4),
    (duplicate_tag, 3),
    (move_tag, 4),
    (typo_tag, 4),
    (clear_tags, 1),
    (odd_tag_container, 2),
    (reorder_cells, 4),
    (delete_cells, 4),
    (duplicate_cell, 3),
    (change_cell_type, 3),
    (replace_source, 14),
    (insert_cell, 6),
    (odd_source_shape, 2),
    (odd_execution_count, 2),
    (many_steps, 1),
    (odd_parameters, 8),
    (odd_metrics, 3),
    (odd_notebook_metadata, 6),
    (odd_kernel, 1),
    (odd_top_level, 2),
)


# --- file mutations: the text or the file itself -----------------------------------------------

FileMutator = Callable[[random.Random, str], tuple[str | bytes | None, str]]


def _truncate(rng: random.Random, text: str) -> tuple[str, str]:
    at = rng.randrange(len(text)) if text else 0
    return text[:at], f"truncate JSON at {at} of {len(text)}"


def _tiny(rng: random.Random, text: str) -> tuple[str, str]:
    value = rng.choice(("", " \n", "null", "[]", '"notebook"', "1e400", "{}", "NaN", '{"cells": []}', "{" * 3))
    return value, f"whole file {value!r}"


def _deep_json(rng: random.Random, text: str) -> tuple[str, str]:
    depth = rng.choice((1000, 100_000))
    return '{"cells": ' + "[" * depth + "]" * depth + "}", f"JSON nested {depth} deep"


def _bom(rng: random.Random, text: str) -> tuple[str, str]:
    return "\ufeff" + text, "UTF-8 byte-order mark"


def _not_utf8(rng: random.Random, text: str) -> tuple[bytes, str]:
    how = rng.choice(("latin-1", "utf-16", "stray byte", "cut multibyte"))
    if how == "latin-1":
        return text.replace('"source": "', '"source": "caf\u00e9 ', 1).encode("latin-1", "replace"), "latin-1 bytes"
    if how == "utf-16":
        return text.encode("utf-16", "surrogatepass"), "UTF-16 file"
    raw = text.encode("utf-8", "surrogatepass")
    at = rng.randrange(len(raw)) if raw else 0
    insert = b"\xff\xfe" if how == "stray byte" else b"\xc3"
    return raw[:at] + insert + raw[at:], f"{how} at byte {at}"


def _nul(rng: random.Random, text: str) -> tuple[str, str]:
    at = rng.randrange(len(text)) if text else 0
    return text[:at] + "\x00" + text[at:], f"NUL character at {at}"


def _folder(rng: random.Random, text: str) -> tuple[None, str]:
    return None, "a folder where the notebook should be"


FILE_MUTATORS: tuple[tuple[FileMutator, int], ...] = (
    (_truncate, 5),
    (_tiny, 3),
    (_deep_json, 1),
    (_bom, 1),
    (_not_utf8, 3),
    (_nul, 1),
    (_folder, 1),
)
#: where a file-edge mutant's output goes: the default, out.yaml, or paths that must be refused
OUTPUT_KINDS: tuple[tuple[str, int], ...] = (
    ("default", 50),
    ("out.yaml", 30),
    ("a folder", 7),
    ("the notebook", 7),
    ("in a missing folder", 6),
)
#: share of mutants that also get one file mutation (all go through the file edge)
FILE_MUTATION_RATE = 0.06
#: every this many mutants goes through compile_notebook with real files
FILE_EDGE_EVERY = 10


def make_mutant(seed: int, number: int, *, file_level: bool | None = None) -> Mutant:
    """Mutant ``number`` of ``seed``: the same two numbers always give the same mutant.
    ``file_level`` forces (True) or forbids (False) a file mutation."""
    rng = random.Random(f"{seed}:{number}")
    base, original = rng.choice(bases())
    nb: Notebook = json.loads(json.dumps(original))
    count = rng.choices((1, 2, 3), weights=(5, 3, 2))[0]  # mostly one: more mutants reach the later stages
    mutations = [mutator(rng, nb) for mutator in (weighted(rng, MUTATORS) for _ in range(count))]
    path = rng.choice(NOTEBOOK_PATHS) if rng.random() < 0.15 else base
    content: str | bytes | None = json.dumps(nb, indent=rng.choice((None, 1)), ensure_ascii=rng.random() < 0.5)
    drawn = rng.random() < FILE_MUTATION_RATE  # drawn even when forced: the rest of the mutant stays the same
    with_file_mutation = drawn if file_level is None else file_level
    if with_file_mutation:
        content, description = weighted(rng, FILE_MUTATORS)(rng, content)
        mutations.append(description)
    file_edge = with_file_mutation or number % FILE_EDGE_EVERY == 0
    options = compile_options(rng)
    previous_outputs, output_kind = rng.random() < 0.5, weighted(rng, OUTPUT_KINDS)
    return Mutant(
        seed, number, base, path, tuple(mutations), content, options, file_edge, previous_outputs, output_kind
    )
