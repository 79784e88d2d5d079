"""Step-graph helpers."""

from __future__ import annotations

from nb2pipe.analysis.graph import find_cycle, topological_order, transitive_reduction


def test_topological_order_prefers_notebook_order_among_ready_steps():
    order = ["a", "b", "c", "d"]
    upstream = {"a": ["c"], "b": [], "c": [], "d": ["a", "b"]}
    assert topological_order(order, upstream) == ["b", "c", "a", "d"]


def test_find_cycle_returns_the_path():
    assert find_cycle(["a", "b", "c"], {"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle(["a", "b"], {"a": [], "b": ["a"]}) is None


def test_transitive_reduction_drops_implied_edges():
    upstream = {"a": [], "b": ["a"], "c": ["a", "b"], "d": ["a", "c"]}
    assert transitive_reduction(upstream) == {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]}
