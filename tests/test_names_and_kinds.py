"""Notebook names KFP refuses (``_x``, ``données``, nb2pipe's own ``nb2pipe_report``) travel
under valid argument names and arrive under their own; values reached from a module are
values; library types of boosting data; values that cannot leave their process; and
undefined-name hints that never suggest the name itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from nb2pipe.compiler import compile_notebook, compile_source
from nb2pipe.emit.step_source import step_function
from nb2pipe.identifiers import is_kfp_identifier
from nb2pipe.ir import METRICS_OUTPUT, REPORT_OUTPUT, PipelinePlan
from nb2pipe.runners.local import run_notebook
from nb2pipe.runners.run_folder import load_variables
from tests.support.kfpspec import parse_ir
from tests.support.nbtools import code, diagnostics_of, notebook, notebook_text, plan_of, write_notebook

#: names KFP refuses as they are, each bound to a distinct number
AWKWARD = {
    "_x": 2,
    "données": 5,
    "größe": 11,
    "数据": 13,
    "x\u0304": 17,  # x̄: x and a combining macron
    "_cache": 41,
}
#: valid names that nb2pipe, or kfp, already uses for an argument of their own
RESERVED = {REPORT_OUTPUT: 19, METRICS_OUTPUT: 23, "Output": 31, "spec": 37, "executor_input": 29}
#: ...and the outputs of nb2pipe's own tasks, which a run's result recognises by name
RESERVED |= {"registered_model": 47, "deployment": 53, "is_drift": 59, "explanation": 61}
#: valid names that collide with what an awkward name would become
NEIGHBOURS = {"x": 3, "donnees": 7, "cache": 43}
ALL = AWKWARD | RESERVED | NEIGHBOURS


def handing_on(values: dict[str, int]) -> dict:
    """Step make binds every name; step use reads them all; a metrics cell in each step."""
    make = "\n".join(f"{name} = {value}" for name, value in values.items()) + "\nbase = 1"
    use = "total = " + " + ".join(values) + "\nfirst = x * 100 + _x"
    return notebook(
        code(make, "step:make"),
        code("base", "metrics"),
        code("_x = _x * 10", "step:grow"),
        code(use, "step:use"),
        code("total\nfirst", "metrics"),
    )


def arguments(plan: PipelinePlan, step: str) -> list[str]:
    return [a.name for a in step_function(plan.step(step), plan).arguments]


def test_awkward_and_reserved_names_get_valid_distinct_arguments_and_keep_their_own_names():
    plan = plan_of(handing_on(ALL))
    for step in ("make", "grow", "use"):
        names = arguments(plan, step)
        assert all(is_kfp_identifier(name) for name in names), names
        assert len(names) == len(set(names)), names
    make, grow, use = plan.step("make"), plan.step("grow"), plan.step("use")
    outputs = {o.name: o.arg for o in make.outputs}
    assert set(outputs) == set(ALL)  # every value leaves under the notebook's name...
    # ...and a valid name that is free keeps its argument, whatever awkward name maps near it
    assert {n: outputs[n] for n in NEIGHBOURS} == {n: n for n in NEIGHBOURS}
    assert outputs["données"] not in ("donnees", "données") and outputs["_cache"] != "cache"
    assert outputs[REPORT_OUTPUT] != REPORT_OUTPUT and outputs[METRICS_OUTPUT] != METRICS_OUTPUT
    assert outputs["Output"] != "Output"
    assert all(outputs[name] != name for name in ("registered_model", "deployment", "is_drift", "explanation"))
    # a value that comes in and goes out again is two arguments
    assert {(i.name, i.source_output) for i in grow.inputs} == {("_x", outputs["_x"])}
    assert [i.arg for i in grow.inputs] != [o.arg for o in grow.outputs]
    # every input reads the key its producer writes
    keys = {(s.name, o.name): o.arg for s in plan.steps for o in s.outputs}
    for item in use.inputs:
        assert item.source_output == keys[(item.source_step, item.name)]
    assert {i.name: i.source_step for i in use.inputs}["_x"] == "grow"


def test_the_step_function_maps_notebook_names_to_their_arguments():
    plan = plan_of(handing_on(ALL))
    source = step_function(plan.step("use"), plan).source
    call = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call))
    inputs = next(k.value for k in call.keywords if k.arg == "inputs")
    assert isinstance(inputs, ast.Dict)
    mapping = {k.value: v.id for k, v in zip(inputs.keys, inputs.values, strict=True)}  # type: ignore[union-attr]
    assert mapping == {i.name: i.arg for i in plan.step("use").inputs}
    assert set(mapping) == set(ALL)


def test_compiled_yaml_is_valid_and_deterministic():
    text = notebook_text(handing_on(ALL))
    first = compile_source(text, "nb.ipynb").yaml
    assert compile_source(text, "nb.ipynb").yaml == first
    spec, _ = parse_ir(first)
    produced = set(spec.components["comp-make"].output_definitions.artifacts)
    assert produced >= {"x", "donnees", "cache"} and REPORT_OUTPUT in produced
    for name, item in spec.root.dag.tasks["use"].inputs.artifacts.items():
        assert is_kfp_identifier(name)
        assert item.task_output_artifact.output_artifact_key in set(
            spec.components[f"comp-{item.task_output_artifact.producer_task}"].output_definitions.artifacts
        )


def test_the_readable_dsl_compiles_with_a_step_argument_named_spec(tmp_path: Path):
    path = write_notebook(tmp_path, handing_on(ALL), "names.ipynb")
    result = compile_notebook(path, dsl=tmp_path / "names_dsl.py")
    scratch = tmp_path / "dsl"
    scratch.mkdir()
    subprocess.run([sys.executable, str(tmp_path / "names_dsl.py")], cwd=scratch, check=True, capture_output=True)
    ours, _ = parse_ir(result.output.read_text())
    theirs, _ = parse_ir((scratch / "names.pipeline.yaml").read_text())
    for component in ("comp-make", "comp-use"):
        assert set(theirs.components[component].input_definitions.artifacts) == set(
            ours.components[component].input_definitions.artifacts
        )
    body = ast.parse((tmp_path / "names_dsl.py").read_text())
    use = next(node for node in body.body if isinstance(node, ast.FunctionDef) and node.name == "use")
    assert "spec" in [a.arg for a in use.args.args]
    assert not any(isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) for node in ast.walk(use))


def test_registered_model_and_training_data_with_awkward_names_are_wired_by_their_keys():
    load = (
        "from sklearn.datasets import load_iris\nfrom sklearn.linear_model import LogisticRegression\n"
        "données, étiquettes = load_iris(return_X_y=True, as_frame=True)\nregistered_model = 1\nis_drift = 2"
    )
    nb = notebook(
        code(load, "step:load"),
        code(
            "modèle = LogisticRegression(max_iter=200)\nmodèle.fit(données, étiquettes)", "step:train", "register:iris"
        ),
        code("X_new = données.head(20)\nprint(registered_model + is_drift)", "step:score", "drift:X_new"),
    )
    compiled = compile_source(notebook_text(nb), "iris.ipynb")
    plan = compiled.plan
    keys = {(s.name, o.name): o.arg for s in plan.steps for o in s.outputs}
    (task,) = plan.lifecycle
    assert task.model.source_output == keys[("train", "modèle")] == "modele"
    assert task.example is not None and task.example.source_output == keys[("load", "données")] == "donnees"
    (drift,) = plan.drift
    assert drift.reference.source_output == "donnees" and drift.reference.name == "données"
    spec, _ = parse_ir(compiled.yaml)
    tasks = spec.root.dag.tasks
    assert tasks["register-iris"].inputs.artifacts["model"].task_output_artifact.output_artifact_key == "modele"
    assert tasks["register-iris"].inputs.artifacts["example"].task_output_artifact.output_artifact_key == "donnees"


def test_values_arrive_under_the_notebooks_own_names_in_a_real_run(tmp_path: Path):
    path = write_notebook(tmp_path, handing_on(ALL), "names.ipynb")
    result = run_notebook(path, workdir=tmp_path, keep_variables=True)
    assert result.status == "succeeded", result.failures
    grown = dict(ALL, _x=ALL["_x"] * 10)
    assert result.metrics == {
        "base": 1.0,
        "total": float(sum(grown.values())),
        "first": 320.0,
    }  # x * 100 + the grown _x
    final = load_variables(result.run_dir)
    for name, value in ALL.items():
        if name[0] != "_":  # a leading underscore marks a throwaway: not kept as a result
            assert final[name] == value, name
    assert "_x" not in final and final["total"] == sum(grown.values())
    assert result.models == () and result.endpoints == ()  # the notebook's values are no registered model


@pytest.mark.parametrize(
    "making",
    [
        "x = math.pi",
        "home = os.environ['HOME']",
        "args = sys.argv[1:]",
        "t = np.ones(3).T",
        "y = pd.read_csv('f.csv').target.values",
        "e = np.e",
        "f = os.path.join",
        "sub = importlib.import_module('json').loads",
        "lines = [line for line in open('f.csv')]\nfor row in open('f.csv'):\n    pass",
        "handle = open('f.csv')\nfile_name = handle.name",
        "text = open('f.csv').read()",
        "rows = sqlite3.connect(':memory:').execute('select 1').fetchall()",
        "CONSTANT = PI_LIKE",
        "tau = pi * 2\nhalf = pi",
        "joiner = join",
    ],
)
def test_what_is_reached_from_a_module_or_a_resource_is_a_value(making: str):
    prelude = "import importlib\nimport math\nimport os\nimport sqlite3\nimport sys\nimport numpy as np\n"
    prelude += "import pandas as pd\nfrom math import PI_LIKE, pi\nfrom os.path import join"
    name = making.split("\n")[-1].split(" =")[0].strip() if "for row" not in making else "row"
    plan = plan_of(notebook(code(prelude, "imports"), code(making, "step:make"), code(f"print({name})", "step:use")))
    assert [i.name for i in plan.step("use").inputs] == [name]


@pytest.mark.parametrize(
    "making",
    [
        "import json as m\nm2 = m",
        "m = importlib.import_module('json')",
        "m = __import__('json')",
        "import os.path as m",
    ],
)
def test_only_a_name_bound_to_the_module_itself_is_a_module(making: str):
    name = making.split("\n")[-1].split(" =")[0].split(" as ")[-1].strip()
    nb = notebook(code("import importlib", "imports"), code(making, "step:make"), code(f"print({name})", "step:use"))
    if making.startswith("import os.path"):  # an import in a step is replayed where it is used, not passed
        assert plan_of(nb).step("use").inputs == ()
        return
    (diagnostic,) = diagnostics_of(nb)
    assert diagnostic.code == "unserializable-value" and "a module" in diagnostic.message
    assert "imports cell" in (diagnostic.hint or "")


BOOSTING = "import xgboost as xgb\nimport xgboost\nimport lightgbm as lgb\nfrom xgboost import DMatrix, train"


@pytest.mark.parametrize(
    ("making", "kind"),
    [
        ("data = xgb.DMatrix([[1.0]], label=[0])", "Dataset"),
        ("data = DMatrix([[1.0]], label=[0])", "Dataset"),
        ("data = xgboost.DMatrix([[1.0]], label=[0])", "Dataset"),
        ("data = lgb.Dataset([[1.0]], label=[0])", "Dataset"),
        ("data = lgb.Dataset([[1.0]], label=[0]).construct()", "Dataset"),
        ("data = xgb.train({}, xgb.DMatrix([[1.0]]))", "Model"),
        ("data = train({}, DMatrix([[1.0]]))", "Model"),
        ("data = lgb.train({}, lgb.Dataset([[1.0]]))", "Model"),
        ("data = xgb.Booster()", "Model"),
    ],
)
def test_boosting_data_are_datasets_and_boosters_are_models(making: str, kind: str):
    plan = plan_of(notebook(code(BOOSTING, "imports"), code(making, "step:make"), code("print(data)", "step:use")))
    assert [(o.name, o.kind) for o in plan.step("make").outputs] == [("data", kind)]


def test_kales_xgboost_example_passes_dmatrices_and_a_booster():
    nb = notebook(
        code("import numpy as np\nimport xgboost as xgb\nfrom sklearn import datasets", "imports"),
        code("from sklearn.model_selection import train_test_split", "imports"),
        code("x, y = datasets.load_iris(return_X_y=True)", "step:load_transform_data"),
        code("x_trn, x_tst, y_trn, y_tst = train_test_split(x, y, test_size=.2)"),
        code("D_trn = xgb.DMatrix(x_trn, label=y_trn)\nD_tst = xgb.DMatrix(x_tst, label=y_tst)"),
        code("model = xgb.train({'num_class': 3}, D_trn, 5)", "step:train_model"),
        code("preds = model.predict(D_tst)", "step:evaluate_model"),
    )
    plan = plan_of(nb)
    kinds = {(s.name, o.name): o.kind for s in plan.steps for o in s.outputs}
    assert kinds[("load_transform_data", "D_trn")] == kinds[("load_transform_data", "D_tst")] == "Dataset"
    assert kinds[("train_model", "model")] == "Model"


@pytest.mark.parametrize(
    ("making", "what", "instead"),
    [
        ("value = xgb.QuantileDMatrix([[1.0]])", "QuantileDMatrix", "data it is built from"),
        ("value = sqlite3.connect(':memory:').cursor()", "a database cursor", "rows"),
        ("value = sqlalchemy.create_engine('sqlite://')", "a database connection", "connection string"),
        (
            "engine = sqlalchemy.create_engine('sqlite://')\nvalue = engine.connect()",
            "a database connection",
            "connect",
        ),
        ("value = sqlalchemy.orm.Session()", "a database connection", "connect"),
        ("value = asyncio.new_event_loop()", "an event loop", "coroutines"),
        ("value = weakref.ref(print)", "a weak reference", "the object"),
        ("value = ctypes.pointer(ctypes.c_int(1))", "ctypes", "bytes"),
        ("value = ctypes.CDLL(None)", "ctypes", "bytes"),
        ("value = queue.Queue()", "a queue", "items"),
        ("value = ThreadPoolExecutor()", "a worker pool", "results"),
        ("value = tf.data.Dataset.range(3).as_numpy_iterator()", "a dataset iterator", "iterate"),
        ("value = tf.summary.create_file_writer('logs')", "log writer", "directory"),
        ("value = h5py.File('x.h5', 'w')", "an open file", "path"),
        ("value = threading.local()", "thread-local", "values"),
        ("conn = sqlite3.connect(':memory:')\nvalue = conn.execute('select 1')", "a database cursor", "rows"),
        ("value = zipfile.ZipFile('a.zip').open('x.csv')", "an open file", "path"),
        ("pool = ThreadPoolExecutor()\nvalue = pool.submit(print)", "a pending result", "result()"),
    ],
)
def test_values_that_cannot_travel_are_named_with_what_to_pass_instead(making: str, what: str, instead: str):
    prelude = (
        "import asyncio\nimport ctypes\nimport queue\nimport sqlite3\nimport threading\nimport weakref\n"
        "import h5py\nimport sqlalchemy\nimport sqlalchemy.orm\nimport tensorflow as tf\nimport xgboost as xgb\n"
        "import zipfile\nfrom concurrent.futures import ThreadPoolExecutor"
    )
    nb = notebook(code(prelude, "imports"), code(making, "step:make"), code("print(value)", "step:use"))
    (diagnostic,) = diagnostics_of(nb)
    assert diagnostic.code == "unserializable-value"
    assert what in diagnostic.message
    assert "inside step 'use'" in (diagnostic.hint or "") and instead in (diagnostic.hint or "")


def test_a_requests_session_is_a_value():
    # requests.Session pickles (its __getstate__ keeps the settings, not the connections)
    plan = plan_of(
        notebook(
            code("import requests", "imports"), code("http = requests.Session()", "step:a"), code("http", "step:b")
        )
    )
    assert [i.name for i in plan.step("b").inputs] == ["http"]


@pytest.mark.parametrize(
    ("cells", "needle"),
    [
        # imported later in the same step
        ((code("plt.plot([1])", "step:a"), code("import matplotlib.pyplot as plt")), "only after this use"),
        ((code("plt.plot([1])\nimport matplotlib.pyplot as plt", "step:a"),), "cell 1, line 2"),
        # bound, then deleted, in the same step
        ((code("plt = 1\ndel plt\nprint(plt)", "step:a"),), "deletes it"),
        # deleted by an earlier step
        ((code("plt = 1", "step:a"), code("del plt", "step:b"), code("print(plt)", "step:c")), "step 'b' deletes it"),
        # imported in a skipped cell
        ((code("import matplotlib.pyplot as plt", "skip"), code("plt.plot([1])", "step:b")), "tagged skip"),
        # defined by a later step
        ((code("plt.plot([1])", "step:a"), code("import matplotlib.pyplot as plt", "step:b")), "further down"),
    ],
)
def test_an_undefined_name_is_never_suggested_as_its_own_correction(cells: tuple, needle: str):
    diagnostics = [d for d in diagnostics_of(notebook(*cells)) if d.code == "undefined-name"]
    assert diagnostics
    for diagnostic in diagnostics:
        assert "did you mean 'plt'" not in (diagnostic.hint or "")
    assert needle in (diagnostics[0].hint or "")


def test_a_typo_still_gets_its_correction():
    (diagnostic,) = diagnostics_of(notebook(code("plot = 1", "step:a"), code("print(plto)", "step:b")))
    assert diagnostic.hint == "did you mean 'plot'?"
