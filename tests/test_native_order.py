"""triton before TensorFlow (nb2pipe/native_order.py): with torch installed, TensorFlow >= 2.20
followed by triton kills the process, and alibi / alibi-detect import both in that order.
Each case runs in a fresh Python, as a user's process would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # TensorFlow and alibi-detect load in fresh processes (~10 s each)


def run_python(script: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=environment, timeout=300
    )


def test_the_crash_the_guard_avoids_is_real_here() -> None:
    # if a TensorFlow release fixes this, the guard (and this test) can go
    crashed = run_python("import tensorflow\nimport triton\nprint('survived')")
    assert crashed.returncode == -11 and "survived" not in crashed.stdout


def test_drift_detection_loads_alibi_detect_beside_torch() -> None:
    done = run_python(
        """
        import sys
        from nb2pipe.monitoring.drift import _alibi_detect
        detectors = _alibi_detect()
        print(detectors.KSDrift.__name__, "triton" in sys.modules, "torch" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["KSDrift", "True", "True"]


def test_a_keras_model_loaded_by_the_registry_then_alibi_survive(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    saved = run_python(
        f"""
        import keras, mlflow.tensorflow
        model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
        mlflow.tensorflow.save_model(model, {str(folder)!r})
        """
    )
    assert saved.returncode == 0, saved.stderr[-2000:]
    # what nb2pipe explain and the explain step do: load the Keras model (TensorFlow), then alibi
    done = run_python(
        f"""
        import sys
        from nb2pipe.store.registry import load_explainable, resolve_model
        model = load_explainable(resolve_model({str(folder)!r}))
        import alibi.explainers
        print(type(model).__name__, "triton" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["Sequential", "True"]


def test_nothing_is_loaded_when_tensorflow_came_first_or_triton_is_absent() -> None:
    done = run_python(
        """
        import sys, importlib.util
        from nb2pipe import native_order
        sys.modules["tensorflow"] = type(sys)("tensorflow")  # loaded already: too late to help
        native_order.load_triton_before_tensorflow()
        late = "triton" in sys.modules
        del sys.modules["tensorflow"]
        importlib.util.find_spec = lambda name, *a: None  # not installed
        native_order.load_triton_before_tensorflow()
        print(late, "triton" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]
