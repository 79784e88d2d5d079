"""Which modules a run's fork server imports for its steps: what the notebook's code imports,
read with ``ast``, less what the notebook imports only after it sets environment variables.

A library may read the environment when it is imported (OpenBLAS and OpenMP their thread counts,
Keras its backend, TensorFlow its log level): a notebook that sets ``os.environ[...]`` and then
imports such a library means the setting for it. The server imports before any of the notebook's
code runs, so those modules are left to the step, which imports them after its own settings, as
a new interpreter would.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from nb2pipe.errors import Nb2PipeError

#: the calls of ``os.environ`` (a mapping) that change it, and ``os``'s own
_ENVIRON_CHANGES = frozenset({"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__"})
_OS_CHANGES = frozenset({"putenv", "unsetenv"})


def prelude_modules(plan: Any) -> tuple[str, ...]:
    """What the notebook's prelude imports, submodules included (``import sklearn`` alone loads
    little of scikit-learn): the plan's top-level modules, then every dotted name its import
    statements spell."""
    trees = []
    for block in plan.prelude:
        try:
            trees.append(ast.parse(block.source))
        except SyntaxError:  # a magic the analysis left in: its imports are still in plan.modules
            continue
    return imported_modules(trees, first=plan.modules)


def notebook_modules(text: str, path: str) -> tuple[str, ...]:
    """What the notebook's code cells import (cells tagged ``skip`` aside), read before the
    compile so that a server imports them while the compile runs; () where the notebook does
    not read (the compile then says why)."""
    from nb2pipe.analysis.magics import parse_cell
    from nb2pipe.notebook.read import parse_notebook

    try:
        notebook = parse_notebook(text, path)
    except Nb2PipeError:
        return ()
    trees = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and "skip" not in cell.tags:
            try:
                trees.append(parse_cell(cell.source)[1])
            except SyntaxError:
                continue
    return imported_modules(trees)


def imported_modules(trees: Sequence[ast.Module], first: Sequence[str] = ()) -> tuple[str, ...]:
    """Every dotted name the trees' import statements spell, in order (``from a.b import c`` gives
    ``a.b`` and ``a.b.c``, which may be no module: the server skips those quietly), after the
    names in ``first``; less every name imported only after the code (the trees in order) first
    changes the environment, and the top-level modules of those names."""
    before: dict[str, None] = {}
    after: dict[str, None] = {}
    changed = False
    for tree in trees:
        change = _first_environment_change(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                late = changed or (change is not None and node.lineno > change)
                (after if late else before).update(dict.fromkeys(_spelled(node)))
        changed = changed or change is not None
    left_out = {name for name in after if name not in before}
    left_out_tops = {name.split(".")[0] for name in left_out} - {name.split(".")[0] for name in before}
    found = dict.fromkeys(name for name in first if name not in left_out_tops)
    found.update(dict.fromkeys(name for name in before))
    found.update(dict.fromkeys(name for name in after if name not in left_out))
    return tuple(found)


def _spelled(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.module and not node.level:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")]
    return []


def _first_environment_change(tree: ast.Module) -> int | None:
    """The first line where the code changes ``os.environ`` (or calls ``os.putenv``/``unsetenv``)."""
    lines = [
        node.lineno for node in ast.walk(tree) if isinstance(node, ast.stmt | ast.expr) and _changes_environment(node)
    ]
    return min(lines, default=None)


def _changes_environment(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        return any(isinstance(target, ast.Subscript) and _is_environ(target.value) for target in targets)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        function = node.func
        if function.attr in _ENVIRON_CHANGES and _is_environ(function.value):
            return True
        return function.attr in _OS_CHANGES and isinstance(function.value, ast.Name) and function.value.id == "os"
    return False


def _is_environ(node: ast.AST) -> bool:
    """``os.environ``, or ``environ`` (``from os import environ``)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id == "environ"
