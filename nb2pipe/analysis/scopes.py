"""Name facts of nested scopes (functions, classes, lambdas, comprehensions): what a function
or class body reads from the scopes around it, binds, and changes in place when it runs
(by the rules in mutations.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from nb2pipe.analysis.mutations import call_mutations, statement_mutations
from nb2pipe.analysis.syntax import child_nodes, target_names


@dataclass(frozen=True)
class FunctionFacts:
    """What calling a function defined in the notebook reads and changes."""

    name: str
    params: tuple[str, ...]
    deferred_reads: frozenset[str]
    mutated_globals: frozenset[str]
    assigned_globals: frozenset[str]
    mutated_params: frozenset[str]
    is_generator: bool


ScopeKind = Literal["function", "class", "comprehension"]
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class _Scope:
    """Loads, stores and mutations in one function/class/lambda/comprehension body; the free
    names of the scopes nested in it count as its loads."""

    kind: ScopeKind
    parent: _Scope | None = None
    #: a function's parameters; a comprehension's loop targets
    params: frozenset[str] = frozenset()
    loads: set[str] = field(default_factory=set)
    stores: set[str] = field(default_factory=set)
    declared_global: set[str] = field(default_factory=set)
    declared_nonlocal: set[str] = field(default_factory=set)
    mutated: set[str] = field(default_factory=set)
    #: walrus targets anywhere inside, nested scopes included: a comprehension's bind the
    #: scope that holds it
    walrus: set[str] = field(default_factory=set)
    is_generator: bool = False

    def local_names(self) -> set[str]:
        return (self.stores - self.declared_global - self.declared_nonlocal) | self.params

    def free_names(self) -> set[str]:
        """Names this scope reads from the scopes around it."""
        if self.kind == "class":
            return self.loads - (self.stores - self.declared_global)
        if self.kind == "comprehension":
            return self.loads - self.params
        return self.loads - self.local_names() | (self.declared_global & self.loads)


def _summarise(root: _Scope, code: Iterable[ast.AST]) -> _Scope:
    """Scan ``code`` as the body of ``root``, folding every nested scope's free names into the
    scope around it. The walk keeps its own stack, so 300 nested lambdas or a 1,000-long
    chain of calls are no deeper for it than one."""
    scopes: list[_Scope] = []
    stack: list[tuple[ast.AST, _Scope]] = [(node, root) for node in code]
    while stack:
        node, scope = stack.pop()
        nested = _nested_scope(node, scope, stack)
        if nested is not None:
            scopes.append(nested)
            continue
        _note(node, scope)
        if not isinstance(node, ast.Global | ast.Nonlocal | ast.Import | ast.ImportFrom):
            stack.extend((child, scope) for child in child_nodes(node))
    # Scopes were found outside-in, so in reverse each is complete before its parent reads it.
    for nested in reversed(scopes):
        parent = nested.parent
        assert parent is not None
        parent.loads |= nested.free_names()
        parent.walrus |= nested.walrus
        if nested.kind == "comprehension":
            parent.stores |= nested.walrus
    return root


def _nested_scope(node: ast.AST, scope: _Scope, stack: list[tuple[ast.AST, _Scope]]) -> _Scope | None:
    """For a node that opens a scope: queue what runs in ``scope`` (decorators, defaults,
    bases) and the body in the new scope, which is returned; None for other nodes."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        outer: list[ast.expr | None] = [*node.args.defaults, *node.args.kw_defaults]
        body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
        nested = _Scope("function", scope, frozenset(_arg_names(node.args)))
        if not isinstance(node, ast.Lambda):
            scope.stores.add(node.name)
            outer += node.decorator_list
    elif isinstance(node, ast.ClassDef):
        scope.stores.add(node.name)
        outer = [*node.decorator_list, *node.bases, *(kw.value for kw in node.keywords)]
        body = list(node.body)
        nested = _Scope("class", scope)
    elif isinstance(node, _COMPREHENSIONS):
        targets = {name.id for generator in node.generators for name in target_names(generator.target)}
        outer = []
        body = _comprehension_code(node)
        nested = _Scope("comprehension", scope, frozenset(targets))
    else:
        return None
    stack.extend((expr, scope) for expr in outer if expr is not None)
    stack.extend((child, nested) for child in body)
    return nested


def _comprehension_code(node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> list[ast.AST]:
    code: list[ast.AST] = []
    for generator in node.generators:
        code.append(generator.iter)
        code += generator.ifs
    code += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    return code


def _note(node: ast.AST, scope: _Scope) -> None:
    """What ``node`` itself does to names in ``scope`` (its children are scanned apart)."""
    if isinstance(node, ast.Name):
        (scope.loads if isinstance(node.ctx, ast.Load) else scope.stores).add(node.id)
    elif isinstance(node, ast.Call):
        scope.mutated.update(name.id for name in call_mutations(node))
    elif isinstance(node, ast.stmt):
        scope.mutated.update(name.id for name in statement_mutations(node))
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            scope.loads.add(node.target.id)  # `x += 1` reads x before rebinding it
        elif isinstance(node, ast.Global):
            scope.declared_global.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            scope.declared_nonlocal.update(node.names)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            scope.stores.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    elif isinstance(node, ast.Yield | ast.YieldFrom):
        scope.is_generator = True
    elif isinstance(node, ast.NamedExpr):
        scope.walrus.add(node.target.id)
    elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
        scope.stores.add(node.name)
    elif isinstance(node, ast.MatchMapping) and node.rest:
        scope.stores.add(node.rest)


def _arg_names(args: ast.arguments) -> list[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        every.append(args.vararg)
    if args.kwarg:
        every.append(args.kwarg)
    return [arg.arg for arg in every]


def _function_scope(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> _Scope:
    body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    return _summarise(_Scope("function", params=frozenset(_arg_names(node.args))), body)


def function_free_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Names a function body reads from enclosing scopes when it is called."""
    return _function_scope(node).free_names()


def lambda_free_names(node: ast.Lambda) -> set[str]:
    return function_free_names(node)


def class_free_names(node: ast.ClassDef) -> set[str]:
    """Names a class body and its methods read from outside the class."""
    return _summarise(_Scope("class"), node.body).free_names()


def comprehension_free_names(node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> set[str]:
    targets = frozenset(name.id for generator in node.generators for name in target_names(generator.target))
    return _summarise(_Scope("comprehension", params=targets), _comprehension_code(node)).free_names()


def function_facts(node: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionFacts:
    scope = _function_scope(node)
    local = scope.local_names()
    return FunctionFacts(
        name=node.name,
        params=tuple(_arg_names(node.args)),
        deferred_reads=frozenset(scope.free_names()),
        mutated_globals=frozenset(scope.mutated - local),
        assigned_globals=frozenset(scope.declared_global & scope.stores),
        mutated_params=frozenset(scope.mutated & scope.params),
        is_generator=scope.is_generator,
    )


def class_facts(node: ast.ClassDef) -> FunctionFacts:
    return FunctionFacts(
        name=node.name,
        params=(),
        deferred_reads=frozenset(class_free_names(node)),
        mutated_globals=frozenset(),
        assigned_globals=frozenset(),
        mutated_params=frozenset(),
        is_generator=False,
    )
