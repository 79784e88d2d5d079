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

from nb2pipe.analysis.names import analyze_cell
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
        tree = ast.parse(block.source)
        lines = block.source.splitlines()
        for stmt in tree.body:
            if isinstance(stmt, ast.Import | ast.ImportFrom) and not any(a.name == "*" for a in stmt.names):
                for alias in stmt.names:
                    single = type(stmt)(
                        names=[alias],
                        **({"module": stmt.module, "level": stmt.level} if isinstance(stmt, ast.ImportFrom) else {}),
                    )
                    name = alias.asname or alias.name.split(".")[0]
                    code = CodeBlock(
                        block.cell, block.execution_count, block.first_line + stmt.lineno - 1, ast.unparse(single)
                    )
                    units.append(PreludeUnit(code, frozenset({name}), frozenset(), True))
                continue
            start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
            source = "\n".join(lines[start - 1 : stmt.end_lineno])
            facts = analyze_cell(source)
            reads = frozenset(e.name for e in facts.events if e.kind == "read")
            binds = frozenset(e.name for e in facts.events if e.kind == "bind")
            code = CodeBlock(block.cell, block.execution_count, block.first_line + start - 1, source)
            units.append(PreludeUnit(code, binds, reads, False))
    return units


def prelude_for(units: list[PreludeUnit], needed: Iterable[str]) -> tuple[CodeBlock, ...]:
    """The prelude statements a step runs, given the prelude names it uses."""
    wanted = set(needed)
    for unit in units:
        if not unit.is_import:
            wanted |= unit.reads
    return tuple(unit.block for unit in units if not unit.is_import or unit.binds & wanted)


def imported_modules(blocks: Iterable[CodeBlock]) -> tuple[str, ...]:
    """Top-level modules that code imports anywhere (functions included), sorted."""
    found: set[str] = set()
    for block in blocks:
        for node in ast.walk(ast.parse(block.source)):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    found.discard("__future__")
    return tuple(sorted(found))
