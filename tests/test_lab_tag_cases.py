"""The panel's tag editor and the compiler read tags alike: every case of the front end's
``tag_cases.json`` (form -> tags, asserted by its jest tests) parses without a problem here and
means what the form said; every case of ``tag_problems.json`` (a bad form field, the message
its jest tests expect from the form's own checks) is refused here with that message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.notebook.tags import TagProblem, parse_tag, split_packages

CASES = Path(__file__).resolve().parents[1] / "jupyter_extension" / "src" / "__tests__" / "tag_cases.json"
PROBLEMS = CASES.with_name("tag_problems.json")


def _meaning(form: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """What the compiler should read from a form, as (kind, fields) in the editor's order."""
    get = lambda key: str(form.get(key) or "").strip()  # noqa: E731
    meant: list[tuple[str, tuple[str, ...]]] = []
    if get("role"):
        meant.append((get("role"), ()))
    if get("step"):
        meant.append(("step", (get("step"),)))
    meant += [("after", (name,)) for name in form.get("after", [])]
    for key in ("cpu", "memory"):
        if get(key):
            meant.append((key, (get(key),)))
    if get("gpu"):
        meant.append(("gpu", (get("gpu"), get("gpuType")) if get("gpuType") else (get("gpu"),)))
    if get("shm"):
        meant.append(("shm", (get("shm"),)))
    if get("image"):
        meant.append(("image", (get("image"),)))
    if get("packages"):
        meant.append(("packages", tuple(split_packages(get("packages")))))
    meant += [("env", (entry,)) for entry in form.get("env", [])]
    meant += [("volume", tuple(entry.split(":"))) for entry in form.get("volumes", [])]
    meant += [("node", (entry,)) for entry in form.get("nodeSelectors", [])]
    meant += [("toleration", tuple(entry.split(":"))) for entry in form.get("tolerations", [])]
    meant += [("affinity", (entry,)) for entry in form.get("affinity", [])]
    meant += [("prefer-affinity", tuple(entry.split(":", 1))) for entry in form.get("preferAffinity", [])]
    if get("register"):
        variable = get("registerVariable")
        meant.append(("register", (get("register"), variable) if variable else (get("register"),)))
    if get("promoteMetric"):
        meant.append(("promote", (get("promoteMetric") + (get("promoteDirection") or ">="),)))
    if get("deploy"):
        meant.append(("deploy", (get("deploy"),)))
    if get("driftCurrent"):
        reference = get("driftReference")
        meant.append(("drift", (get("driftCurrent"), reference) if reference else (get("driftCurrent"),)))
    meant += [("explain", (method,)) for method in form.get("explain", [])]
    return meant


def _cases() -> list[Any]:
    return [pytest.param(case, id=case["name"]) for case in json.loads(CASES.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("case", _cases())
def test_panel_tags_mean_what_the_form_says(case: dict[str, Any]) -> None:
    read: list[tuple[str, tuple[str, ...]]] = []
    for text in case["tags"]:
        tag = parse_tag(text)
        assert not isinstance(tag, TagProblem), tag
        fields = tuple(split_packages(tag.args[0])) if tag.kind == "packages" else tag.args
        read.append((tag.kind, fields))
    assert read == _meaning(case["form"])


def test_cases_cover_every_form_field() -> None:
    fields = {key for case in json.loads(CASES.read_text(encoding="utf-8")) for key in case["form"]}
    assert fields >= {
        "role", "step", "after", "cpu", "memory", "gpu", "gpuType", "image", "packages", "register",
        "registerVariable", "promoteMetric", "promoteDirection", "deploy", "driftCurrent", "driftReference", "explain",
        "shm", "env", "volumes", "nodeSelectors", "tolerations", "affinity", "preferAffinity",
    }  # fmt: skip


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case["name"]) for case in json.loads(PROBLEMS.read_text(encoding="utf-8"))]
)
def test_the_form_refuses_what_the_compiler_refuses_in_the_same_words(case: dict[str, Any]) -> None:
    problem = parse_tag(case["tag"])
    assert isinstance(problem, TagProblem), problem
    assert problem.message.startswith("tag "), problem.message
    assert problem.message.endswith(": " + case["problem"]), problem.message
