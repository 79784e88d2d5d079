"""The parameters cell's literals become typed pipeline inputs."""

from __future__ import annotations

import pytest

from tests.support.nbtools import code, codes, diagnostics_of, notebook, plan_of


def test_types_defaults_and_annotations():
    plan = plan_of(
        notebook(
            code(
                '"""Settings."""\nn = 3\nrate: float = 1\nname = "x"\nflag = False\nitems = [1, 2]\nconf = {"a": 1}',
                "parameters",
            ),
            code("print(n, rate, name, flag, items, conf)", "step:use"),
        )
    )
    assert [(p.name, p.type, p.default) for p in plan.parameters] == [
        ("n", "int", 3),
        ("rate", "float", 1.0),
        ("name", "str", "x"),
        ("flag", "bool", False),
        ("items", "list", [1, 2]),
        ("conf", "dict", {"a": 1}),
    ]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("x = (1, 2)", "tuple values"),
        ("x = len('a')", "not assigned a literal"),
        ("a, b = 1, 2", "only assign literals"),
        ("x: int = 'a'", "declared int but assigned a str"),
        ("x: set = 1", "not one of"),
    ],
)
def test_invalid_parameters(line: str, needle: str):
    (diagnostic,) = diagnostics_of(notebook(code(f"ok = 1\n{line}", "parameters"), code("y = 1", "step:a")))
    assert diagnostic.code == "invalid-parameter"
    assert needle in diagnostic.message
    assert diagnostic.location.line == 2


def test_metrics_cell_accepts_names_and_print_and_rejects_the_rest():
    plan = plan_of(notebook(code("a = 1\nb = 2", "step:s"), code("a\nprint(b)", "pipeline-metrics")))
    assert plan.step("s").metrics == ("a", "b")
    diagnostics = diagnostics_of(notebook(code("a = 1", "step:s"), code("a + 1\nmissing", "metrics")))
    assert codes(diagnostics) == ["invalid-metrics", "undefined-metric"]
