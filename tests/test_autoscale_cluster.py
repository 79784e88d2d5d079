"""``nb2pipe autoscale`` on a cluster: the actuator's PATCHes against a loopback Kubernetes API
(tests/support/fake_kserve.py), CRD-valid results, and the command end to end with a loopback
Prometheus."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.capacity.cluster_actuator import ActuatorError, ClusterActuator
from nb2pipe.capacity.control import Decision, VariantSetting
from nb2pipe.capacity.deployment import inference_graph
from nb2pipe.capacity.forecast import OnlineForecaster
from nb2pipe.capacity.model import VariantOption
from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan import VariantServing, build_plan, write_plan
from nb2pipe.cli import autoscale as autoscale_cli
from tests.support.crd_schema import validate_resource
from tests.support.fake_kserve import API, GRAPH_API, MERGE_PATCH, point_kubeconfig_at
from tests.support.isvc_dicts import standard
from tests.support.loopback import LoopbackServer

NS = "models"


@pytest.fixture
def cluster(kserve_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LoopbackServer:
    point_kubeconfig_at(monkeypatch, tmp_path / "kubeconfig.yaml", kserve_server.url, "t0ken")
    return kserve_server


def deployed(cluster: LoopbackServer, name: str, **predictor: Any) -> None:
    resource = standard(**{"minReplicas": 1, "maxReplicas": 4, "batcher": {"maxBatchSize": 4, "maxLatency": 75}})
    resource["metadata"]["name"] = name
    resource["spec"]["predictor"].update(predictor)
    cluster.fake.store(resource, NS)  # type: ignore[attr-defined]


def deployed_graph(cluster: LoopbackServer, percents: dict[str, int]) -> None:
    entries = tuple(VariantServing(v, None, 1, 4, 10, 8, 4, 75, p) for v, p in percents.items())
    cluster.fake.graphs[NS, "digits"] = {**inference_graph("digits", entries, NS), "status": {}}  # type: ignore[attr-defined]


def decision(*settings: VariantSetting) -> Decision:
    return Decision(1.0, 10.0, 12.0, settings, "test")


def patches(cluster: LoopbackServer) -> list[tuple[str, Any]]:
    found = [r for r in cluster.requests if r.method == "PATCH"]
    assert all(r.headers["content-type"] == MERGE_PATCH for r in found)
    return [(r.path, r.json()) for r in found]


def test_one_variant_patches_only_what_changes_and_reads_it_back(cluster: LoopbackServer) -> None:
    deployed(cluster, "digits")
    actuator = ClusterActuator("digits", ["forest"], NS)
    assert actuator.current() == (VariantSetting("forest", 1, 4, 4, 75, 100),)
    actuator.apply(decision(VariantSetting("forest", 3, 5, 4, 75, 100)))
    assert patches(cluster) == [
        (
            f"{API}/namespaces/{NS}/inferenceservices/digits",
            {"spec": {"predictor": {"minReplicas": 3, "maxReplicas": 5}}},
        )
    ]
    stored = cluster.fake.service(NS, "digits")  # type: ignore[attr-defined]
    validate_resource(stored)
    assert actuator.current() == (VariantSetting("forest", 3, 5, 4, 75, 100),)
    # idempotent: the same settings again send nothing
    cluster.requests.clear()
    actuator.apply(decision(VariantSetting("forest", 3, 5, 4, 75, 100)))
    assert patches(cluster) == []


def test_never_a_zero_floor_and_never_min_above_max(cluster: LoopbackServer) -> None:
    deployed(cluster, "digits", minReplicas=2)
    actuator = ClusterActuator("digits", ["forest"], NS)
    actuator.apply(decision(VariantSetting("forest", 0, 0, 8, 40, 100)))
    [(_, body)] = patches(cluster)
    assert body == {
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1, "batcher": {"maxBatchSize": 8, "maxLatency": 40}}}
    }
    validate_resource(cluster.fake.service(NS, "digits"))  # type: ignore[attr-defined]


def test_several_variants_patch_each_service_then_the_splitter(cluster: LoopbackServer) -> None:
    deployed(cluster, "digits-small")
    deployed(cluster, "digits-big")
    deployed_graph(cluster, {"small": 70, "big": 30})
    actuator = ClusterActuator("digits", ["small", "big"], NS)
    assert [s.percent for s in actuator.current() or ()] == [70, 30]
    wanted = (VariantSetting("small", 4, 6, 4, 75, 100), VariantSetting("big", 0, 4, 4, 75, 0))
    actuator.apply(decision(*wanted))
    sent = patches(cluster)
    assert [path.rsplit("/", 1)[-1] for path, _ in sent] == ["digits-small", "digits"]
    assert sent[0][1] == {"spec": {"predictor": {"minReplicas": 4, "maxReplicas": 6}}}
    assert sent[1][0] == f"{GRAPH_API}/namespaces/{NS}/inferencegraphs/digits"
    graph = cluster.fake.graphs[NS, "digits"]  # type: ignore[attr-defined]
    validate_resource(graph)
    assert graph["spec"]["nodes"]["root"] == {
        "routerType": "Splitter",
        "steps": [{"serviceName": "digits-small", "weight": 100}],
    }
    # the big variant stays at one warm replica, out of the split
    assert actuator.current() == (VariantSetting("small", 4, 6, 4, 75, 100), VariantSetting("big", 1, 4, 4, 75, 0))
    actuator.apply(decision(VariantSetting("small", 2, 6, 4, 75, 55), VariantSetting("big", 2, 4, 4, 75, 45)))
    steps = cluster.fake.graphs[NS, "digits"]["spec"]["nodes"]["root"]["steps"]  # type: ignore[attr-defined]
    assert [(s["serviceName"], s["weight"]) for s in steps] == [("digits-small", 55), ("digits-big", 45)]


def test_a_split_that_does_not_add_up_is_refused_before_any_patch(cluster: LoopbackServer) -> None:
    actuator = ClusterActuator("digits", ["small", "big"], NS)
    with pytest.raises(ActuatorError, match="adds up to 90 %"):
        actuator.apply(decision(VariantSetting("small", 1, 1, 4, 75, 60), VariantSetting("big", 1, 1, 4, 75, 30)))
    assert cluster.requests == []


def test_nothing_deployed_reads_as_none_and_applying_says_deploy_first(cluster: LoopbackServer) -> None:
    actuator = ClusterActuator("digits", ["forest"], NS)
    assert actuator.current() is None
    with pytest.raises(ActuatorError, match=r"InferenceService models/digits does not exist; deploy the plan first"):
        actuator.apply(decision(VariantSetting("forest", 1, 1, 4, 75, 100)))


def test_a_refusal_carries_the_api_servers_message(cluster: LoopbackServer) -> None:
    cluster.fake.fail_reads_with = (403, 'inferenceservices "digits" is forbidden: User cannot get')  # type: ignore[attr-defined]
    with pytest.raises(ActuatorError, match=r"refused to read inferenceservices models/digits: .*is forbidden"):
        ClusterActuator("digits", ["forest"], NS).current()


def test_an_api_server_that_does_not_answer_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with LoopbackServer(lambda r: (200, {})) as gone:
        url = gone.url
    point_kubeconfig_at(monkeypatch, tmp_path / "kubeconfig.yaml", url, "t0ken")
    with pytest.raises(ActuatorError, match=f"API server at {url} does not answer"):
        ClusterActuator("digits", ["forest"], NS).current()


# --- the command ----------------------------------------------------------------------------------


def plan_file(tmp_path: Path, online: bool = True) -> Path:
    option = VariantOption("forest", None, 4, 10.0, 0.05)
    plan = build_plan(
        [5.0, 40.0],
        0,
        Optimizer((option,)),
        slo_ms=200.0,
        interval_s=30,
        cold_start_s=30.0,
        price_per_replica_hour=1.0,
        forecast={"method": "online" if online else "day-ahead"},
        online=OnlineForecaster(30, 30, 60, 0, (1.2,), 1.0) if online else None,
    )
    return write_plan(tmp_path / "plan.json", plan)


@pytest.fixture
def prometheus() -> Any:
    def answer(request: Any) -> tuple[int, Any]:
        if request.path == "/api/v1/query_range":
            start, step = float(request.query["start"][0]), float(request.query["step"][0])
            values = [[start + i * step, "20"] for i in range(200)]
            return 200, {"status": "success", "data": {"resultType": "matrix", "result": [{"values": values}]}}
        return 200, {"status": "success", "data": {"resultType": "vector", "result": [{"value": [0, "20"]}]}}

    with LoopbackServer(answer) as server:
        yield server


def autoscale(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    cli_main = importlib.import_module("nb2pipe.cli.main")
    if autoscale_cli.add_commands not in cli_main.COMMAND_GROUPS:  # until main.py registers it
        monkeypatch.setattr(cli_main, "COMMAND_GROUPS", (*cli_main.COMMAND_GROUPS, autoscale_cli.add_commands))
    return cli_main.main(["autoscale", *argv])


def test_once_dry_run_prints_one_decision_and_changes_nothing(
    cluster: LoopbackServer, prometheus: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    deployed(cluster, "digits")
    argv = ["digits", "--plan", str(plan_file(tmp_path)), "--prometheus-url", prometheus.url, "--once"]
    assert autoscale(monkeypatch, *argv, "--dry-run", "--decisions", str(tmp_path / "d.jsonl")) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["settings"][0]["replicas"] == 3 and printed["observed_rps"] == 20.0  # 20 x 1.2 / 10
    assert json.loads((tmp_path / "d.jsonl").read_text()) == printed
    assert patches(cluster) == []
    queries = {r.query["query"][0] for r in prometheus.requests}
    # the kubeconfig context's namespace: a digits of another namespace is not counted
    assert queries == {'sum(rate(request_predict_seconds_count{namespace="models",model_name="digits"}[60s]))'}
    # without --dry-run the same decision is applied
    assert autoscale(monkeypatch, *argv) == 0
    assert patches(cluster) == [
        (f"{API}/namespaces/{NS}/inferenceservices/digits", {"spec": {"predictor": {"minReplicas": 3}}})
    ]


@pytest.mark.parametrize(
    ("flags", "selector"),
    [
        (["--namespace", NS, "--prometheus-namespace-label", "kubernetes_namespace"], 'kubernetes_namespace="models",'),
        (["--prometheus-namespace-label", ""], ""),
    ],
)
def test_the_namespace_label_flag_reaches_the_query_prometheus_is_asked(
    cluster: LoopbackServer,
    prometheus: LoopbackServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    selector: str,
) -> None:
    deployed(cluster, "digits")
    argv = ["digits", "--plan", str(plan_file(tmp_path)), "--prometheus-url", prometheus.url, "--once", "--dry-run"]
    assert autoscale(monkeypatch, *argv, *flags) == 0
    queries = {r.query["query"][0] for r in prometheus.requests}
    assert queries == {f'sum(rate(request_predict_seconds_count{{{selector}model_name="digits"}}[60s]))'}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--prometheus-namespace-label", "k8s-namespace"], "is not a label name"),
        (["--prometheus-namespace-label", "namespace", "--knative"], "leave it out with --local, --knative or --query"),
    ],
)
def test_a_namespace_label_the_query_cannot_use_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, flags: list[str], expected: str
) -> None:
    argv = ["digits", "--plan", str(plan_file(tmp_path)), "--prometheus-url", "http://p:9090", "--once"]
    assert autoscale(monkeypatch, *argv, *flags) == 1
    assert expected in capsys.readouterr().err


def test_a_day_ahead_plan_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    argv = ["digits", "--plan", str(plan_file(tmp_path, online=False)), "--prometheus-url", "http://p:9090"]
    assert autoscale(monkeypatch, *argv, "--once") == 1
    assert "holds no fitted online forecaster" in capsys.readouterr().err
