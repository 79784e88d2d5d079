"""The step runtime: values saved and loaded by type, failures mapped to notebook cells."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from nb2pipe.runtime.step import ERROR_MARKER, StepError, load_value, run_step, save_value


@pytest.mark.parametrize(
    ("value", "form", "file"),
    [
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "parquet", "value.parquet"),
        (pd.Series([1.5, 2.5], name="s"), "parquet-series", "value.series.parquet"),
        (pd.Series([1, 2]), "parquet-series", "value.series.parquet"),
        (np.arange(6).reshape(2, 3), "npy", "value.npy"),
        ({"k": [1, 2.5, None, True, "s"]}, "json", "value.json"),
        (0.75, "json", "value.json"),
        ((1, 2), "pickle", "value.pkl"),
        (np.float64(0.5), "pickle", "value.pkl"),
        (pd.DataFrame({1: [1]}), "pickle", "value.pkl"),
    ],
)
def test_values_round_trip_in_a_format_chosen_by_type(tmp_path: Path, value, form: str, file: str):
    described = save_value(value, str(tmp_path / "artifact"))
    assert (described["format"], described["file"]) == (form, file)
    assert sorted(p.name for p in (tmp_path / "artifact").iterdir()) == sorted([file, "nb2pipe-value.json"])
    loaded = load_value(str(tmp_path / "artifact"))
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, value)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(loaded, value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(loaded, value)
    else:
        assert loaded == value and type(loaded) is type(value)


def test_models_use_joblib(tmp_path: Path):
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    assert save_value(model, str(tmp_path / "m"))["file"] == "model.joblib"
    assert load_value(str(tmp_path / "m")).predict([[1.0]]).tolist() == [1]


@pytest.mark.parametrize(
    ("value", "what"),
    [(json, "a module"), ((i for i in range(2)), "a generator"), (threading.Lock(), "a lock")],
)
def test_process_bound_values_are_refused_with_a_fix(tmp_path: Path, value, what: str):
    with pytest.raises(StepError, match=what):
        save_value(value, str(tmp_path / "x"), "thing")
    assert not list(tmp_path.iterdir())


def test_a_failed_save_leaves_no_partial_artifact(tmp_path: Path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        save_value(Unpicklable(), str(tmp_path / "x"))
    assert not list(tmp_path.iterdir())


def artifact(path: Path) -> SimpleNamespace:
    return SimpleNamespace(path=str(path), metadata={})


class FakeMetrics:
    def __init__(self, path: Path) -> None:
        self.logged: dict[str, float] = {}
        self.path = str(path)

    def log_metric(self, name: str, value: float) -> None:
        self.logged[name] = value


def spec(cells: list[list[object]], **extra: object) -> dict[str, object]:
    return {
        "step": "s",
        "notebook": "nb.ipynb",
        "prelude": [[0, 1, 1, "import math"]],
        "replays": [],
        "cells": cells,
        "metrics": [],
        **extra,
    }


def test_run_step_runs_parameters_prelude_inputs_then_cells(tmp_path: Path):
    save_value([1, 2, 3], str(tmp_path / "numbers"))
    out = artifact(tmp_path / "total")
    metrics = FakeMetrics(tmp_path / "metrics")
    run_step(
        spec([[3, 7, 1, "total = sum(numbers) * scale\nratio = math.sqrt(total)"]], metrics=["ratio"]),
        parameters={"scale": 2},
        inputs={"numbers": artifact(tmp_path / "numbers")},
        outputs={"total": out},
        metrics=metrics,
    )
    assert load_value(out.path) == 12
    assert out.metadata["format"] == "json"
    assert metrics.logged == {"ratio": pytest.approx(12**0.5)}
    # the same values as a file, which the register task reads
    assert json.loads(Path(metrics.path).read_text()) == {"ratio": pytest.approx(12**0.5)}


def test_failures_are_reported_at_the_notebook_cell_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(ZeroDivisionError):
        run_step(spec([[4, 9, 1, "a = 1\nb = a / 0"]]), parameters={}, inputs={}, outputs={})
    err = capsys.readouterr().err
    assert "Step 's' failed at nb.ipynb, cell 5 [9], line 2" in err
    assert 'File "<nb.ipynb cell 5>", line 2' in err and "b = a / 0" in err
    record = json.loads(err.split(ERROR_MARKER)[1])
    assert (record["cell"], record["line"], record["error"]) == (4, 2, "ZeroDivisionError")


def test_replayed_code_keeps_its_original_line_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(ValueError):
        run_step(
            spec([[6, None, 1, "boom()"]], replays=[[2, None, 5, "def boom():\n    raise ValueError('x')"]]),
            parameters={},
            inputs={},
            outputs={},
        )
    assert 'File "<nb.ipynb cell 3>", line 6, in boom' in capsys.readouterr().err


def test_missing_output_is_a_clear_error(tmp_path: Path):
    with pytest.raises(StepError, match="expected to define 'gone'"):
        run_step(spec([[0, None, 1, "x = 1"]]), parameters={}, inputs={}, outputs={"gone": artifact(tmp_path / "g")})
