"""pytest switches shared by the suite."""

from __future__ import annotations

import os

import pytest

from nb2pipe.native_order import load_triton_before_tensorflow
from tests.support.example_runs import example_run  # noqa: F401  (a session fixture)
from tests.support.fake_kfp import kfp_server  # noqa: F401  (a fixture)
from tests.support.fake_kserve import kserve_server, model_folder, offline  # noqa: F401  (fixtures)
from tests.support.registered import registered_model  # noqa: F401  (a session fixture)

# no test may reach past 127.0.0.1: MLflow would fetch its telemetry configuration
os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
# test modules import Keras/TensorFlow at the top, before nb2pipe's own guard runs (native_order.py)
load_triton_before_tensorflow()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
