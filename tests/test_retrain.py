"""End to end, locally: train -> register -> serve with payload logging -> drifted traffic ->
``nb2pipe retrain`` detects the drift, retrains, registers a new version, promotes it only
when it is at least as accurate, and the endpoint then serves the promoted version.

Everything is real: kfp.local tasks, a sqlite MLflow store, KServe's ModelServer on
127.0.0.1 (stopped by PID at the end), alibi-detect for the drift test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer

from tests.support.nbtools import EXAMPLES, ROOT

pytestmark = pytest.mark.slow  # trains, serves, drifts and retrains through the CLI

SERVICE = "breast-cancer"


def nb2pipe(*args: str, timeout: float = 300) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", *args, "--json"], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def send(workdir: Path, rows: int, shift: float, seed: int) -> None:
    tool = ROOT / "examples" / "tools" / "send_traffic.py"
    command = [sys.executable, str(tool), str(workdir), SERVICE, "--rows", str(rows), "--seed", str(seed)]
    done = subprocess.run([*command, "--shift", str(shift)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def endpoint(workdir: Path) -> dict[str, Any]:
    return json.loads((workdir / "endpoints" / f"{SERVICE}.json").read_text(encoding="utf-8"))


def served_version(workdir: Path) -> str:
    """The model version the running server answers with (a v2 inference response says)."""
    row = [float(v) for v in load_breast_cancer().data[0]]
    body = {"inputs": [{"name": "x", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
    request = urllib.request.Request(
        f"{endpoint(workdir)['url']}/v2/models/{SERVICE}/infer",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["model_version"])


def steps(result: dict[str, Any]) -> dict[str, Any]:
    return {step["name"]: step for step in result["steps"]}


@pytest.fixture
def watched(tmp_path: Path):
    notebook = tmp_path / "monitoring.ipynb"
    shutil.copyfile(EXAMPLES / "monitoring.ipynb", notebook)
    workdir = tmp_path / "work"
    try:
        yield notebook, workdir
    finally:
        subprocess.run(
            [sys.executable, "-m", "nb2pipe", "endpoints", "--workdir", str(workdir), "--stop-all"],
            capture_output=True,
            timeout=60,
        )


def test_drifted_traffic_retrains_promotes_and_redeploys(watched):
    notebook, workdir = watched
    first = nb2pipe("run", str(notebook), "--workdir", str(workdir))
    assert first["status"] == "succeeded"
    assert [(m["version"], m["champion"]) for m in first["models"]] == [("1", True)]
    assert served_version(workdir) == "1"
    # the training run also explained rows and checked its held-out rows for drift
    assert (Path(first["outputs_dir"]) / "explain-breast-cancer-anchor" / "explanation").is_file()
    assert first["metrics"]["is_drift"] == 0.0

    # traffic like the training data: no drift, nothing retrained
    send(workdir, rows=300, shift=0.0, seed=1)
    quiet = nb2pipe("retrain", str(notebook), "--workdir", str(workdir))
    assert quiet["retrain"] is False
    assert quiet["models"] == []
    assert steps(quiet)["check-drift"]["status"] == "succeeded"
    assert steps(quiet)["train"]["status"] != "succeeded"
    assert Path(quiet["drift_report"]).is_file()

    # drifted traffic, and a worse model: retrained and registered, but not promoted
    send(workdir, rows=300, shift=1.0, seed=2)
    worse = nb2pipe("retrain", str(notebook), "--workdir", str(workdir), "--param", "C=0.0001")
    assert worse["retrain"] is True
    assert [(m["version"], m["champion"]) for m in worse["models"]] == [("2", False)]
    assert served_version(workdir) == "1"

    # the drift is still there; a model as good as the champion is promoted and served
    better = nb2pipe("retrain", str(notebook), "--workdir", str(workdir))
    assert better["retrain"] is True
    assert [(m["version"], m["champion"]) for m in better["models"]] == [("3", True)]
    assert endpoint(workdir)["model_uri"] == "models:/breast-cancer/3"
    assert served_version(workdir) == "3"
