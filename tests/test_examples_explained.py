"""End to end: the explained examples run with ``nb2pipe run`` — digits images through a
small Keras CNN, generated sentences through a Keras text model that takes raw strings.

Each run must succeed step by step, register version 1 of its model as champion, reach the
accuracy the notebook promises, and have both explain tasks write their HTML page (IG
attributions, anchors) and log their quality metrics: anchors that hold with at least
alibi's precision threshold, and attributions that add up to the change of the score
(Integrated Gradients' completeness).

Everything is real: kfp.local tasks, TensorFlow on the CPU, a sqlite MLflow store in the
test's folder, alibi's explainers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.ir import EXPLANATION_OUTPUT
from tests.support.example_runs import ExampleRun, as_json
from tests.support.nbtools import EXAMPLES

pytestmark = pytest.mark.slow  # runs the Keras examples on kfp.local


def run_example(name: str, example_run: ExampleRun) -> dict[str, Any]:
    """The example's run (shared with the other tests of the session), as ``--json`` prints it."""
    result, _ = example_run(EXAMPLES / f"{name}.ipynb")
    return as_json(result)


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {step["name"]: step["status"] for step in result["steps"]}


def explanation(result: dict[str, Any], task: str) -> str:
    page = Path(result["outputs_dir"]) / task / EXPLANATION_OUTPUT
    assert page.is_file(), f"{task} wrote no {EXPLANATION_OUTPUT}"
    return page.read_text(encoding="utf-8")


def assert_explained(result: dict[str, Any], model_name: str, steps: list[str]) -> None:
    assert result["status"] == "succeeded", result["failures"]
    explain = [f"explain-{model_name}-anchor", f"explain-{model_name}-ig"]
    assert statuses(result) == dict.fromkeys([*steps, f"register-{model_name}", *explain], "succeeded")
    assert [(m["model_name"], m["version"], m["champion"]) for m in result["models"]] == [(model_name, "1", True)]
    metrics = result["metrics"]
    assert metrics["accuracy"] >= 0.9
    # three training rows explained by each method
    assert metrics["ig_rows"] == 3.0
    assert metrics["anchor_precision"] >= 0.95
    assert 0.0 < metrics["anchor_coverage"] <= 1.0
    assert metrics["ig_completeness_error"] <= 0.05


def sections(page: str) -> list[str]:
    """The page's parts, one per explained row."""
    return page.split('<section class="row">')[1:]


def test_digits_cnn_is_registered_and_explained_with_ig_and_anchor(example_run: ExampleRun):
    result = run_example("digits_explained", example_run)
    assert_explained(result, "digits", ["load", "train", "evaluate"])

    # IG: each digit next to its heatmap of pixel attributions
    ig = sections(explanation(result, "explain-digits-ig"))
    assert len(ig) == 3
    for row in ig:
        assert row.count('<img alt="image" src="data:image/png;base64,') == 1
        assert row.count('<img alt="attributions (red raises, blue lowers)" src="data:image/png;base64,') == 1

    # Anchor: each digit next to the patches that keep its prediction, with precision and coverage
    anchor = sections(explanation(result, "explain-digits-anchor"))
    assert len(anchor) == 3
    for row in anchor:
        assert "Anchor segments: <b>" in row
        assert row.count("<img ") == 2
        assert '<svg xmlns="http://www.w3.org/2000/svg"' in row and "precision" in row


def test_text_classifier_is_registered_and_explained_with_anchor_and_ig(example_run: ExampleRun):
    result = run_example("text_explained", example_run)
    assert_explained(result, "topics", ["generate", "train", "evaluate"])

    # IG: every word of each sentence coloured by its attribution (padding left out)
    ig = sections(explanation(result, "explain-topics-ig"))
    assert len(ig) == 3
    for row in ig:
        sentence = re.search(r'<p class="note">text: ([^<]+)</p>', row)
        assert sentence is not None
        tokens = re.findall(r'<span style="background:rgba\([^)]+\)" title="[-+][^"]+">([^<]+)</span>', row)
        assert tokens == sentence.group(1).split()
        assert '<svg xmlns="http://www.w3.org/2000/svg"' in row  # the attribution bars

    # Anchor: a rule per sentence, its words highlighted in the sentence
    anchor = sections(explanation(result, "explain-topics-anchor"))
    assert len(anchor) == 3
    assert all('<p class="rule">IF ' in row for row in anchor)
    highlighted = [re.findall(r'<span class="anchor-word">([^<]+)</span>', row) for row in anchor]
    assert any(highlighted)  # at least one sentence has a non-empty anchor
    for row, words in zip(anchor, highlighted, strict=True):
        for word in words:
            assert f"the text contains &#x27;{word}&#x27;" in row


def test_torch_digits_trains_on_its_gpu_step_evaluates_on_cpu_and_is_explained_with_captum(example_run: ExampleRun):
    result = run_example("torch_digits", example_run)
    assert result["status"] == "succeeded", result["failures"]
    expected = ["load", "train", "evaluate", "register-torch-digits", "explain-torch-digits-ig"]
    assert statuses(result) == dict.fromkeys(expected, "succeeded")
    assert [(m["model_name"], m["version"], m["champion"]) for m in result["models"]] == [("torch-digits", "1", True)]
    metrics = result["metrics"]
    assert metrics["accuracy"] >= 0.9
    assert metrics["ig_rows"] == 3.0 and metrics["ig_completeness_error"] <= 0.01
    # 64 pixels a row: the page draws each row as an 8x8 heatmap or a bar per pixel
    ig = sections(explanation(result, "explain-torch-digits-ig"))
    assert len(ig) == 3
