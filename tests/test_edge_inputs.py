"""Inputs nobody here wrote, at the edges the compiler's own tests do not reach: durations,
tables that are pipes, tags of thousands of characters."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from nb2pipe.compiler import compile_source
from nb2pipe.errors import CompileError, Nb2PipeError
from nb2pipe.notebook.tags import TagProblem, parse_tag
from nb2pipe.runners.kubeflow import parse_duration
from tests.support.nbtools import EXAMPLES, code, notebook, notebook_text


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("1h30m", 5400), ("1d", 86400), ("2w", 1209600)])
def test_durations_parse(text: str, seconds: int):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["²", "1²h", "٣h", "0", "", "1" * 5000, "99999999999h", "523w", "h", "1x"])
def test_durations_that_are_not_ascii_whole_numbers_or_too_long_are_clear_errors(text: str):
    with pytest.raises(Nb2PipeError, match="write a duration"):
        parse_duration(text)


def test_a_drift_table_that_is_a_pipe_is_refused_not_waited_on(tmp_path: Path):
    from nb2pipe.store.tables import TableError, load_table

    fifo = tmp_path / "current.csv"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            load_table(fifo)
        except BaseException as exc:  # the test inspects whatever ends the read
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a pipe blocked"
    (error,) = outcome
    assert isinstance(error, TableError) and "not a regular file" in str(error)


@pytest.mark.parametrize("tag", ["retry:" + "9" * 5000, "x" * 5000, "stpe:" + "a" * 5000, "skip:" + "v" * 5000])
def test_messages_about_huge_tags_quote_them_cut_short(tag: str):
    problem = parse_tag(tag)
    assert isinstance(problem, TagProblem)
    assert len(problem.message) + len(problem.hint) < 400


def _monitored_notebook_text() -> str:
    return (EXAMPLES / "monitoring.ipynb").read_text(encoding="utf-8")


def test_monitoring_diagnostics_name_the_notebook_as_given():
    with pytest.raises(CompileError) as caught:
        compile_source(notebook_text(notebook(code("x = 1", "step:a"))), "dir/nb.ipynb", monitoring=True)
    assert [d.location.notebook for d in caught.value.diagnostics] == ["dir/nb.ipynb"]


def test_a_long_pipeline_name_still_makes_a_monitoring_pipeline_kfp_accepts():
    compiled = compile_source(_monitored_notebook_text(), "monitoring.ipynb", name="a" * 300, monitoring=True)
    assert compiled.plan.name == "a" * 120 + "-monitor"


@pytest.mark.parametrize(
    "tag",
    [
        "label:team:vision",
        "label:example.com/team:ml-1.2_a",
        "label:team:",
        "annotation:example.com/owner:Ana María <ana@x.org>",
        "secret:db-creds:password:DB_PASSWORD",
        "secret:db.creds:tls.key:TLS_KEY",
    ],
)
def test_kubernetes_names_that_pods_accept_pass(tag: str):
    assert not isinstance(parse_tag(tag), TagProblem)


@pytest.mark.parametrize(
    ("tag", "needle"),
    [
        ("label:名前:値", "key"),
        ("label:team:two words", "label value"),
        ("label:team:" + "a" * 64, "more than 63"),
        ("label:-team:ml", "key"),
        ("label:Example.com/team:ml", "prefix"),
        ("annotation:k:a\x00b", "control characters"),
        ("annotation::v", "empty"),
        ("secret:DB:password:PASS", "secret name"),
        ("secret:db:pass word:PASS", "secret key"),
        ("secret:db:password:1ENV", "environment variable"),
    ],
)
def test_kubernetes_names_that_pods_refuse_are_bad_tags(tag: str, needle: str):
    problem = parse_tag(tag)
    assert isinstance(problem, TagProblem) and problem.code == "bad-tag"
    assert needle in problem.message
