"""Kale-tagged notebooks compile unchanged, old and new spelling, to the DAG Kale builds."""

from __future__ import annotations

import json

from nb2pipe.analysis.graph import transitive_reduction
from nb2pipe.compiler import compile_source
from tests.support.kfpspec import dag, parse_ir
from tests.support.nbtools import EXAMPLES


def kale_dag(path) -> dict[str, list[str]]:
    """Kale's rule: a step's parents are exactly its prev: tags."""
    edges: dict[str, list[str]] = {}
    for cell in json.loads(path.read_text())["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        names = [t.split(":", 1)[1] for t in tags if t.split(":", 1)[0] in ("block", "step")]
        if names:
            edges[names[0]] = sorted(t.split(":", 1)[1] for t in tags if t.startswith("prev:"))
    return edges


def test_old_and_new_kale_spellings_build_kales_dag():
    old = EXAMPLES / "kale_old_style.ipynb"
    new = EXAMPLES / "kale_new_style.ipynb"
    old_dag = dag(parse_ir(compile_source(old.read_text(), old.name).yaml)[0])
    new_dag = dag(parse_ir(compile_source(new.read_text(), new.name).yaml)[0])
    assert old_dag == new_dag
    assert transitive_reduction(old_dag) == kale_dag(old) == kale_dag(new)
    assert kale_dag(old) == {
        "loaddata": [],
        "datapreprocessing": ["loaddata"],
        "featureengineering": ["datapreprocessing"],
        "decisiontree": ["featureengineering"],
        "naivebayes": ["featureengineering"],
        "logisticregression": ["featureengineering"],
        "results": ["decisiontree", "logisticregression", "naivebayes"],
    }


def test_kale_metadata_and_metrics_carry_over():
    path = EXAMPLES / "kale_old_style.ipynb"
    compiled = compile_source(path.read_text(), path.name)
    plan = compiled.plan
    assert (plan.name, plan.experiment, plan.image) == ("titanic-kale", "kale", "python:3.11")
    assert plan.step("decisiontree").metrics == ("acc_tree",)
    assert plan.step("logisticregression").metrics == ("acc_logreg",)
    assert plan.step("logisticregression").options.annotations == (("team.example.com/owner", "ml"),)
    assert all(step.options.labels == (("app", "kale"),) for step in plan.steps)
    # the `functions` cell runs in every step, so `accuracy` is never shipped
    assert all("accuracy" not in [i.name for i in step.inputs] for step in plan.steps)
