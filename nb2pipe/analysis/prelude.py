"""Each step runs only the prelude it needs.

The prelude (imports and functions cells) is split into statements. Statements that are
not imports always run, since they may set things up; an import runs only where the step,
or a statement that runs, uses a name it binds. A step that never touches scikit-learn does
not pay a second to import it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

from nb2pipe.analysis.magics import gc_paused, parse_code
from nb2pipe.analysis.names import CellFacts, analyze_statements
from nb2pipe.analysis.syntax import imported_module_names
from nb2pipe.ir import CodeBlock


@dataclass(frozen=True)
class PreludeUnit:
    block: CodeBlock
    binds: frozenset[str]
    reads: frozenset[str]
    is_import: bool


def prelude_units(blocks: Iterable[CodeBlock]) -> list[PreludeUnit]:
    """Statement-level pieces of the prelude, in order, with the names they bind and read."""
    units: list[PreludeUnit] = []
    for block in blocks:
        with gc_paused():
            units += _block_units(block)
    return units


def _block_units(block: CodeBlock) -> list[PreludeUnit]:
    units: list[PreludeUnit] = []
    tree = parse_code(block.source)
    lines = block.source.splitlines()
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom) and not any(a.name == "*" for a in stmt.names):
            for alias in stmt.names:
                single = (
                    ast.ImportFrom(module=stmt.module, names=[alias], level=stmt.level)
                    if isinstance(stmt, ast.ImportFrom)
                    else ast.Import(names=[alias])
                )
                name = alias.asname or alias.name.split(".")[0]
                code = CodeBlock(
                    block.cell, block.execution_count, block.first_line + stmt.lineno - 1, ast.unparse(single)
                )
                units.append(PreludeUnit(code, frozenset({name}), frozenset(), True))
            continue
        start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        source = "\n".join(lines[start - 1 : stmt.end_lineno])
        facts = analyze_statements([stmt], block.source, lines)
        reads = frozenset(e.name for e in facts.events if e.kind == "read")
        binds = frozenset(e.name for e in facts.events if e.kind == "bind")
        code = CodeBlock(block.cell, block.execution_count, block.first_line + start - 1, source)
        units.append(PreludeUnit(code, binds, reads, False))
    return units


def prelude_for(
    units: list[PreludeUnit], needed: Iterable[str], used_anywhere: Iterable[str] = ()
) -> tuple[CodeBlock, ...]:
    """The prelude statements a step runs, given the prelude names it uses. An import whose
    name nothing in the notebook uses (``used_anywhere``: what any step or prelude statement
    reads from the prelude) is there for its side effects, such as registering a pandas
    accessor or a plugin: every step runs it, as Kale runs every import in every step."""
    wanted = set(needed)
    for unit in units:
        if not unit.is_import:
            wanted |= unit.reads
    used = wanted | set(used_anywhere)
    return tuple(unit.block for unit in units if not unit.is_import or unit.binds & wanted or not unit.binds & used)


def imported_modules(blocks: Iterable[CodeBlock]) -> tuple[str, ...]:
    """Top-level modules that code imports anywhere (functions included), sorted."""
    found: set[str] = set()
    for block in blocks:
        if "import" in block.source:  # no import statement is spelled without the word: spare the parse
            with gc_paused():
                found |= imported_module_names(parse_code(block.source).body)
    return _listed(found)


def modules_of(cells: Iterable[CellFacts]) -> tuple[str, ...]:
    """:func:`imported_modules` from analysed cells, without parsing them again."""
    return _listed(set().union(*(facts.modules for facts in cells)))


def _listed(found: set[str]) -> tuple[str, ...]:
    return tuple(sorted(found - {"__future__"}))
