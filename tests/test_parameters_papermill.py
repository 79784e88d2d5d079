"""Parameters as other people's notebooks write them: papermill's ``None`` defaults become
optional pipeline inputs, values KFP cannot carry are diagnostics (never a traceback), names
KFP refuses get a pipeline input name it accepts, and a refused line is the only error."""

from __future__ import annotations

import inspect
import math
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nb2pipe.compiler import compile_source
from nb2pipe.errors import CompileError, Nb2PipeError
from nb2pipe.identifiers import is_kfp_identifier, kfp_identifier, kfp_identifiers
from nb2pipe.runners.local import run_notebook
from nb2pipe.runners.parameters import coerce_parameters
from nb2pipe.runners.run_folder import load_variables
from tests.support.lifecycle_notebooks import lifecycle_notebook
from tests.support.nbtools import code, codes, diagnostics_of, notebook, notebook_text, plan_of, write_notebook

KFP_TYPES = {"int": "NUMBER_INTEGER", "float": "NUMBER_DOUBLE", "str": "STRING", "bool": "BOOLEAN"}
KFP_TYPES |= {"list": "LIST", "dict": "STRUCT"}


def parameters_notebook(parameters: str, use: str = "print(x)") -> dict[str, Any]:
    return notebook(code(parameters, "parameters"), code(use, "step:use"))


def root_inputs(pipeline_yaml: str) -> dict[str, Any]:
    for loader in (yaml.SafeLoader, yaml.CSafeLoader):  # kfp's client reads with the first
        document = next(yaml.load_all(pipeline_yaml, Loader=loader))
    return document["root"]["inputDefinitions"]["parameters"]


def component_inputs(pipeline_yaml: str, component: str) -> dict[str, Any]:
    document = next(yaml.safe_load_all(pipeline_yaml))
    return document["components"][component]["inputDefinitions"]["parameters"]


# -- papermill's None defaults ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("x = None", "str"),
        ('x: "NoneType" = None', "str"),
        ("x: None = None", "str"),
        ("x: Optional[int] = None", "int"),
        ("x: typing.Optional[float] = None", "float"),
        ("x: int | None = None", "int"),
        ("x: None | bool = None", "bool"),
        ("x: Union[int, None] = None", "int"),
        ('x: "Optional[int]" = None', "int"),
        ("x: int = None", "int"),
        ("x: str = None", "str"),
        ('x: "str" = None', "str"),
        ("x: Optional[List[int]] = None", "list"),
        ("x: Dict[str, int] = None", "dict"),
        ("x: Any = None", "str"),
    ],
)
def test_none_defaults_become_optional_parameters_typed_by_their_annotation(line: str, kind: str):
    (parameter,) = plan_of(parameters_notebook(line)).parameters
    assert (parameter.name, parameter.type, parameter.default, parameter.optional) == ("x", kind, None, True)


def test_optional_annotations_with_a_value_are_ordinary_parameters():
    plan = plan_of(parameters_notebook("x: Optional[float] = 2\ny: List[str] = ['a']", "print(x, y)"))
    assert [(p.name, p.type, p.default, p.optional) for p in plan.parameters] == [
        ("x", "float", 2.0, False),
        ("y", "list", ["a"], False),
    ]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("x: Union[int, str] = None", "several types"),
        ("x: Optional[set] = None", "not one of"),
        ("x: 'not a type(' = None", "not a type"),
        ("x: Optional[int] = 'a'", "declared int but assigned a str"),
    ],
)
def test_annotations_that_name_no_parameter_type_are_refused(line: str, needle: str):
    (diagnostic,) = diagnostics_of(parameters_notebook(line))
    assert diagnostic.code == "invalid-parameter" and needle in diagnostic.message


def test_optional_parameters_compile_as_kfp_declares_them(tmp_path: Path):
    """The root input, the step's input and the readable DSL all say what kfp's own compiler
    says for ``def p(x: Optional[int] = None)``: isOptional, no default."""

    compiled = compile_source(
        notebook_text(parameters_notebook("msg = None\nn: Optional[int] = None\nk = 2", "print(msg, n, k)")),
        "nb.ipynb",
        dsl_yaml_name="nb.yaml",
    )

    # kfp reads real annotations and the component's source: a module of its own
    reference_source = (
        "from typing import Optional\n"
        "from kfp import dsl\n"
        "@dsl.component(base_image='python:3.11')\n"
        "def use(msg: Optional[str] = None, n: Optional[int] = None) -> None:\n"
        "    pass\n"
        "@dsl.pipeline(name='reference')\n"
        "def reference(msg: Optional[str] = None, n: Optional[int] = None, k: int = 2) -> None:\n"
        "    use(msg=msg, n=n)\n"
    )
    (tmp_path / "reference.py").write_text(reference_source, encoding="utf-8")
    reference = runpy.run_path(str(tmp_path / "reference.py"))["reference"]
    expected = reference.pipeline_spec.root.input_definitions
    from google.protobuf import json_format

    assert root_inputs(compiled.yaml) == json_format.MessageToDict(expected)["parameters"]
    assert root_inputs(compiled.yaml)["msg"] == {"isOptional": True, "parameterType": "STRING"}
    step_inputs = component_inputs(compiled.yaml, "comp-use")
    assert step_inputs["n"] == {"isOptional": True, "parameterType": "NUMBER_INTEGER"}
    assert step_inputs["k"] == {"parameterType": "NUMBER_INTEGER"}
    assert compiled.dsl is not None and "msg: Optional[str] = None" in compiled.dsl


def test_the_readable_dsl_compiles_to_the_same_inputs(tmp_path: Path):
    nb = parameters_notebook("msg = None\n_seed = 3\ngröße: Optional[float] = None", "print(msg, _seed, größe)")
    compiled = compile_source(notebook_text(nb), "nb.ipynb", dsl_yaml_name="nb.yaml")
    assert compiled.dsl is not None
    (tmp_path / "nb_dsl.py").write_text(compiled.dsl, encoding="utf-8")
    subprocess.run([sys.executable, "nb_dsl.py"], cwd=tmp_path, check=True, capture_output=True)
    theirs = root_inputs((tmp_path / "nb.yaml").read_text(encoding="utf-8"))
    assert theirs == root_inputs(compiled.yaml)
    assert set(theirs) == {"msg", "seed", "grosse"}


# -- a refused line is the only error ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "use"),
    [
        ("x = len('a')", "print(x)"),
        ("x = [1e400]", "print(x)"),
        ("x = {1: 'a'}", "y = x[1]"),
        ("a, b = 1, 2", "print(a + b)"),
        ("x: set = {1}", "print(x)"),
        ("x = {[1]: 2}", "print(x)"),
    ],
)
def test_a_refused_parameter_is_the_only_error(cell: str, use: str):
    nb = notebook(code(cell, "parameters"), code(use, "step:one"), code(use, "step:two"))
    assert codes(diagnostics_of(nb)) == ["invalid-parameter"]


def test_an_undefined_name_is_still_reported_beside_a_refused_parameter():
    diagnostics = diagnostics_of(parameters_notebook("x = len('a')", "print(x, missing)"))
    assert codes(diagnostics) == ["invalid-parameter", "undefined-name"]
    assert "'missing'" in diagnostics[1].message


# -- values KFP can and cannot carry ----------------------------------------------------------

CARRIED = [
    "0",
    "-7",
    "9007199254740992",  # 2**53: the last integer a float64 holds exactly
    "-9007199254740992",
    "1.5",
    "-0.0",
    "1e308",
    "True",
    "''",
    "'é 😀'",
    "'line one\\nline two'",  # kfp's header comment would break on the raw line break
    "'tab\\tand\\rreturn\\x85next'",
    "'nul \\x00 and escape \\x1b'",
    "'\\u2028\\ufeff'",
    "[]",
    "{}",
    "[1, 2.5, 'a', True, [], {}]",
    "{'': 1, 'a\\x00': [1, {'b': 'c'}]}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",  # 32 deep
    "[9007199254740992]",
]

REFUSED = [
    ("9007199254740993", "beyond ±2**53"),
    ("-9007199254740993", "beyond ±2**53"),
    ("[10000000000000000000000]", "beyond ±2**53"),
    ("1e400", "inf cannot be carried"),
    ("-1e400", "-inf cannot be carried"),
    ("[1e400]", "inf cannot be carried"),
    ("{1: 'a'}", "dict keys must be strings"),
    ("{'a': {2.5: 'b'}}", "dict keys must be strings"),
    ("{[1]: 2}", "cannot be built (unhashable type: 'list')"),
    ("[None]", "holding None"),
    ("{'a': None}", "holding None"),
    ("[(1, 2)]", "holding tuple"),
    ("[b'x']", "holding bytes"),
    ("[{1, 2}]", "holding set"),
    ("[1j]", "holding complex"),
    ("(1, 2)", "tuple values"),
    ("{1, 2}", "set values"),
    ("b'x'", "bytes values"),
    ("1j", "complex values"),
    ("'\\ud800'", "lone surrogate"),
    ("{'\\udc80': 1}", "lone surrogate"),
    ("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "nested more than 32 deep"),  # 33
    ("[" * 200 + "]" * 200, "nested more than 32 deep"),
    ("{'a': " * 40 + "1" + "}" * 40, "nested more than 32 deep"),
]


@pytest.mark.parametrize("literal", CARRIED)
def test_carried_literals_round_trip_through_the_compiled_yaml(literal: str):
    value = eval(literal)
    compiled = compile_source(notebook_text(parameters_notebook(f"x = {literal}")), "nb.ipynb")
    (parameter,) = compiled.plan.parameters
    definition = root_inputs(compiled.yaml)["x"]
    assert definition["parameterType"] == KFP_TYPES[parameter.type]
    assert definition["defaultValue"] == value  # numbers come back as floats: 1.0 == 1
    if isinstance(value, float):
        assert math.copysign(1, definition["defaultValue"]) == math.copysign(1, value)


@pytest.mark.parametrize(("literal", "needle"), REFUSED)
def test_literals_kfp_cannot_carry_are_diagnostics_saying_why(literal: str, needle: str):
    (diagnostic,) = diagnostics_of(parameters_notebook(f"ok = 1\nx = {literal}", "print(ok, x)"))
    assert diagnostic.code == "invalid-parameter"
    assert needle in diagnostic.message
    assert diagnostic.location.line == 2


def test_nesting_beyond_what_python_parses_is_a_syntax_error_not_a_traceback():
    deep = "[" * 5000 + "]" * 5000
    diagnostics = diagnostics_of(parameters_notebook(f"x = {deep}"))
    assert codes(diagnostics) == ["syntax-error"]


# -- --param values ---------------------------------------------------------------------------


PARAMS = "items = [1]\nconf = {'a': 1}\nn = 1\nrate = 0.5\nname = 'a'\nmsg = None\nk: Optional[int] = None"


def declared() -> tuple[Any, ...]:
    return plan_of(parameters_notebook(PARAMS, "print(items, conf, n, rate, name, msg, k)")).parameters


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ('items=[1, 2.5, "a"]', {"items": [1, 2.5, "a"]}),
        ('conf={"b": [true, {}]}', {"conf": {"b": [True, {}]}}),
        ("n=9007199254740992", {"n": 2**53}),
        ("rate=1e308", {"rate": 1e308}),
        ("msg=hello", {"msg": "hello"}),
        ("k=3", {"k": 3}),
    ],
)
def test_param_values_are_typed(assignment: str, expected: dict[str, Any]):
    assert coerce_parameters(declared(), [assignment]) == expected


@pytest.mark.parametrize(
    ("assignment", "needle"),
    [
        ("items=[1e400]", "inf cannot be carried"),
        ("items=[NaN]", "nan cannot be carried"),
        ("items=" + "[" * 40 + "]" * 40, "nested more than 32 deep"),
        ("items=" + "[" * 100000 + "]" * 100000, "nested too deeply to read"),  # json's RecursionError
        ("items=[10000000000000000000000]", "beyond ±2**53"),
        ('conf={"a": {"b": [[1], null]}}', "holding None"),
        ('conf={"b": [true, null]}', "holding None"),
        ("conf=[1]", "conf is a dict parameter"),
        ("n=9007199254740993", "beyond ±2**53"),
        ("n=" + "9" * 5000, "n is a int parameter"),  # int() refuses over 4300 digits
        ("n=1.5", "n is a int parameter"),
        ("rate=nan", "nan cannot be carried"),
        ("rate=-inf", "-inf cannot be carried"),
        ("name=\udcff", "lone surrogate"),  # undecodable argv bytes arrive as surrogates
        ("k=many", "k is an optional int parameter"),
    ],
)
def test_param_values_kfp_cannot_carry_are_clear_errors(assignment: str, needle: str):
    with pytest.raises(Nb2PipeError) as caught:
        coerce_parameters(declared(), [assignment])
    assert needle in str(caught.value)
    str(caught.value).encode("utf-8")  # printable: the message escapes what it quotes


def test_unset_optional_parameters_are_left_out():
    assert coerce_parameters(declared(), ["n=2"]) == {"n": 2}


# -- names KFP refuses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("seed", "seed"),
        ("nRows", "nRows"),
        ("x__y_", "x__y_"),
        ("_seed", "seed"),
        ("__init__", "init"),
        ("größe", "grosse"),
        ("Ölfeld", "Olfeld"),
        ("学习率", "u5b66_u4e60_u7387"),
        ("_", "p"),
        ("_1x", "p_1x"),
        ("Output", "Output_"),
        ("class", "class_"),
    ],
)
def test_kfp_identifier_keeps_valid_names_and_maps_the_rest(name: str, expected: str):
    taken: set[str] = set()
    assert kfp_identifier(name, taken) == expected
    assert taken == {expected}


NAMES = ["_seed", "seed", "seed_2", "größe", "grosse", "_", "__", "p", "Output", "学习率", "λ", "_λ", "x1", "_x1"]


def test_kfp_identifiers_are_valid_distinct_and_deterministic():
    from kfp.dsl import pipeline_channel

    first = kfp_identifiers(NAMES, set())
    assert first == kfp_identifiers(NAMES, set())
    assert len(set(first.values())) == len(NAMES)
    assert all(first[name] == name for name in NAMES if is_kfp_identifier(name))
    for identifier in first.values():
        pipeline_channel.PipelineParameterChannel(identifier, channel_type="String")  # kfp's own name check
        inspect.Parameter(identifier, inspect.Parameter.POSITIONAL_OR_KEYWORD)  # a Python argument
        assert identifier.isascii() and identifier != "Output"


def test_parameters_kfp_cannot_name_get_pipeline_inputs_it_accepts():
    nb = parameters_notebook("_seed = 1\nseed = 2\ngröße = 3.5\nλ = None", "print(_seed, seed, größe, λ)")
    compiled = compile_source(notebook_text(nb), "nb.ipynb")
    assert [(p.name, p.pipeline_input) for p in compiled.plan.parameters] == [
        ("_seed", "seed_2"),  # the valid `seed` keeps its name
        ("seed", "seed"),
        ("größe", "grosse"),
        ("λ", "u03bb"),
    ]
    assert root_inputs(compiled.yaml) == {
        "seed_2": {"defaultValue": 1.0, "isOptional": True, "parameterType": "NUMBER_INTEGER"},
        "seed": {"defaultValue": 2.0, "isOptional": True, "parameterType": "NUMBER_INTEGER"},
        "grosse": {"defaultValue": 3.5, "isOptional": True, "parameterType": "NUMBER_DOUBLE"},
        "u03bb": {"isOptional": True, "parameterType": "STRING"},
    }
    assert coerce_parameters(compiled.plan.parameters, ["größe=1", "_seed=5", "u03bb=x"]) == {
        "grosse": 1.0,
        "seed_2": 5,
        "u03bb": "x",
    }


def test_monitoring_inputs_keep_their_reserved_parameter_diagnostic():
    nb = lifecycle_notebook("register:iris")
    nb.cells.insert(0, code("payloads = 'x'\n_force_retrain = False", "parameters"))
    with pytest.raises(CompileError) as caught:
        compile_source(notebook_text(nb), "nb.ipynb", monitoring=True)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "reserved-parameter" and "payloads" in diagnostic.message
    nb.cells[0] = code("_payloads = 'x'\n_force_retrain = False", "parameters")
    compiled = compile_source(notebook_text(nb), "nb.ipynb", monitoring=True)
    assert {"payloads", "force_retrain", "payloads_2", "force_retrain_2"} <= set(root_inputs(compiled.yaml))


# -- for real: nb2pipe run and submit ---------------------------------------------------------

RUN_NOTEBOOK = notebook(
    code(
        'msg = None\nn: Optional[int] = None\nlimit: "int" = None\ngröße = 3\n_seed = 7\nrate: float = 1', "parameters"
    ),
    code("seen = (msg, n, limit, größe, _seed, rate)\nkinds = [type(v).__name__ for v in seen]", "step:use"),
)


def test_run_overrides_arrive_typed_under_the_notebooks_own_names(tmp_path: Path):
    path = write_notebook(tmp_path, RUN_NOTEBOOK)
    overrides = ["msg=hello", "n=3", "limit=4", "größe=5", "_seed=8"]
    result = run_notebook(path, workdir=tmp_path / "work", parameters=overrides, keep_variables=True)
    assert result.status == "succeeded", result.failures
    variables = load_variables(result.run_dir)
    assert variables["seen"] == ("hello", 3, 4, 5, 8, 1.0)
    assert variables["kinds"] == ["str", "int", "int", "int", "int", "float"]


def test_run_leaves_unset_optional_parameters_none(tmp_path: Path):
    path = write_notebook(tmp_path, RUN_NOTEBOOK)
    result = run_notebook(path, workdir=tmp_path / "work", keep_variables=True)
    assert result.status == "succeeded", result.failures
    assert load_variables(result.run_dir)["seen"] == (None, None, None, 3, 7, 1.0)


def test_submit_sends_values_under_the_pipeline_input_names(kfp_server, tmp_path: Path):
    from nb2pipe.runners.kubeflow import submit_notebook

    path = write_notebook(tmp_path, RUN_NOTEBOOK)
    submit_notebook(path, host=kfp_server.url, parameters=["größe=5", "n=2"])
    (run,) = kfp_server.fake.runs
    assert run["runtime_config"]["parameters"] == {"grosse": 5, "n": 2}  # msg unset: KFP leaves it None
    upload = next(r for r in kfp_server.requests if r.path.endswith("/pipelines/upload"))
    uploaded = upload.body.decode().split("\r\n\r\n", 1)[1].rsplit("\r\n--", 1)[0]  # the form's one file
    assert root_inputs(uploaded)["msg"] == {"isOptional": True, "parameterType": "STRING"}


def test_register_task_takes_parameters_under_kfp_names_and_keeps_them_optional():
    nb = notebook(
        code("from sklearn.datasets import load_iris\nfrom sklearn.linear_model import LogisticRegression", "imports"),
        code("_seed = 1\ngröße: int = None\nC = 1.0", "parameters"),
        code(
            "X, y = load_iris(return_X_y=True)\n"
            "model = LogisticRegression(C=C, random_state=_seed).fit(X, y)\n"
            "print(größe)\naccuracy = model.score(X, y)",
            "step:train",
            "register:iris",
        ),
        code("accuracy", "metrics"),
    )
    compiled = compile_source(notebook_text(nb), "nb.ipynb")
    document = next(yaml.safe_load_all(compiled.yaml))
    register = document["components"]["comp-register-iris"]["inputDefinitions"]["parameters"]
    assert register["grosse"] == {"isOptional": True, "parameterType": "NUMBER_INTEGER"}
    assert register["seed"] == {"parameterType": "NUMBER_INTEGER"}
    executor = document["deploymentSpec"]["executors"]["exec-register-iris"]["container"]["command"][-1]
    # the register function logs each value under the notebook's own name
    assert "params={'_seed': seed, 'größe': grosse, 'C': C}" in executor
    assert "*, grosse: Optional[int] = None" in executor


def test_a_refused_parameter_named_as_a_metric_is_reported_once():
    nb = notebook(
        code("d1 = (1, 2)\nd2 = 3", "pipeline-parameters"),
        code("a = d2 * 2", "block:s"),
        code("print(d1)\nprint(d2)", "pipeline-metrics"),
    )
    assert codes(diagnostics_of(nb)) == ["invalid-parameter"]


def test_an_unset_optional_parameter_named_as_a_metric_is_not_logged(tmp_path: Path):
    nb = notebook(
        code("n: Optional[int] = None\nk = 2", "parameters"),
        code("total = k * 2", "step:use"),
        code("print(n)\nprint(total)", "pipeline-metrics"),
    )
    path = write_notebook(tmp_path, nb)
    result = run_notebook(path, workdir=tmp_path / "work")
    assert result.status == "succeeded", result.failures
    assert result.metrics == {"total": 4.0}
    result = run_notebook(path, workdir=tmp_path / "work", parameters=["n=3"])
    assert result.metrics == {"n": 3.0, "total": 4.0}
