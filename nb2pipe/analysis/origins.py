"""Where a bound value comes from, read off the expression that binds it: a call (and to
what), another name, a literal, a lambda, an import ... Later stages choose a value's
artifact type from its origin and spot values that cannot leave a process.
"""

from __future__ import annotations

import ast
from typing import NamedTuple

from nb2pipe.analysis.syntax import dotted_name


class Origin(NamedTuple):
    """Where a bound value comes from, for choosing its artifact type and spotting values
    that cannot leave a process. (Origins and events are named tuples: a big cell makes a
    million of them, and a frozen dataclass costs four times as much to build.)

    kind: ``call`` (``path`` is the dotted callee when it is a chain of names, ``base`` the
    receiver chain's root name, ``attr`` the last attribute), ``alias`` / ``derived`` (from
    ``base``), ``literal`` (``attr`` is the type), ``lambda``, ``generator``, ``import``
    (``attr`` is ``"from"`` for a ``from`` import), ``def``, ``class`` (``path`` is its bases'
    dotted names, comma-joined), ``unknown``.
    """

    kind: str
    path: str | None = None
    base: str | None = None
    attr: str | None = None
    #: the dotted callee when the receiver is itself a call (``Model`` in ``Model().fit(X)``)
    receiver_call: str | None = None


UNKNOWN = Origin("unknown")


def value_origin(node: ast.expr) -> Origin:
    """The origin of an operand chain (``a + b * c``) is its first operand's with a base name,
    else its last one's; the chain is followed with a stack, however long it is."""
    if isinstance(node, ast.BinOp):
        if isinstance(node.left, ast.Name):  # `v + 1`, in short: a name has a base
            return Origin("alias", base=node.left.id)
    elif not isinstance(node, ast.UnaryOp):
        return _operand_origin(node)
    pending: list[ast.expr] = [node]
    while True:
        node = pending.pop()
        while isinstance(node, ast.BinOp | ast.UnaryOp):
            if isinstance(node, ast.BinOp):
                pending.append(node.right)
                node = node.left
            else:
                node = node.operand
        origin = _operand_origin(node)
        if origin.base or not pending:
            return origin


_LITERAL_TYPES = {
    ast.List: "list",
    ast.ListComp: "list",
    ast.Dict: "dict",
    ast.DictComp: "dict",
    ast.Set: "set",
    ast.SetComp: "set",
    ast.Tuple: "tuple",
    ast.JoinedStr: "str",
}


def _operand_origin(node: ast.expr) -> Origin:
    if isinstance(node, ast.Call):
        func = node.func
        attr = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        receiver = func.value if isinstance(func, ast.Attribute) else func
        base = root_name(receiver)
        receiver_call = dotted_name(receiver.func) if isinstance(receiver, ast.Call) else None
        return Origin("call", path=dotted_name(func), base=base, attr=attr, receiver_call=receiver_call)
    if isinstance(node, ast.Name):
        return Origin("alias", base=node.id)
    if isinstance(node, ast.Attribute | ast.Subscript):
        return Origin("derived", base=root_name(node))
    if isinstance(node, ast.Constant):
        return Origin("literal", attr=type(node.value).__name__)
    for node_type, type_name in _LITERAL_TYPES.items():
        if isinstance(node, node_type):
            return Origin("literal", attr=type_name)
    if isinstance(node, ast.GeneratorExp):
        return Origin("generator")
    if isinstance(node, ast.Lambda):
        return Origin("lambda")
    return UNKNOWN


def root_name(node: ast.expr) -> str | None:
    """The name at the root of a receiver chain, through calls too (``df`` in
    ``df.groupby("a").mean``)."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None
