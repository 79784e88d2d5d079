"""`nb2pipe submit` against a recording KFP v2beta1 API server on loopback (no Kubeflow
server can run here): what kfp.Client sends, and how failures read."""

from __future__ import annotations

import socket
import time

import pytest

from nb2pipe.cli import main
from nb2pipe.errors import Nb2PipeError
from nb2pipe.runners.kubeflow import kfp_cron, parse_duration, submit_notebook
from tests.support.fake_kfp import API
from tests.support.nbtools import EXAMPLES

EXAMPLE = EXAMPLES / "parameters_metrics.ipynb"


def test_first_submit_uploads_the_pipeline_and_starts_a_run(kfp_server, monkeypatch, capsys):
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "secret-token")
    assert (
        main(
            [
                "submit",
                str(EXAMPLE),
                "--host",
                kfp_server.url,
                "--experiment",
                "nightly",
                "--run-name",
                "try-1",
                "--param",
                "n_samples=500",
                "--param",
                "noise=0.1",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == f"started run: {kfp_server.url}/#/runs/details/r-1"

    calls = [(r.method, r.path) for r in kfp_server.requests]
    assert (("POST", f"{API}/pipelines/upload")) in calls and ("POST", f"{API}/runs") in calls
    upload = next(r for r in kfp_server.requests if r.path.endswith("/pipelines/upload"))
    assert upload.query["name"] == ["parameters-metrics"]
    assert b"pipelineInfo:" in upload.body and b"name: parameters-metrics" in upload.body
    assert all(
        r.headers.get("authorization") == "Bearer secret-token"
        for r in kfp_server.requests
        if r.path != f"{API}/healthz"
    )
    (run,) = kfp_server.fake.runs
    assert run["display_name"] == "try-1"
    assert run["experiment_id"] == "e-1"
    assert run["pipeline_version_reference"] == {"pipeline_id": "p-1", "pipeline_version_id": "p-1-v1"}
    assert run["runtime_config"]["parameters"] == {"n_samples": 500, "noise": 0.1}
    assert kfp_server.fake.experiments["e-1"]["display_name"] == "nightly"


def test_a_second_submit_adds_a_version(kfp_server):
    first = submit_notebook(EXAMPLE, host=kfp_server.url)
    second = submit_notebook(EXAMPLE, host=kfp_server.url)
    assert first.pipeline_id == second.pipeline_id == "p-1"
    assert (first.version_id, second.version_id) == ("p-1-v1", "p-1-v2")
    assert sum(1 for r in kfp_server.requests if r.path.endswith("/upload_version")) == 1
    assert len(kfp_server.fake.experiments) == 1  # the experiment is found, not made twice


def test_schedules_become_recurring_runs(kfp_server):
    nightly = submit_notebook(EXAMPLE, host=kfp_server.url, cron="0 3 * * *")
    hourly = submit_notebook(EXAMPLE, host=kfp_server.url, every="1h30m")
    assert nightly.url.endswith("/#/recurringrun/details/rr-1") and nightly.run_id is None
    cron, interval = kfp_server.fake.recurring
    assert cron["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert interval["trigger"]["periodic_schedule"]["interval_second"] == 5400
    assert cron["mode"] == "ENABLE" and cron["max_concurrency"] in (1, "1") and cron["no_catchup"] is True
    assert hourly.recurring_run_id == "rr-2"


def test_api_errors_read_as_one_line(kfp_server):
    kfp_server.fake.fail_runs_with = (500, "database is down")
    with pytest.raises(Nb2PipeError) as caught:
        submit_notebook(EXAMPLE, host=kfp_server.url)
    assert (
        str(caught.value) == f"Kubeflow Pipelines at {kfp_server.url} answered 500 Internal Server Error: "
        "database is down"
    )


def test_unreachable_hosts_fail_within_ten_seconds():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(Nb2PipeError, match=r"cannot reach Kubeflow Pipelines at .*Connection refused"):
        submit_notebook(EXAMPLE, host=f"http://127.0.0.1:{port}")
    assert time.monotonic() - start < 10

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(Nb2PipeError, match="cannot reach Kubeflow Pipelines"):
            submit_notebook(EXAMPLE, host=f"http://127.0.0.1:{silent.getsockname()[1]}")
        assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    ("given", "expected"),
    [("0 3 * * *", "0 0 3 * * *"), ("*/15 * * * 1-5", "0 */15 * * * 1-5"), ("30 0 3 * * *", "30 0 3 * * *")],
)
def test_five_field_cron_becomes_kfps_six_fields(given: str, expected: str):
    assert kfp_cron(given) == expected


@pytest.mark.parametrize("bad", ["* * *", "0 3 * * * * *", "0 3 * * $"])
def test_bad_cron_is_explained(bad: str):
    with pytest.raises(Nb2PipeError, match="--schedule"):
        kfp_cron(bad)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("45s", 45), ("15m", 900), ("1h30m", 5400), ("1d", 86400)])
def test_durations(text: str, seconds: int):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "0", "1x", "h", "1.5h"])
def test_bad_durations(bad: str):
    with pytest.raises(Nb2PipeError, match="--every"):
        parse_duration(bad)
