"""Code at the limits: very deep or very long code that CPython compiles compiles here too,
with the same analysis as its shallow form; code too deep for CPython's parser is a
syntax-error diagnostic at its cell and line, never a traceback; a big cell is analysed
correctly (its speed is bench/big_cells.py's business)."""

from __future__ import annotations

import ast

import pytest
import yaml

from nb2pipe.analysis.names import analyze_cell
from nb2pipe.compiler import compile_source
from nb2pipe.ir import PipelinePlan
from tests.support.nbtools import code, diagnostics_of, markdown, notebook, notebook_text, plan_of

SETUP = "a = [1]\nb = [2]\nc = 3\n\ndef f(value):\n    return value\n"


def _sum(terms: int) -> str:
    return " + ".join(["a"] * terms)


#: (deep form, shallow form): each pair reads and binds the same names.
DEEP_AND_SHALLOW = {
    "1000-term sum": (f"x = {_sum(1000)}", "x = a + a"),
    "300 nested lambdas": ("x = " + "lambda: " * 300 + "a", "x = lambda: a"),
    "1000-long attribute chain": ("x = a" + ".real" * 1000, "x = a.real"),
    "attribute chain as a target": ("a" + ".real" * 1000 + " = c", "a.real = c"),
    "150 nested calls": ("x = " + "f(" * 150 + "a" + ")" * 150, "x = f(a)"),
    "150 nested subscripts": ("x = a" + "[0" * 150 + "]" * 150, "x = a[0]"),
    "150 nested lists": ("x = " + "[" * 150 + "a" + "]" * 150, "x = [a]"),
    "1000 nots": ("x = " + "not " * 1000 + "a", "x = not a"),
    "500 conditional expressions": ("x = " + "a if b else " * 500 + "c", "x = a if b else c"),
    "1000-long method chain": ("x = a" + ".copy()" * 700, "x = a.copy()"),
    "100 nested comprehensions": ("x = " + "[" * 100 + "v for v in a" + "]" * 100, "x = [v for v in a]"),
    "lambdas in a comprehension": ("x = [" + "lambda: " * 200 + "q for q in a]", "x = [lambda: q for q in a]"),
    "deep code in a function": (f"def g():\n    return {_sum(1000)}\nx = g()", "def g():\n    return a\nx = g()"),
    "deep lambdas in a class": (
        "class K:\n    m = " + "lambda self: " * 200 + "b\nx = K()",
        "class K:\n    m = lambda self: b\nx = K()",
    ),
}


def _two_steps(source: str) -> dict:
    return notebook(code(SETUP, "step:make"), markdown("# use"), code(source, "step:use"))


def _flow(plan: PipelinePlan) -> dict[str, object]:
    use = plan.step("use")
    return {
        "inputs": sorted((i.name, i.source_step) for i in use.inputs),
        "outputs": sorted(o.name for o in plan.step("make").outputs),
        "finals": use.finals,
        "replays": [r.source.split("\n")[0][:20] for r in use.replays],
    }


@pytest.mark.parametrize("deep, shallow", DEEP_AND_SHALLOW.values(), ids=DEEP_AND_SHALLOW.keys())
def test_deep_code_has_the_analysis_of_its_shallow_form(deep: str, shallow: str):
    deep_flow = _flow(plan_of(_two_steps(deep)))
    assert deep_flow == _flow(plan_of(_two_steps(shallow)))
    assert deep_flow["inputs"]  # each form reads something from the first step


def test_deep_code_compiles_end_to_end_with_kfp_and_the_dsl():
    cells = [code(SETUP, "step:make")]
    cells += [code(deep, f"step:deep-{index}") for index, (deep, _) in enumerate(DEEP_AND_SHALLOW.values())]
    compiled = compile_source(notebook_text(notebook(*cells)), "deep.ipynb", dsl_yaml_name="deep.yaml")
    assert len(compiled.plan.steps) == len(DEEP_AND_SHALLOW) + 1
    executors = yaml.safe_load(compiled.yaml)["deploymentSpec"]["executors"]
    command = executors["exec-deep-0"]["container"]["command"]
    assert any(f"x = {_sum(1000)}" in part for part in command)  # the step runs the cell as written
    assert compiled.dsl is not None and "def deep_0(" in compiled.dsl
    ast.parse(compiled.dsl)  # the DSL file is Python


def test_long_alias_chain_changed_at_its_end_changes_its_start():
    def chain(length: int) -> str:
        aliases = "".join(f"v{i} = v{i - 1}\n" for i in range(1, length))
        return f"v0 = []\n{aliases}v{length - 1}.append(1)\n"

    def inputs(length: int) -> list[tuple[str, str | None]]:
        plan = plan_of(notebook(code(chain(length), "step:make"), code("print(v0)", "step:use")))
        return sorted((i.name, i.source_step) for i in plan.step("use").inputs)

    assert inputs(3000) == inputs(2) == [("v0", "make")]


def test_long_chain_of_functions_calling_each_other_reads_what_the_last_one_reads():
    functions = "".join(f"def f{i}():\n    return f{i - 1}()\n" for i in range(1, 3000))
    plan = plan_of(
        notebook(
            code(f"a = 1\ndef f0():\n    return a\n{functions}", "step:make"),
            code("y = f2999()", "step:use"),
        )
    )
    use = plan.step("use")
    assert [(i.name, i.source_step) for i in use.inputs] == [("a", "make")]
    assert len(use.replays) == 3000


def test_a_thousand_steps_in_a_chain():
    cells = [code("v0 = 0", "step:s0")] + [code(f"v{i} = v{i - 1} + 1", f"step:s{i}") for i in range(1, 1200)]
    plan = plan_of(notebook(*cells))
    assert [s.name for s in plan.steps] == [f"s{i}" for i in range(1200)]
    assert plan.step("s1199").upstream == ("s1198",)


TOO_DEEP = {
    "a 100,000-term sum (RecursionError)": "x = " + _sum(100_000),
    "3,000 nested lambdas (MemoryError)": "f = " + "lambda: " * 3000 + "a",
    "a block header 5,000 nots deep": "if " + "not " * 5000 + "c:\n    pass",
    "300 nested parentheses (SyntaxError)": "x = " + "(" * 300 + "a" + ")" * 300,
}


@pytest.mark.parametrize("source", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_code_too_deep_for_python_is_a_syntax_error_at_its_cell_and_line(source: str):
    cell = f"y = 1\n# the next statement is too deep\n{source}\nz = 2"
    (diagnostic,) = diagnostics_of(notebook(code(SETUP, "step:make"), markdown("# use"), code(cell, "step:use")))
    assert diagnostic.code == "syntax-error"
    assert (diagnostic.location.cell, diagnostic.location.line) == (2, 3)
    assert "skip" in diagnostic.hint


def test_code_too_deep_in_the_prelude_or_beside_magics_is_a_syntax_error():
    deep = "x = " + _sum(100_000)
    diagnostics = diagnostics_of(
        notebook(
            code(f"import math\n{deep}", "imports"),
            code(f"!ls\n%time y = 1\n{deep}", "step:use"),
        )
    )
    assert [(d.code, d.location.cell, d.location.line) for d in diagnostics] == [
        ("syntax-error", 0, 2),
        ("syntax-error", 1, 3),
    ]
    assert "nested too deeply" in diagnostics[0].message


def test_big_cell_of_assignments_is_analysed_statement_by_statement():
    size = 20_000
    chain = "x0 = 0\n" + "".join(f"x{i} = x{i - 1} + 1\n" for i in range(1, size))
    facts = analyze_cell(chain)
    assert [e.kind for e in facts.events].count("bind") == size
    assert [e.name for e in facts.events if e.kind == "read"] == [f"x{i}" for i in range(size - 1)]
    assert facts.events[-1].line == size

    rebinding = "v = 0\nrows = []\n" + "v = v + 1\nrows.append(v)\n" * (size // 2)
    plan = plan_of(
        notebook(
            code(chain, "step:chain"),
            code(rebinding, "step:rebind"),
            code(f"print(x0, x{size - 1}, v, rows)", "step:use"),
        )
    )
    assert sorted((i.name, i.source_step) for i in plan.step("use").inputs) == [
        ("rows", "rebind"),
        ("v", "rebind"),
        ("x0", "chain"),
        (f"x{size - 1}", "chain"),
    ]
    assert plan.step("rebind").inputs == ()
    assert len(plan.step("chain").finals) == size


def test_blocks_and_functions_nested_as_deep_as_python_allows():
    keywords = ["if c:", "for v in a:", "with f(a) as w:", "while c:"]
    blocks = "\n".join("    " * i + keywords[i % 4] for i in range(98)) + "\n" + "    " * 98 + "x = b\n"
    functions = "\n".join("    " * i + f"def g{i}():" for i in range(98)) + "\n" + "    " * 98 + "return b\ny = g0()\n"
    for source in (blocks, functions):
        use = plan_of(_two_steps(source)).step("use")
        assert ("b", "make") in [(i.name, i.source_step) for i in use.inputs]
