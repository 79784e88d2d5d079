"""Shape helpers over Python's AST shared by the analysis modules: dotted names, the parts
of assignment targets, a node's children, and the modules a block imports. Each walks with
its own stack: nothing about user code may depend on Python's recursion limit.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache


def dotted_name(node: ast.expr) -> str | None:
    """``np.random.shuffle`` for that attribute chain of plain names, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def target_names(target: ast.expr) -> Iterator[ast.Name]:
    """Plain names a target binds (``a`` and ``b`` in ``a, *b = ...``)."""
    for element in target_leaves(target):
        if isinstance(element, ast.Name):
            yield element


def target_leaves(target: ast.expr) -> Iterator[ast.expr]:
    """A target's parts left to right, through tuples, lists and stars, with an explicit
    stack: nothing about user code may depend on Python's recursion limit."""
    stack = [target]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Tuple | ast.List):
            stack.extend(reversed(node.elts))
        elif isinstance(node, ast.Starred):
            stack.append(node.value)
        else:
            yield node


def imported_module_names(body: list[ast.stmt]) -> set[str]:
    """Top-level modules that statements import, at any depth of blocks and definitions."""
    found: set[str] = set()
    for stmt in _statements(body):
        if isinstance(stmt, ast.Import):
            found.update(alias.name.split(".")[0] for alias in stmt.names)
        elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
            found.add(stmt.module.split(".")[0])
    return found


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement in blocks at any depth (imports are statements: expressions, a big
    cell's bulk, need no visit)."""
    pending = list(body)
    while pending:
        stmt = pending.pop()
        yield stmt
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(stmt, name, ()):
                # an except clause or a match case holds statements without being one
                pending.extend([child] if isinstance(child, ast.stmt) else child.body)


#: Fields that hold no names: expression contexts and operators.
_MARKER_FIELDS = frozenset({"ctx", "op", "ops"})


@cache
def _node_fields(node_type: type[ast.AST]) -> tuple[str, ...]:
    return tuple(name for name in node_type._fields if name not in _MARKER_FIELDS)


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """``ast.iter_child_nodes`` as a list, less the context and operator markers, which carry
    no names (and make up a third of a big cell's nodes)."""
    children: list[ast.AST] = []
    for name in _node_fields(type(node)):  # type: ignore[arg-type]  # mypy#11470: a class is Hashable
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            children.append(value)
        elif isinstance(value, list):
            children.extend(item for item in value if isinstance(item, ast.AST))
    return children
