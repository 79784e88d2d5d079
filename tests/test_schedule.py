"""``nb2pipe schedule``: the monitoring pipeline as a KFP recurring run (against a recording
KFP v2beta1 server on loopback: no Kubeflow runs here), and the local loop's timing."""

from __future__ import annotations

import pytest
import yaml

from nb2pipe.cli import main
from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.retrain import retrain_every
from tests.support.fake_clock import FakeClock
from tests.support.loopback import LoopbackServer
from tests.support.nbtools import EXAMPLES

MONITORED = EXAMPLES / "monitoring.ipynb"


def uploaded_pipeline(server: LoopbackServer) -> dict:
    upload = next(r for r in server.requests if r.path.endswith("/pipelines/upload"))
    body = upload.body
    start = body.index(b"# PIPELINE DEFINITION")
    end = body.index(b"\r\n--", start)
    return yaml.safe_load(body[start:end])


def test_schedule_creates_a_recurring_run_of_the_monitoring_pipeline(kfp_server, capsys):
    code = main(
        [
            "schedule",
            str(MONITORED),
            "--cron",
            "0 3 * * *",
            "--host",
            kfp_server.url,
            "--payloads",
            "/mnt/payloads/breast-cancer",
            "--experiment",
            "watch",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == f"started recurring run: {kfp_server.url}/#/recurringrun/details/rr-1"
    (recurring,) = kfp_server.fake.recurring
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert recurring["runtime_config"]["parameters"]["payloads"] == "/mnt/payloads/breast-cancer"
    pipeline = uploaded_pipeline(kfp_server)
    assert pipeline["pipelineInfo"]["name"] == "monitoring-monitor"
    tasks = pipeline["root"]["dag"]["tasks"]
    assert sorted(tasks) == ["check-drift", "condition-1"]


def test_schedule_every_makes_an_interval_run(kfp_server):
    assert main(["schedule", str(MONITORED), "--every", "6h", "--host", kfp_server.url, "--force"]) == 0
    (recurring,) = kfp_server.fake.recurring
    assert recurring["trigger"]["periodic_schedule"]["interval_second"] == 6 * 3600
    assert recurring["runtime_config"]["parameters"]["force_retrain"] is True


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--cron", "0 3 * * *", "--local"], "--every"),
        (["--every", "1h", "--host", "http://127.0.0.1:9", "--runs", "2"], "--local only"),
    ],
)
def test_schedule_refuses_options_that_do_not_fit(argv: list[str], needle: str, capsys):
    assert main(["schedule", str(MONITORED), *argv]) == 1
    assert needle in capsys.readouterr().err


def test_the_local_loop_keeps_its_interval_start_to_start(monkeypatch):
    clock = FakeClock()
    seen: list[str] = []

    def one_run(notebook: str, **options: object) -> str:
        clock.now += 40  # a run that takes 40 s of a 100 s interval
        seen.append(str(notebook))
        return f"outcome-{len(seen)}"

    monkeypatch.setattr("nb2pipe.monitoring.retrain.retrain_notebook", one_run)
    outcomes: list[object] = []
    made = retrain_every("nb.ipynb", 100, on_outcome=outcomes.append, runs=3, sleep=clock.sleep, clock=clock)
    assert made == 3 and outcomes == ["outcome-1", "outcome-2", "outcome-3"]
    assert clock.slept == [60, 60]  # no sleep after the last run


def test_the_local_loop_needs_a_positive_interval():
    with pytest.raises(Nb2PipeError, match="positive"):
        retrain_every("nb.ipynb", 0, on_outcome=print)
