"""The step graph: cycles and a deterministic topological order."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def find_cycle(order: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as ``[a, b, ..., a]`` (each depends on the next), or None. Depth first with an
    explicit stack, so a chain of thousands of steps is no problem."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in order:
        if start in state:
            continue
        state[start] = 1
        path = [start]
        pending = [iter(sorted(upstream.get(start, ())))]
        while pending:
            parent = next(pending[-1], None)
            if parent is None:
                pending.pop()
                state[path.pop()] = 2
            elif state.get(parent) == 1:
                return [*path[path.index(parent) :], parent]
            elif parent not in state:
                state[parent] = 1
                path.append(parent)
                pending.append(iter(sorted(upstream.get(parent, ()))))
    return None


def topological_order(order: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm; among ready steps the one earliest in ``order`` goes first."""
    position = {name: index for index, name in enumerate(order)}
    waiting = {name: set(upstream.get(name, ())) for name in order}
    downstream: dict[str, list[str]] = {}
    for name, parents in waiting.items():
        for parent in parents:
            downstream.setdefault(parent, []).append(name)
    ready = [position[name] for name, parents in waiting.items() if not parents]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        chosen = order[heapq.heappop(ready)]
        result.append(chosen)
        for child in downstream.get(chosen, ()):
            waiting[child].discard(chosen)
            if not waiting[child]:
                heapq.heappush(ready, position[child])
    if len(result) != len(waiting):
        raise ValueError("the step graph has a cycle")
    return result


def transitive_reduction(upstream: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Only the edges not implied by longer paths: the DAG a person draws."""

    def ancestors(node: str, seen: set[str]) -> set[str]:
        pending = [node]
        while pending:
            for parent in upstream.get(pending.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    pending.append(parent)
        return seen

    reduced: dict[str, list[str]] = {}
    for node, parents in upstream.items():
        implied: set[str] = set()
        for parent in parents:
            implied |= ancestors(parent, set())
        reduced[node] = sorted(set(parents) - implied)
    return reduced
