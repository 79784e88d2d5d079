"""The step graph: cycles and a deterministic topological order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(order: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as ``[a, b, ..., a]`` (each depends on the next), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for parent in sorted(upstream.get(node, ())):
            if state.get(parent) == 1:
                return [*path[path.index(parent) :], parent]
            if parent not in state:
                found = visit(parent)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in order:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(order: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm; among ready steps the one earliest in ``order`` goes first."""
    position = {name: index for index, name in enumerate(order)}
    remaining = {name: set(upstream.get(name, ())) for name in order}
    result: list[str] = []
    while remaining:
        ready = sorted((name for name, parents in remaining.items() if not parents), key=position.__getitem__)
        if not ready:
            raise ValueError("the step graph has a cycle")
        chosen = ready[0]
        result.append(chosen)
        del remaining[chosen]
        for parents in remaining.values():
            parents.discard(chosen)
    return result


def transitive_reduction(upstream: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Only the edges not implied by longer paths: the DAG a person draws."""

    def ancestors(node: str, seen: set[str]) -> set[str]:
        for parent in upstream.get(node, ()):
            if parent not in seen:
                seen.add(parent)
                ancestors(parent, seen)
        return seen

    reduced: dict[str, list[str]] = {}
    for node, parents in upstream.items():
        implied: set[str] = set()
        for parent in parents:
            implied |= ancestors(parent, set())
        reduced[node] = sorted(set(parents) - implied)
    return reduced
