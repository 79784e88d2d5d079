"""Data-flow analysis: what each step needs, from whom, and what it hands on."""

from __future__ import annotations

from nb2pipe.ir import PipelinePlan
from tests.support.nbtools import code, codes, diagnostics_of, notebook, plan_of, upstream


def inputs(plan: PipelinePlan, step: str) -> dict[str, str | None]:
    return {i.name: i.source_step for i in plan.step(step).inputs}


def outputs(plan: PipelinePlan, step: str) -> list[str]:
    return [o.name for o in plan.step(step).outputs]


def test_reads_become_inputs_and_defs_read_later_become_outputs():
    plan = plan_of(
        notebook(
            code("a = 1\nunused = 2", "step:one"),
            code("b = a + 1", "step:two"),
            code("print(a, b)", "step:three"),
        )
    )
    assert outputs(plan, "one") == ["a"]
    assert outputs(plan, "two") == ["b"]
    assert inputs(plan, "three") == {"a": "one", "b": "two"}
    assert upstream(plan) == {"one": [], "two": ["one"], "three": ["one", "two"]}


def test_rebinding_in_a_later_step_wins_for_steps_below_it():
    plan = plan_of(
        notebook(
            code("x = 1", "step:first"),
            code("x = 2", "step:second"),
            code("print(x)", "step:reader"),
        )
    )
    assert inputs(plan, "reader") == {"x": "second"}
    assert outputs(plan, "first") == []
    assert upstream(plan)["reader"] == ["second"]
    assert upstream(plan)["second"] == []


def test_augmented_assignment_reads_then_rebinds():
    plan = plan_of(
        notebook(
            code("total = 10", "step:start"),
            code("total += 5", "step:add"),
            code("print(total)", "step:show"),
        )
    )
    assert inputs(plan, "add") == {"total": "start"}
    assert outputs(plan, "add") == ["total"]
    assert inputs(plan, "show") == {"total": "add"}


def test_in_place_mutation_passes_the_mutated_value_on():
    plan = plan_of(
        notebook(
            code("import pandas as pd\nitems = []", "step:make"),
            code("df = pd.DataFrame({'a': [1, None]})", "step:frame"),
            code("items.append(3)\ndf.dropna(inplace=True)", "step:mutate"),
            code("print(items, df)", "step:use"),
        )
    )
    assert inputs(plan, "mutate") == {"df": "frame", "items": "make"}
    assert sorted(outputs(plan, "mutate")) == ["df", "items"]
    assert inputs(plan, "use") == {"df": "mutate", "items": "mutate"}


def test_item_and_attribute_assignment_and_fit_are_mutations():
    plan = plan_of(
        notebook(
            code(
                "from sklearn.linear_model import LinearRegression\nd = {}\nm = LinearRegression()\n"
                "import types\nns = types.SimpleNamespace()",
                "step:make",
            ),
            code("d['k'] = 1\nns.value = 2\nm.fit([[0], [1]], [0, 1])", "step:change"),
            code("print(d, ns, m.coef_)", "step:use"),
        )
    )
    assert inputs(plan, "use") == {"d": "change", "m": "change", "ns": "change"}


def test_look_only_method_calls_do_not_mutate():
    plan = plan_of(
        notebook(
            code("import pandas as pd\ndf = pd.DataFrame({'a': [1]})", "step:make"),
            code("df.head()\ndf.describe()\nsummary = df.mean()", "step:look"),
            code("print(df)", "step:use"),
        )
    )
    assert outputs(plan, "look") == []
    assert inputs(plan, "use") == {"df": "make"}
    assert upstream(plan)["use"] == ["make"]


def test_function_defined_in_one_step_is_rerun_where_used_with_its_free_names():
    plan = plan_of(
        notebook(
            code("scale = 3\ndef times(x):\n    return x * scale", "step:define"),
            code("value = times(2)", "step:use"),
        )
    )
    use = plan.step("use")
    assert inputs(plan, "use") == {"scale": "define"}
    assert [r.source for r in use.replays] == ["def times(x):\n    return x * scale"]
    assert use.replays[0].cell == 0 and use.replays[0].first_line == 2
    assert outputs(plan, "define") == ["scale"]


def test_class_defined_in_one_step_is_rerun_where_used():
    plan = plan_of(
        notebook(
            code("import math\nclass Circle:\n    def area(self, r):\n        return math.pi * r * r", "step:define"),
            code("a = Circle().area(2)", "step:use"),
        )
    )
    sources = [r.source for r in plan.step("use").replays]
    assert sources == ["import math", "class Circle:\n    def area(self, r):\n        return math.pi * r * r"]
    assert plan.step("use").inputs == ()


def test_imports_inside_a_step_are_replayed_not_shipped():
    plan = plan_of(
        notebook(
            code("import json as j\nfrom os import path", "step:one"),
            code("print(j.dumps(1), path.sep)", "step:two"),
        )
    )
    assert outputs(plan, "one") == []
    assert [r.source for r in plan.step("two").replays] == ["import json as j", "from os import path"]
    assert upstream(plan)["two"] == []


def test_module_calls_are_not_mutations_of_modules():
    plan = plan_of(
        notebook(
            code("import numpy as np", "imports"),
            code("np.random.seed(0)\nx = np.zeros(3)", "step:one"),
            code("import random\nrandom.seed(1)", "step:two"),
            code("print(x)", "step:three"),
        )
    )
    assert inputs(plan, "three") == {"x": "one"}
    assert upstream(plan)["two"] == []


def test_global_in_a_function_and_del():
    plan = plan_of(
        notebook(
            code("counter = 0\ndef bump():\n    global counter\n    counter += 1", "step:define"),
            code("bump()", "step:call"),
            code("print(counter)", "step:use"),
        )
    )
    assert inputs(plan, "call") == {"counter": "define"}
    assert inputs(plan, "use") == {"counter": "call"}

    diagnostics = diagnostics_of(
        notebook(
            code("x = 1", "step:make"),
            code("del x", "step:drop"),
            code("print(x)", "step:use"),
        )
    )
    assert codes(diagnostics) == ["undefined-name"]
    assert "deletes it" in diagnostics[0].hint


def test_comprehension_variables_are_local_and_free_names_are_read():
    plan = plan_of(
        notebook(
            code("data = [1, 2, 3]\nthreshold = 1", "step:make"),
            code("big = [x for x in data if x > threshold]\nsquares = {x: x * x for x in data}", "step:filter"),
        )
    )
    assert inputs(plan, "filter") == {"data": "make", "threshold": "make"}


def test_function_mutating_its_argument_mutates_the_passed_name():
    plan = plan_of(
        notebook(
            code("def add_one(seq):\n    seq.append(1)", "functions"),
            code("values = []", "step:make"),
            code("add_one(values)", "step:change"),
            code("print(values)", "step:use"),
        )
    )
    assert inputs(plan, "use") == {"values": "change"}


def test_shuffle_mutates_its_argument():
    plan = plan_of(
        notebook(
            code("import random\nimport numpy as np", "imports"),
            code("deck = list(range(5))\narr = np.arange(5)", "step:make"),
            code("random.shuffle(deck)\nnp.random.shuffle(arr)", "step:shuffle"),
            code("print(deck, arr)", "step:use"),
        )
    )
    assert inputs(plan, "use") == {"arr": "shuffle", "deck": "shuffle"}


def test_conditional_binding_still_takes_the_earlier_value_when_needed():
    plan = plan_of(
        notebook(
            code("limit = 5", "step:make"),
            code("import os\nif os.environ.get('BIG'):\n    limit = 10\nprint(limit)", "step:maybe"),
            code("print(limit)", "step:use"),
        )
    )
    assert inputs(plan, "maybe") == {"limit": "make"}
    assert inputs(plan, "use") == {"limit": "maybe"}


def test_binding_in_both_branches_is_definite():
    plan = plan_of(
        notebook(
            code("flag = True", "step:make"),
            code("if flag:\n    mode = 'a'\nelse:\n    mode = 'b'\nprint(mode)", "step:choose"),
        )
    )
    assert inputs(plan, "choose") == {"flag": "make"}


def test_independent_steps_have_no_edge_between_them():
    plan = plan_of(
        notebook(
            code("base = 2", "step:prepare"),
            code("a = base * 1", "step:left"),
            code("b = base * 2", "step:right"),
            code("print(a + b)", "step:join"),
        )
    )
    assert upstream(plan) == {"prepare": [], "left": ["prepare"], "right": ["prepare"], "join": ["left", "right"]}


def test_explicit_after_adds_an_edge_without_data():
    plan = plan_of(
        notebook(
            code("open('flag.txt', 'w').write('x')", "step:writer"),
            code("print(open('flag.txt').read())", "step:reader", "after:writer"),
        )
    )
    assert upstream(plan)["reader"] == ["writer"]
    assert plan.step("reader").after == ("writer",)


def test_parameters_become_inputs_of_the_steps_that_read_them():
    plan = plan_of(
        notebook(
            code("rate = 0.1\nepochs: int = 3", "parameters"),
            code("steps = epochs * 2", "step:one"),
            code("print(rate, steps)", "step:two"),
        )
    )
    assert inputs(plan, "one") == {"epochs": None}
    assert inputs(plan, "two") == {"rate": None, "steps": "one"}
    types = {i.name: i.parameter_type for i in plan.step("two").inputs}
    assert types["rate"] == "float"


def test_prelude_names_are_available_everywhere_without_artifacts():
    plan = plan_of(
        notebook(
            code("import math\nSEED = 3", "imports"),
            code("def area(r):\n    return math.pi * r * r", "functions"),
            code("a = area(SEED)", "step:one"),
            code("b = area(2)", "step:two"),
        )
    )
    assert plan.step("one").inputs == () and plan.step("two").inputs == ()
    assert [b.cell for b in plan.prelude] == [0, 1]


def test_metrics_are_logged_by_the_step_whose_value_reaches_the_metrics_cell():
    plan = plan_of(
        notebook(
            code("accuracy = 0.5", "step:first"),
            code("accuracy = 0.9\nloss = 0.1", "step:second"),
            code("accuracy\nprint(loss)", "metrics"),
        )
    )
    assert plan.step("second").metrics == ("accuracy", "loss")
    assert plan.step("first").metrics == ()


def test_step_that_reads_and_changes_a_name_gets_distinct_argument_names():
    plan = plan_of(
        notebook(
            code("x = [1]", "step:make"),
            code("x.append(2)", "step:grow"),
            code("print(x)", "step:use"),
        )
    )
    grow = plan.step("grow")
    assert [(i.name, i.arg) for i in grow.inputs] == [("x", "x_in")]
    assert [(o.name, o.arg) for o in grow.outputs] == [("x", "x")]


def test_untagged_cells_continue_the_step_above():
    plan = plan_of(
        notebook(
            code("a = 1", "step:one"),
            code("b = a + 1"),
            code("print(b)", "step:two"),
        )
    )
    assert [c.cell for c in plan.step("one").cells] == [0, 1]
    assert inputs(plan, "two") == {"b": "one"}


def test_notebook_without_step_tags_is_one_step_named_after_the_file():
    plan = plan_of(
        notebook(
            code("n = 3", "parameters"),
            code("import math"),
            code("x = math.sqrt(n)"),
        )
    )
    assert [s.name for s in plan.steps] == ["nb"]
    assert inputs(plan, "nb") == {"n": None}


def test_changing_an_alias_or_a_loop_element_changes_the_container():
    plan = plan_of(
        notebook(
            code(
                "from sklearn.linear_model import LinearRegression\nfrom sklearn.tree import DecisionTreeRegressor\n"
                "models = {'lr': LinearRegression(), 'tree': DecisionTreeRegressor()}\nchosen = [1]",
                "step:make",
            ),
            code("for name, m in models.items():\n    m.fit([[0], [1]], [0, 1])", "step:fit"),
            code("alias = chosen\nalias.append(2)", "step:grow"),
            code("print(models, chosen)", "step:use"),
        )
    )
    assert inputs(plan, "use") == {"chosen": "grow", "models": "fit"}
