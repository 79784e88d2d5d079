"""components/drift: the interface is the documented one, and the component runs for real
on kfp.local against two CSV files (components/test_compiled_yaml.py checks its YAML).

kfp.local's SubprocessRunner (use_venv=False) runs the component's own command, pip install
of ``nb2pipe[drift]`` included, with this environment's Python. nb2pipe and its drift extra
are installed here, so pip has nothing to do; PIP_NO_INDEX makes sure it never reaches an
index (a missing requirement fails the test instead of installing anything).

No ``from __future__ import annotations`` here: kfp reads the pipeline's return annotation.
"""

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest

FOLDER = Path(__file__).resolve().parent.parent


def drift_component() -> Any:
    from kfp import components

    return components.load_component_from_file(str(FOLDER / "component.yaml"))


def test_interface_is_the_documented_one() -> None:
    spec = drift_component().component_spec
    inputs = {name: (str(item.type), item.default) for name, item in spec.inputs.items()}
    assert inputs == {
        "reference": ("system.Dataset@0.0.1", None),
        "current": ("system.Dataset@0.0.1", None),
        "method": ("String", "tabular"),
        "p_value": ("Float", 0.05),
        "correction": ("String", "bonferroni"),
        "categorical": ("List", []),
    }
    outputs = {name: str(item.type) for name, item in spec.outputs.items()}
    assert outputs == {
        "is_drift": "Boolean",
        "drift_metrics": "system.Metrics@0.0.1",
        "drift_report": "system.HTML@0.0.1",
    }
    readme = (FOLDER / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in [*inputs, *outputs])


@pytest.mark.slow
def test_runs_on_kfp_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp import dsl, local
    from kfp.local import config

    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setattr(config.LocalExecutionConfig, "instance", None)  # kfp.local's settings are process-wide
    generator = np.random.default_rng(0)
    reference, current = tmp_path / "reference.csv", tmp_path / "current.csv"
    pd.DataFrame({"a": generator.normal(size=300), "b": generator.choice(["x", "y"], 300)}).to_csv(
        reference, index=False
    )
    pd.DataFrame({"a": generator.normal(size=300) + 1.0, "b": generator.choice(["x", "y"], 300)}).to_csv(
        current, index=False
    )
    drift_check = drift_component()

    Outputs = NamedTuple("Outputs", [("is_drift", bool), ("metrics", dsl.Metrics), ("report", dsl.HTML)])  # noqa: UP014

    @dsl.pipeline
    def check() -> Outputs:
        before = dsl.importer(artifact_uri=str(reference), artifact_class=dsl.Dataset)
        after = dsl.importer(artifact_uri=str(current), artifact_class=dsl.Dataset)
        task = drift_check(reference=before.output, current=after.output)
        return Outputs(task.outputs["is_drift"], task.outputs["drift_metrics"], task.outputs["drift_report"])

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    outputs = check().outputs
    assert outputs["is_drift"] is True
    metrics = outputs["metrics"].metadata
    assert metrics["is_drift"] == 1.0 and metrics["drifted_features"] == 1.0
    assert metrics["p_value_a"] < 0.025 < metrics["p_value_b"]
    assert "<h1>Drift detected</h1>" in Path(outputs["report"].path).read_text(encoding="utf-8")
