"""The tag grammar: nb2pipe's spelling and Kale's, checked fields, did-you-mean."""

from __future__ import annotations

import pytest

from nb2pipe.ir import Tag
from nb2pipe.notebook.tags import TagProblem, is_cpu_quantity, is_memory_quantity, parse_tag


@pytest.mark.parametrize(
    ("text", "kind", "args"),
    [
        ("step:train", "step", ("train",)),
        ("block:train", "step", ("train",)),
        ("step:", "step", ("",)),
        ("after:prepare", "after", ("prepare",)),
        ("prev:prepare", "after", ("prepare",)),
        ("imports", "imports", ()),
        ("functions", "functions", ()),
        ("parameters", "parameters", ()),
        ("pipeline-parameters", "parameters", ()),
        ("metrics", "metrics", ()),
        ("pipeline-metrics", "metrics", ()),
        ("skip", "skip", ()),
        ("gpu:2", "gpu", ("2",)),
        ("gpu:1:nvidia.com/gpu", "gpu", ("1", "nvidia.com/gpu")),
        ("cpu:500m", "cpu", ("500m",)),
        ("memory:4Gi", "memory", ("4Gi",)),
        ("limit:nvidia.com/gpu:1", "limit", ("nvidia.com/gpu", "1")),
        ("limit:memory:2Gi", "limit", ("memory", "2Gi")),
        ("image:python:3.11-slim", "image", ("python:3.11-slim",)),
        ("packages:pandas>=2,<3;scikit-learn", "packages", ("pandas>=2,<3;scikit-learn",)),
        ("cache:off", "cache", ("off",)),
        ("cache:disabled", "cache", ("disabled",)),
        ("retry:3", "retry", ("3",)),
        ("timeout:600", "timeout", ("600",)),
        ("annotation:example.com/owner:team:ml", "annotation", ("example.com/owner", "team:ml")),
        ("label:app:demo", "label", ("app", "demo")),
        ("secret:db-creds:password:DB_PASSWORD", "secret", ("db-creds", "password", "DB_PASSWORD")),
        ("report:enabled", "report", ("enabled",)),
    ],
)
def test_known_tags_parse(text: str, kind: str, args: tuple[str, ...]):
    assert parse_tag(text) == Tag(kind, args, text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("step:9lives", "not a valid step name"),
        ("gpu:0", "at least 1"),
        ("cpu:two", "not a CPU quantity"),
        ("memory:4GB", "not a memory quantity"),
        ("limit:ephemeral-storage:1Gi", "unsupported resource"),
        ("retry:-1", "whole number"),
        ("timeout:0", "at least 1"),
        ("cache:maybe", "expected one of"),
        ("packages:not a package!", "not a pip requirement"),
        ("imports:x", "takes no value"),
        ("step", "needs a value"),
        ("after:", "a step name is required"),
        ("secret:a:b", "wrong number of fields"),
    ],
)
def test_bad_values_say_what_is_wrong(text: str, needle: str):
    problem = parse_tag(text)
    assert isinstance(problem, TagProblem) and problem.is_error
    assert needle in problem.message
    assert problem.hint.startswith("write it as")


def test_unknown_tags():
    close = parse_tag("paramters")
    assert isinstance(close, TagProblem) and close.hint == "did you mean 'parameters'?"
    with_value = parse_tag("lable:app:x")
    assert isinstance(with_value, TagProblem) and with_value.hint == "did you mean 'label:app:x'?"
    far = parse_tag("zzz:1")
    assert isinstance(far, TagProblem) and far.is_error and "nb2pipe knows" in far.hint
    foreign = parse_tag("remove-cell")  # jupyter-book's tag: not ours, left alone
    assert isinstance(foreign, TagProblem) and not foreign.is_error
    kale_reference = parse_tag("notebook:other")  # Kale's spelling: a name without .ipynb
    assert kale_reference == Tag("notebook", ("other",), "notebook:other")
    assert isinstance(parse_tag("notebook:"), TagProblem)
    assert isinstance(parse_tag("notebook:/abs/x.ipynb"), TagProblem)  # relative to the notebook's folder


def test_quantities_follow_kfp_rules():
    assert all(is_cpu_quantity(q) for q in ["1", "0.5", ".5", "250m", "2.5m"])
    assert not any(is_cpu_quantity(q) for q in ["", "m", "1.", "1e3", "-1"])
    assert all(is_memory_quantity(q) for q in ["1024", "512Mi", "4Gi", "2G", "1Ki"])
    assert not any(is_memory_quantity(q) for q in ["", "Gi", "4GB", "1.5Gi"])


def test_package_lists_split_on_commas_and_semicolons_keeping_version_ranges():
    from nb2pipe.notebook.tags import split_packages

    assert split_packages("pandas>=2,<3;rich, tabulate==0.9") == ["pandas>=2,<3", "rich", "tabulate==0.9"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("retry:2147483648", "at most 2147483647"),  # KFP's max_retry_count is int32
        ("timeout:9223372036854775808", "at most 9223372036854775807"),  # activeDeadlineSeconds is int64
        ("timeout:" + "9" * 20, "at most 9223372036854775807"),
        ("gpu:" + "9" * 20, "at most 9223372036854775807"),
        ("limit:nvidia.com/gpu:" + "9" * 20, "at most 9223372036854775807"),
        ("replicas:0-2147483648", "at most 2147483647"),  # KServe's replica counts are int32
        ("replicas:" + "9" * 20, "at most 2147483647"),
        ("scale:concurrency=2147483648", "at most 2147483647"),
        ("canary:" + "0" * 5000 + "101", "from 0 to 100"),  # past int()'s 4300-digit limit
        ("retry:" + "9" * 5000, "at most 2147483647"),
        ("retry:²", "whole number"),  # '²'.isdigit() is true
        ("timeout:\u0661\u0662", "whole number"),  # Arabic-Indic digits
        ("gpu:\u0663", "whole number"),
        ("canary:\uff150", "percentage"),  # fullwidth digit
        ("limit:nvidia.com/gpu:²", "whole number"),
        ("scale:rps=\u0661", "write scale:METRIC=TARGET"),
        ("cpu:²", "not a CPU quantity"),
        ("memory:\u0661Gi", "not a memory quantity"),
    ],
)
def test_numbers_outside_what_kfp_and_kserve_hold_are_bad_tags(text: str, needle: str):
    problem = parse_tag(text)
    assert isinstance(problem, TagProblem) and problem.code == "bad-tag" and problem.is_error
    assert needle in problem.message


@pytest.mark.parametrize(
    "text",
    [
        "retry:2147483647",
        "retry:0",
        "timeout:9223372036854775807",
        "gpu:9223372036854775807",
        "replicas:2147483647",
        "replicas:0-2147483647",
        "scale:rps=2147483647",
        "canary:0100",
        "limit:nvidia.com/gpu:0",
    ],
)
def test_the_largest_values_still_parse(text: str):
    assert not isinstance(parse_tag(text), TagProblem)
