"""The one reader of ``metadata.nb2pipe`` (and Kale's ``metadata.kubeflow_notebook``): its type
rules and its messages, through whole compiles where the notebook decides, and on the reader
itself for what JSON alone cannot spell."""

from __future__ import annotations

from typing import Any

import pytest

from nb2pipe.errors import Diagnostic, Location
from nb2pipe.ir import DeploySettings, DriftOptions
from nb2pipe.notebook.metadata import Field, MetadataReader
from tests.support.lifecycle_notebooks import lifecycle_notebook
from tests.support.nbtools import code, codes, diagnostics_of, notebook, plan_of


def with_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return notebook(code("x = 1", "step:a"), metadata=metadata)


def only_problem(metadata: dict[str, Any]) -> Diagnostic:
    (found,) = diagnostics_of(with_metadata(metadata))
    assert found.code == "invalid-metadata" and found.location == Location("nb.ipynb")
    return found


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"nb2pipe": {"deploy": {"min_replicas": "2"}}}, 'nb2pipe.deploy.min_replicas must be a whole number, not "2"'),
        ({"nb2pipe": {"deploy": {"min_replicas": 2.0}}}, "nb2pipe.deploy.min_replicas must be a whole number, not 2.0"),
        ({"nb2pipe": {"deploy": {"monitor": "yes"}}}, 'nb2pipe.deploy.monitor must be true or false, not "yes"'),
        ({"nb2pipe": {"drift": {"categorical": "b"}}}, 'nb2pipe.drift.categorical must be a list, not "b"'),
        ({"nb2pipe": {"drift": {"p_value": "0.1"}}}, 'nb2pipe.drift.p_value must be a number, not "0.1"'),
        ({"nb2pipe": {"kfp_host": 8080}}, "nb2pipe.kfp_host must be a string, not 8080"),
        (
            {"kubeflow_notebook": {"pipeline_name": ["a"]}},
            'kubeflow_notebook.pipeline_name must be a string, not ["a"]',
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_named_with_its_path_and_json(metadata: dict[str, Any], message: str):
    found = only_problem(metadata)
    assert found.message == f"notebook metadata {message}"
    assert found.hint == "fix it in JupyterLab's notebook metadata editor"


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"deploy": {"gpu": True}}, "deploy.gpu must be a whole number, not true"),
        ({"deploy": {"min_replicas": False}}, "deploy.min_replicas must be a whole number, not false"),
        ({"drift": {"min_rows": True}}, "drift.min_rows must be a whole number, not true"),
        ({"drift": {"p_value": True}}, "drift.p_value must be a number, not true"),
    ],
)
def test_true_is_no_number(metadata: dict[str, Any], message: str):
    assert only_problem({"nb2pipe": metadata}).message == f"notebook metadata nb2pipe.{message}"


def test_true_is_what_a_flag_holds():
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api",))
    nb.metadata["nb2pipe"] = {"deploy": {"monitor": True, "gpu": 0, "min_replicas": 1}}
    (item,) = plan_of(nb).lifecycle
    assert item.deployment.settings == DeploySettings(gpu=0, min_replicas=1, monitor=True)


@pytest.mark.parametrize(
    ("section", "key", "hint"),
    [
        ("deploy", "max_replica", "did you mean 'max_replicas'?"),
        ("drift", "pvalue", "did you mean 'p_value'?"),
        ("drift", "zzz", "settings are: categorical, correction, method, min_rows, p_value"),
    ],
)
def test_an_unknown_setting_gets_the_closest_one(section: str, key: str, hint: str):
    found = only_problem({"nb2pipe": {section: {key: 1}}})
    assert found.message == f"notebook metadata nb2pipe.{section} has no setting {key!r}"
    assert found.hint == hint


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"nb2pipe": {"deploy": [1]}}, "nb2pipe.deploy must be an object, not [1]"),
        ({"nb2pipe": {"drift": "ks"}}, 'nb2pipe.drift must be an object, not "ks"'),
        ({"nb2pipe": "x"}, 'nb2pipe must be an object, not "x"'),  # once, not again for deploy and drift
        ({"kubeflow_notebook": 3}, "kubeflow_notebook must be an object, not 3"),
    ],
)
def test_a_section_that_is_not_an_object(metadata: dict[str, Any], message: str):
    assert only_problem(metadata).message == f"notebook metadata {message}"


@pytest.mark.parametrize(
    ("drift", "message", "hint"),
    [
        ({"method": "kss"}, 'method must be one of tabular, ks, chi2, mmd, not "kss"', "did you mean 'ks'?"),
        ({"correction": "fdrr"}, 'correction must be one of bonferroni, fdr, not "fdrr"', "did you mean 'fdr'?"),
        ({"p_value": 0}, "p_value must be above 0 and below 1, not 0", None),
        ({"p_value": 1.0}, "p_value must be above 0 and below 1, not 1.0", None),
        ({"min_rows": 1}, "min_rows must be at least 2, not 1", None),
    ],
)
def test_a_value_outside_what_is_allowed(drift: dict[str, Any], message: str, hint: str | None):
    found = only_problem({"nb2pipe": {"drift": drift}})
    assert found.message == f"notebook metadata nb2pipe.drift.{message}"
    if hint is not None:
        assert found.hint == hint


def test_the_allowed_values_are_kept_with_their_json_types_made_python():
    nb = with_metadata({"nb2pipe": {"drift": {"p_value": 1e-3, "min_rows": 2, "categorical": ["b", 3]}}})
    assert plan_of(nb).drift_options == DriftOptions(p_value=0.001, min_rows=2, categorical=("b", "3"))


def test_every_problem_is_reported_not_only_the_first():
    found = diagnostics_of(with_metadata({"nb2pipe": {"drift": {"method": "x", "min_rows": 0, "extra": 1}}}))
    assert codes(found) == ["invalid-metadata"] * 3
    assert [d.message.split()[2] for d in found] == ["nb2pipe.drift.method", "nb2pipe.drift.min_rows", "nb2pipe.drift"]


def test_deploy_settings_that_clash_are_one_sentence_after_the_section():
    found = only_problem({"nb2pipe": {"deploy": {"min_replicas": 5, "max_replicas": 2}}})
    assert found.message == "notebook metadata nb2pipe.deploy: minimum replicas 5 is above the maximum 2"


def test_steps_defaults_names_the_section_it_came_from():
    found = only_problem({"kubeflow_notebook": {"steps_defaults": {"gpus": 1}}})
    assert found.message == 'notebook metadata kubeflow_notebook.steps_defaults must be a list of tags, not {"gpus": 1}'
    assert "Kale's" in found.hint
    found = only_problem({"nb2pipe": {"steps_defaults": ["label:a:b", 3]}})
    assert found.message.startswith("notebook metadata nb2pipe.steps_defaults must be a list of tags, not [")


def test_a_setting_that_is_overridden_is_not_read():
    # nb2pipe's own key wins over Kale's, and --name over both: neither bad value is looked at
    nb = with_metadata({"kubeflow_notebook": {"pipeline_name": 3}, "nb2pipe": {"pipeline_name": "mine"}})
    assert plan_of(nb).name == "mine"
    assert plan_of(with_metadata({"nb2pipe": {"pipeline_name": 3}}), name="given").name == "given"


# --- the reader alone: values JSON cannot spell, and its rules ---------------------------


def reader() -> tuple[MetadataReader, list[Diagnostic]]:
    found: list[Diagnostic] = []
    return MetadataReader(Location("nb.ipynb"), found), found


def test_nan_is_outside_every_range_and_huge_whole_numbers_are_compared_exactly():
    check, found = reader()
    assert not check.check(float("nan"), "s.p", Field((float,), low=0, high=1, open_range=True))
    assert found[0].message == "notebook metadata s.p must be above 0 and below 1, not NaN"
    assert check.check(10**400, "s.n", Field((int,), low=2))
    assert not check.check(-(10**400), "s.n", Field((int,), low=2))


def test_the_fields_of_a_section_keep_its_order_and_drop_what_is_wrong():
    check, found = reader()
    schema = {"a": Field((int,)), "b": Field((str,), choices=("x", "y")), "c": Field((list,), items=(str,))}
    values = check.fields({"c": ["p"], "b": "y", "a": True, "d": 0}, "s", schema)
    assert list(values.items()) == [("c", ["p"]), ("b", "y")]
    assert [d.message for d in found] == [
        "notebook metadata s.a must be a whole number, not true",
        "notebook metadata s has no setting 'd'",
    ]


def test_a_long_value_is_cut_short():
    check, found = reader()
    check.check("z" * 500, "s.k", Field((int,)))
    assert len(found[0].message) < 120 and found[0].message.endswith("zzz...")
