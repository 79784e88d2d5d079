"""``nb2pipe plan`` end to end: a synthetic profile and the real Twitter trace -> a capacity plan
(online for day 8, and day-ahead), its JSON file, and ``nb2pipe deploy --plan`` turning it into
InferenceServices and an InferenceGraph that match KServe's CRDs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nb2pipe.capacity.deployment import deployed_split, render_plan, variant_service
from nb2pipe.capacity.model import VariantOption, with_slo_rates
from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan import CapacityPlan, PlanError, VariantServing, build_plan, read_plan, write_plan
from nb2pipe.capacity.planning import plan_from_trace
from nb2pipe.capacity.profile import Profile, read_profile, write_profile
from nb2pipe.capacity.scenario import Choices
from nb2pipe.capacity.trace import DAY_S, DaySpan, interval_peaks, read_trace, select_days
from nb2pipe.cli import main
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DeploySettings
from nb2pipe.store.registry import TRACKING_ENV
from tests.support.capacity_profiles import BATCH_SIZES, synthetic_profile
from tests.support.crd_schema import validate_resource
from tests.support.registered import RegisteredModel

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "data" / "twitter-trace-days01-14.txt"
FORESTS = ROOT / "tests" / "data" / "digits_forests.profile.json"
SLO_MS = 150.0
INTERVAL_S = 30
CLI_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def trace() -> np.ndarray:
    if not TRACE.is_file():
        pytest.skip(f"{TRACE} is not here")
    return read_trace(TRACE)


@pytest.fixture(scope="module")
def rated() -> Profile:
    """The profile with each batch size's rate under the SLO (simulated once for the module)."""
    return with_slo_rates(synthetic_profile(), SLO_MS)


@pytest.fixture(scope="module")
def online_plans(rated: Profile, trace: np.ndarray) -> dict[float, CapacityPlan]:
    return {
        scale: plan_from_trace(
            rated,
            trace,
            Choices(slo_ms=SLO_MS, days=DaySpan(8, 8), fit_days=DaySpan(1, 7), scale=scale),
            str(TRACE),
        )
        for scale in (1.0, 4.0)
    }


# --- the plan --------------------------------------------------------------------------------


def test_the_profile_rates_are_what_each_variant_carries_at_its_best_batch(rated: Profile) -> None:
    for variant in rated.variants:
        rates = [b.max_rate_under_slo for b in variant.batches]
        assert all(r is not None and r > 0 for r in rates)
        # no replica beats full batches back to back at the median service time
        for batch, rate in zip(variant.batches, rates, strict=True):
            assert rate is not None and rate <= batch.batch_size / (batch.service_ms[50] / 1000.0)
    assert rated.slo_ms == SLO_MS


def check_serving_fields(plan: CapacityPlan) -> None:
    options = {o.name: o for o in plan.options}
    used = {s.variant for i in plan.intervals for s in i.allocation.shares}
    assert [s.variant for s in plan.serving] == [o.name for o in plan.options if o.name in used]
    busiest = max(plan.intervals, key=lambda i: (i.forecast_rps, -i.start_s))
    assert busiest.forecast_rps == max(i.forecast_rps for i in plan.intervals)
    assert sum(s.traffic_percent for s in plan.serving) == 100
    for serving in plan.serving:
        option = options[serving.variant]
        counts = [i.allocation.replicas_of(serving.variant) for i in plan.intervals]
        assert serving.min_replicas == min(counts)
        assert serving.max_replicas == max(counts)
        assert serving.max_replicas >= 1
        assert serving.max_batch_size == option.batch_size
        assert serving.container_concurrency == 2 * option.batch_size
        assert serving.scale_metric == "rps"
        assert serving.scale_target == max(1, math.floor(option.rate_per_replica))
        assert serving.model_uri == option.model_uri
        # the batcher's wait plus a full batch's p99 service time fit in the SLO
        assert serving.max_latency_ms >= 1
        assert serving.max_latency_ms + option.service_p99_s * 1000 <= plan.slo_ms
        share = next((s.traffic for s in busiest.allocation.shares if s.variant == serving.variant), 0.0)
        assert abs(serving.traffic_percent - 100 * share) < 1


def check_intervals(plan: CapacityPlan) -> None:
    rates = {o.name: o.rate_per_replica for o in plan.options}
    for interval in plan.intervals:
        allocation = interval.allocation
        capacity = sum(s.replicas * rates[s.variant] for s in allocation.shares)
        assert allocation.capacity_rps == pytest.approx(capacity)
        assert capacity >= interval.forecast_rps
        assert sum(s.traffic for s in allocation.shares) == pytest.approx(1.0)
        for share in allocation.shares:
            assert share.batch_size in BATCH_SIZES


@pytest.mark.slow
def test_online_plans_for_day_8_at_scale_1_and_4(online_plans: dict[float, CapacityPlan], trace: np.ndarray) -> None:
    for scale, plan in online_plans.items():
        assert (plan.slo_ms, plan.interval_s) == (SLO_MS, INTERVAL_S)
        assert [i.start_s for i in plan.intervals] == list(range(7 * DAY_S, 8 * DAY_S, INTERVAL_S))
        assert plan.forecast["method"] == "online"
        assert (plan.forecast["fit_days"], plan.forecast["days"], plan.forecast["scale"]) == ("1-7", "8", scale)
        check_intervals(plan)
        check_serving_fields(plan)
        # made before each interval, the forecasts cover most actual peaks: the planner picks the
        # cheapest headroom whose simulated violations stay in budget, not full coverage
        peaks = interval_peaks(select_days(trace, DaySpan(8, 8)) * scale, INTERVAL_S)
        forecasts = np.array([i.forecast_rps for i in plan.intervals])
        assert np.mean(peaks <= forecasts + 1e-3) >= 0.85
    small, large = online_plans[1.0], online_plans[4.0]
    assert large.replica_hours > small.replica_hours
    # ten times the load costs less than ten times the replicas (fuller replicas, larger batches)
    assert large.replica_hours < 10 * small.replica_hours
    assert max(s.max_replicas for s in large.serving) > max(s.max_replicas for s in small.serving)


@pytest.mark.slow
def test_each_variant_runs_at_its_best_batch_size(online_plans: dict[float, CapacityPlan], rated: Profile) -> None:
    for option in online_plans[1.0].options:
        batches = rated.variant(option.name).batches
        best = max(b.max_rate_under_slo or 0.0 for b in batches)
        assert option.rate_per_replica == best
        chosen = rated.variant(option.name).batch(option.batch_size)
        assert chosen.max_rate_under_slo == best
        assert option.service_p99_s == pytest.approx(chosen.service_ms[99] / 1000.0)


def test_the_day_ahead_plan_covers_the_day_after_the_history(rated: Profile, trace: np.ndarray) -> None:
    plan = plan_from_trace(rated, trace, Choices(slo_ms=SLO_MS, fit_days=DaySpan(1, 7)), str(TRACE))
    assert len(plan.intervals) == 2880
    assert plan.intervals[0].start_s == 7 * DAY_S  # day 8's first second
    assert [i.start_s for i in plan.intervals] == list(range(7 * DAY_S, 8 * DAY_S, INTERVAL_S))
    assert plan.forecast["method"] == "day-ahead"
    assert (plan.forecast["fit_days"], plan.forecast["day"]) == ("1-7", 8)
    check_intervals(plan)
    check_serving_fields(plan)


def test_plans_refuse_an_interval_that_does_not_divide_a_day(rated: Profile, trace: np.ndarray) -> None:
    with pytest.raises(Nb2PipeError, match="--interval-s 7"):
        plan_from_trace(rated, trace, Choices(slo_ms=SLO_MS, fit_days=DaySpan(1, 7), interval_s=7))


# --- the plan file ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_plan_survives_its_json_file(online_plans: dict[float, CapacityPlan], tmp_path: Path) -> None:
    plan = online_plans[4.0]
    path = write_plan(tmp_path / "plan.json", plan)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "nb2pipe.plan/1"
    assert data["summary"]["intervals"] == len(plan.intervals)
    assert data["summary"]["replica_hours"] == pytest.approx(plan.replica_hours, abs=1e-3)

    back = read_plan(path)
    assert back.serving == plan.serving
    assert back.options == plan.options
    assert back.forecast == plan.forecast
    assert (back.slo_ms, back.interval_s, back.cold_start_s) == (plan.slo_ms, plan.interval_s, plan.cold_start_s)
    assert (back.price_per_replica_hour, back.accuracy_value) == (plan.price_per_replica_hour, plan.accuracy_value)
    assert len(back.intervals) == len(plan.intervals)
    for read, written in zip(back.intervals, plan.intervals, strict=True):
        assert (read.start_s, read.forecast_rps) == (written.start_s, written.forecast_rps)
        assert read.allocation.shares == written.allocation.shares
        assert read.allocation.capacity_rps == pytest.approx(written.allocation.capacity_rps, abs=0.005)
    assert back.replica_hours == pytest.approx(plan.replica_hours)


def plan_error(path: Path) -> str:
    with pytest.raises(PlanError) as caught:
        read_plan(path)
    assert isinstance(caught.value, Nb2PipeError)
    assert str(path) in str(caught.value)
    return str(caught.value)


@pytest.mark.slow
def test_read_plan_errors_name_the_file(tmp_path: Path, online_plans: dict[float, CapacityPlan]) -> None:
    assert "no such file; make one with nb2pipe plan" in plan_error(tmp_path / "missing.json")

    broken = tmp_path / "broken.json"
    broken.write_text('{\n "format": "nb2pipe.plan/1",\n "slo_ms": nope\n}\n', encoding="utf-8")
    message = plan_error(broken)
    assert "line 3" in message and "not JSON" in message

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "nb2pipe.profile/1"}), encoding="utf-8")
    assert "not an nb2pipe plan" in plan_error(other)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]", encoding="utf-8")
    assert "not an nb2pipe plan" in plan_error(listed)

    good = json.loads(write_plan(tmp_path / "good.json", online_plans[1.0]).read_text(encoding="utf-8"))
    for key, value in (("kserve", None), ("intervals", [{"start_s": 0}]), ("slo_ms", "fast")):
        damaged = dict(good)
        if value is None:
            del damaged[key]
        else:
            damaged[key] = value
        path = tmp_path / f"no-{key}.json"
        path.write_text(json.dumps(damaged), encoding="utf-8")
        assert "missing or malformed" in plan_error(path)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(dict(good, kserve=[])), encoding="utf-8")
    assert "serves no variant" in plan_error(empty)


# --- nb2pipe deploy --plan -------------------------------------------------------------------


@pytest.fixture
def registry(registered_model: RegisteredModel, monkeypatch: pytest.MonkeyPatch) -> RegisteredModel:
    monkeypatch.setenv(TRACKING_ENV, registered_model.tracking_uri)
    return registered_model


def two_variant_plan(model_uri: str) -> CapacityPlan:
    """Two variants that share the busiest interval: at 850 requests/s one replica of the
    accurate one and two of the fast one beat three of the fast one."""
    return _large_and_small_plan([300.0, 850.0, 500.0, 40.0], model_uri)


def _large_and_small_plan(loads: list[float], model_uri: str) -> CapacityPlan:
    options = (
        VariantOption("large", 0.95, 4, 100.0, 0.040, model_uri),
        VariantOption("small", 0.90, 16, 400.0, 0.030, model_uri),
    )
    return build_plan(
        loads,
        0,
        Optimizer(options),
        slo_ms=SLO_MS,
        interval_s=INTERVAL_S,
        cold_start_s=30.0,
        price_per_replica_hour=1.0,
        forecast={"method": "given"},
    )


def predictor_matches(resource: dict[str, Any], serving: VariantServing) -> None:
    predictor = resource["spec"]["predictor"]
    assert predictor["minReplicas"] == serving.min_replicas
    assert predictor["maxReplicas"] == serving.max_replicas
    assert predictor["scaleMetric"] == "rps" == serving.scale_metric
    assert predictor["scaleTarget"] == serving.scale_target
    assert predictor["containerConcurrency"] == serving.container_concurrency
    assert predictor["batcher"] == {"maxBatchSize": serving.max_batch_size, "maxLatency": serving.max_latency_ms}


@pytest.mark.slow
def test_a_one_variant_plan_renders_one_inference_service(
    registry: RegisteredModel, rated: Profile, trace: np.ndarray, tmp_path: Path
) -> None:
    profile = replace(rated, variants=tuple(replace(v, model_uri=registry.model_uri) for v in rated.variants))
    choices = Choices(slo_ms=SLO_MS, fit_days=DaySpan(1, 7), variants=("small",))
    plan = read_plan(write_plan(tmp_path / "plan.json", plan_from_trace(profile, trace, choices, str(TRACE))))
    (serving,) = plan.serving
    (option,) = plan.options
    assert (serving.variant, serving.model_uri) == ("small", registry.model_uri)

    planned = render_plan(plan, "cancer-planned", DeploySettings())
    (resource,) = planned.resources
    validate_resource(resource)
    assert resource["kind"] == "InferenceService"
    assert resource["metadata"]["name"] == "cancer-planned"
    assert resource["metadata"]["annotations"]["nb2pipe.io/model-uri"] == registry.model_uri
    predictor_matches(resource, serving)
    # the same numbers from the plan's own intervals and variant
    counts = [i.allocation.replicas_of("small") for i in plan.intervals]
    predictor = resource["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (min(counts), max(counts))
    assert predictor["scaleTarget"] == math.floor(option.rate_per_replica)
    assert predictor["batcher"]["maxBatchSize"] == option.batch_size
    assert predictor["containerConcurrency"] == 2 * option.batch_size
    assert yaml.safe_load(planned.yaml) == resource


def steady_two_variant_plan(model_uri: str) -> CapacityPlan:
    """Two variants under a nearly steady load: every interval one replica of the accurate one
    and two of the fast one, so a fixed mix of the two is worth deploying."""
    return _large_and_small_plan([820.0, 850.0, 860.0, 840.0], model_uri)


def replica_counts(data: dict[str, Any], variant: str, percent: int) -> list[int]:
    """Replicas of ``variant`` per interval of a plan's JSON when it gets ``percent`` of every
    interval's forecast (rounded up to a whole request per second, as the planner plans)."""
    rate = next(v["rate_per_replica"] for v in data["variants"] if v["name"] == variant)
    loads = [max(1, math.ceil(i["forecast_rps"] - 1e-9)) for i in data["intervals"]]
    return [math.ceil(percent / 100 * load / rate - 1e-9) if percent else 0 for load in loads]


def fixed_split_outcome(data: dict[str, Any], split: dict[str, int]) -> dict[str, float]:
    """What a fixed split costs and serves over a two-variant plan's intervals, from its JSON."""
    accuracy = {v["name"]: v["accuracy"] for v in data["variants"]}
    intervals = len(data["intervals"])
    replicas = sum(sum(replica_counts(data, variant, percent)) for variant, percent in split.items())
    expected = sum(percent / 100 * accuracy[variant] for variant, percent in split.items())
    return {
        "replicas": replicas,
        "accuracy": expected,
        "objective": data["accuracy_value"] * 100 * intervals * expected - replicas,
        "replica_hours": replicas * data["interval_s"] / 3600,
    }


def best_fixed_split(data: dict[str, Any]) -> dict[str, int]:
    """Every fixed split of a two-variant plan tried; the best objective wins (then fewer replicas)."""
    first, second = (k["variant"] for k in data["kserve"])
    candidates = [{first: p, second: 100 - p} for p in range(101)]
    best = max(
        candidates,
        key=lambda c: (round(fixed_split_outcome(data, c)["objective"], 6), -fixed_split_outcome(data, c)["replicas"]),
    )
    return {variant: percent for variant, percent in best.items() if percent}


def schedule_accuracy(data: dict[str, Any]) -> float:
    """The plan's own schedule, per request: each interval's split weighted by its forecast."""
    accuracy = {v["name"]: v["accuracy"] for v in data["variants"]}
    load = sum(i["forecast_rps"] for i in data["intervals"])
    served = sum(
        i["forecast_rps"] * s["traffic"] * accuracy[s["variant"]] for i in data["intervals"] for s in i["shares"]
    )
    return served / load


@pytest.fixture(scope="module")
def forests_plan_json(trace: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's example, day-ahead: the digits forests at x10, where the plan's busiest interval
    sends most of the traffic to the small forest and the rest of the day mostly to the large one."""
    choices = Choices(slo_ms=SLO_MS, fit_days=DaySpan(1, 7), scale=10.0)
    plan = plan_from_trace(read_profile(FORESTS), trace, choices, str(TRACE))
    return write_plan(tmp_path_factory.mktemp("forests") / "plan.json", plan)


def test_a_real_plan_deploys_the_best_fixed_split_and_states_its_cost(forests_plan_json: Path) -> None:
    data = json.loads(forests_plan_json.read_text(encoding="utf-8"))
    busiest = {k["variant"]: k["traffic_percent"] for k in data["kserve"]}
    assert len(busiest) == 2 and all(p < 100 for p in busiest.values())  # a several-variant plan, split at its peak
    chosen = best_fixed_split(data)
    outcome = fixed_split_outcome(data, chosen)
    at_peak = fixed_split_outcome(data, busiest)
    assert outcome["objective"] >= at_peak["objective"]

    split, entries = deployed_split(read_plan(forests_plan_json))
    assert dict(split.percents) == chosen
    assert split.busiest_percents == tuple(busiest.items())
    assert split.expected_accuracy == pytest.approx(outcome["accuracy"], abs=1e-12)
    assert split.plan_accuracy == pytest.approx(schedule_accuracy(data), abs=1e-9)
    assert split.accuracy_difference == pytest.approx(outcome["accuracy"] - schedule_accuracy(data), abs=1e-9)
    assert split.replica_hours == pytest.approx(outcome["replica_hours"])
    assert split.plan_replica_hours == pytest.approx(data["summary"]["replica_hours"], abs=1e-3)
    peak = max(i["forecast_rps"] for i in data["intervals"])
    rates = {v["name"]: v["rate_per_replica"] for v in data["variants"]}
    assert split.peak_rps == peak
    for entry in entries:
        counts = replica_counts(data, entry.variant, chosen[entry.variant])
        assert (entry.min_replicas, entry.max_replicas) == (min(counts), max(counts))
        assert entry.max_replicas * rates[entry.variant] >= chosen[entry.variant] / 100 * peak
    assert split.covers_peak
    assert split.peak_capacity_rps == pytest.approx(sum(e.max_replicas * rates[e.variant] for e in entries))

    lines = split.summary()
    assert f"{outcome['accuracy']:.4f}" in lines[2] and f"{schedule_accuracy(data):.4f}" in lines[2]
    assert f"{outcome['replica_hours']:.1f}" in lines[3] and f"{data['summary']['replica_hours']:.1f}" in lines[3]
    assert "covered" in lines[4] and "NOT" not in lines[4]
    assert "nb2pipe autoscale" in lines[5]


@pytest.mark.slow
def test_a_real_plan_annotates_what_it_deploys(
    registry: RegisteredModel, forests_plan_json: Path, tmp_path: Path
) -> None:
    data = json.loads(forests_plan_json.read_text(encoding="utf-8"))
    for variant in data["variants"] + data["kserve"]:
        variant["model_uri"] = registry.model_uri
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(data), encoding="utf-8")
    chosen = best_fixed_split(data)
    outcome = fixed_split_outcome(data, chosen)

    planned = render_plan(read_plan(plan_path), "forests", DeploySettings())
    for resource in planned.resources:
        validate_resource(resource)
    endpoint = planned.resources[-1]
    assert endpoint["metadata"]["name"] == "forests"
    assert [r["kind"] for r in planned.resources] == (
        ["InferenceService"] if len(chosen) == 1 else ["InferenceService"] * len(chosen) + ["InferenceGraph"]
    )
    annotations = endpoint["metadata"]["annotations"]
    assert annotations["nb2pipe.io/split"] == ",".join(f"{v}={p}" for v, p in chosen.items())
    assert float(annotations["nb2pipe.io/expected-accuracy"]) == pytest.approx(outcome["accuracy"], abs=5e-5)
    assert float(annotations["nb2pipe.io/plan-accuracy"]) == pytest.approx(schedule_accuracy(data), abs=5e-5)
    assert float(annotations["nb2pipe.io/replica-hours"]) == pytest.approx(outcome["replica_hours"], abs=0.05)
    assert annotations["nb2pipe.io/model-uri"] == registry.model_uri  # the InferenceService's own stay
    assert planned.summary == planned.split.summary()


@pytest.mark.slow
def test_a_two_variant_plan_renders_services_and_a_splitting_graph(registry: RegisteredModel, tmp_path: Path) -> None:
    plan_path = write_plan(tmp_path / "plan.json", steady_two_variant_plan(registry.model_uri))
    data = json.loads(plan_path.read_text(encoding="utf-8"))
    chosen = best_fixed_split(data)
    assert len(chosen) == 2 and sum(chosen.values()) == 100  # a mix: both variants behind the graph
    outcome = fixed_split_outcome(data, chosen)
    plan = read_plan(plan_path)

    planned = render_plan(plan, "cancer-planned", DeploySettings(namespace="team-a"))
    assert [r["kind"] for r in planned.resources] == ["InferenceService", "InferenceService", "InferenceGraph"]
    for resource in planned.resources:
        validate_resource(resource)
        assert resource["metadata"]["namespace"] == "team-a"
    services = {r["metadata"]["name"]: r for r in planned.resources[:2]}
    assert set(services) == {"cancer-planned-large", "cancer-planned-small"}
    for serving in plan.serving:
        counts = replica_counts(data, serving.variant, chosen[serving.variant])
        sized = replace(serving, min_replicas=min(counts), max_replicas=max(counts))
        predictor_matches(services[f"cancer-planned-{serving.variant}"], sized)
        assert "nb2pipe.io/split" not in services[f"cancer-planned-{serving.variant}"]["metadata"]["annotations"]

    graph = planned.resources[2]
    assert graph["metadata"]["name"] == "cancer-planned"
    root = graph["spec"]["nodes"]["root"]
    assert root["routerType"] == "Splitter"
    weights = {step["serviceName"]: step["weight"] for step in root["steps"]}
    assert weights == {f"cancer-planned-{v}": p for v, p in chosen.items()}
    assert sum(weights.values()) == 100
    annotations = graph["metadata"]["annotations"]
    assert annotations["nb2pipe.io/split"] == f"large={chosen['large']},small={chosen['small']}"
    assert float(annotations["nb2pipe.io/expected-accuracy"]) == pytest.approx(outcome["accuracy"], abs=5e-5)
    assert float(annotations["nb2pipe.io/plan-accuracy"]) == pytest.approx(schedule_accuracy(data), abs=5e-5)
    assert float(annotations["nb2pipe.io/plan-replica-hours"]) == pytest.approx(
        data["summary"]["replica_hours"], abs=0.05
    )
    assert list(yaml.safe_load_all(planned.yaml)) == list(planned.resources)


def test_a_plan_that_cannot_be_sized_is_refused_with_its_fix(tmp_path: Path) -> None:
    data = json.loads(write_plan(tmp_path / "plan.json", steady_two_variant_plan("models:/cancer/1")).read_text())
    data["kserve"][0]["variant"] = "medium"
    data["variants"][1]["rate_per_replica"] = 0.0
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(Nb2PipeError) as raised:
        render_plan(read_plan(broken), "cancer-planned", DeploySettings())
    message = str(raised.value)
    assert "kserve entry 'medium' is none of its variants" in message
    assert "variant 'small' carries 0 requests/s" in message
    assert message.endswith("write it anew with nb2pipe plan")


def test_variant_service_names_are_dns_labels() -> None:
    assert variant_service("cancer-planned", "Big_Model.v2") == "cancer-planned-big-model-v2"
    assert len(variant_service("s" * 60, "variant")) <= 63


@pytest.mark.slow
def test_render_plan_refusals(registry: RegisteredModel) -> None:
    plan = two_variant_plan(registry.model_uri)
    with pytest.raises(Nb2PipeError, match="no variant 'medium'"):
        render_plan(plan, "cancer-planned", DeploySettings(), variant="medium")
    with pytest.raises(Nb2PipeError, match="several variants"):
        render_plan(plan, "cancer-planned", DeploySettings(), model_uri=registry.model_uri)
    picked = render_plan(plan, "cancer-planned", DeploySettings(), variant="small")
    (only,) = picked.resources
    assert only["metadata"]["name"] == "cancer-planned"
    validate_resource(only)
    # all the traffic goes to it, so it is sized for every interval's whole forecast
    loads = [max(1, math.ceil(i.forecast_rps - 1e-9)) for i in plan.intervals]
    rate = next(o.rate_per_replica for o in plan.options if o.name == "small")
    counts = [math.ceil(load / rate - 1e-9) for load in loads]
    predictor = only["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (min(counts), max(counts))
    assert picked.split is not None and picked.split.percents == (("small", 100),)
    assert only["metadata"]["annotations"]["nb2pipe.io/split"] == "small=100"


def run_cli(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "nb2pipe", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@pytest.mark.slow
def test_cli_deploy_plan_dry_run_writes_valid_yaml_and_states_the_split(
    registered_model: RegisteredModel, tmp_path: Path
) -> None:
    plan_path = write_plan(tmp_path / "plan.json", steady_two_variant_plan(registered_model.model_uri))
    data = json.loads(plan_path.read_text(encoding="utf-8"))
    chosen = best_fixed_split(data)
    outcome = fixed_split_outcome(data, chosen)
    out = tmp_path / "out.yaml"
    argv = ["deploy", "--name", "cancer-planned", "--plan", str(plan_path), "--dry-run"]
    environment = {TRACKING_ENV: registered_model.tracking_uri}
    done = run_cli(*argv, "-o", str(out), cwd=tmp_path, env=environment)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out}"
    documents = list(yaml.safe_load_all(out.read_text(encoding="utf-8")))
    assert [d["kind"] for d in documents] == ["InferenceService", "InferenceService", "InferenceGraph"]
    for document in documents:
        validate_resource(document)
    for serving, document in zip(read_plan(plan_path).serving, documents, strict=False):
        assert document["metadata"]["name"] == f"cancer-planned-{serving.variant}"
        counts = replica_counts(data, serving.variant, chosen[serving.variant])
        predictor_matches(document, replace(serving, min_replicas=min(counts), max_replicas=max(counts)))
    # the split and what it costs, on stderr (stdout may be the YAML)
    split_line = " / ".join(f"{p} % {v}" for v, p in chosen.items())
    assert f"traffic split: {split_line}" in done.stderr
    assert f"expected accuracy {outcome['accuracy']:.4f} per request" in done.stderr
    assert f"the plan's schedule {schedule_accuracy(data):.4f}" in done.stderr
    assert "nb2pipe autoscale" in done.stderr

    described = run_cli(*argv, "--json", cwd=tmp_path, env=environment)
    assert described.returncode == 0, described.stderr
    answer = json.loads(described.stdout)
    assert answer["split"]["split"] == chosen
    assert answer["split"]["expected_accuracy"] == pytest.approx(outcome["accuracy"], abs=1e-5)
    assert answer["split"]["plan_accuracy"] == pytest.approx(schedule_accuracy(data), abs=1e-5)
    assert answer["split"]["replica_hours"] == pytest.approx(outcome["replica_hours"], abs=1e-3)
    assert answer["split"]["covers_peak"] is True
    assert answer["summary"][0].startswith(f"traffic split: {split_line}")
    assert answer["resources"] == documents


@pytest.mark.parametrize("flag", ["--min-replicas", "--scale-target"])
def test_cli_deploy_plan_refuses_flags_the_plan_sets(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_path = write_plan(tmp_path / "plan.json", two_variant_plan("models:/cancer/1"))
    argv = ["deploy", "--name", "cancer-planned", "--plan", str(plan_path), flag, "2", "--dry-run"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("nb2pipe: ")
    assert flag in captured.err and "the plan sets" in captured.err


def test_cli_plan_with_a_missing_trace_names_it(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "profile.json", synthetic_profile())
    missing = tmp_path / "no-trace.txt"
    done = run_cli("plan", "--profile", str(profile), "--trace", str(missing), "--slo-ms", "150", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert str(missing) in done.stderr and "no such trace file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_day_ahead_plan_names_what_it_cannot_plan(rated: Profile, trace: np.ndarray) -> None:
    with pytest.raises(Nb2PipeError, match=r"holds 3,600 s, less than one day \(86,400 s"):
        plan_from_trace(rated, trace[:3600], Choices(slo_ms=SLO_MS), "short.txt")
    # a scale the search cannot serve: the busiest second of the history, by its line
    with pytest.raises(Nb2PipeError, match=r"trace.txt line [\d,]+ \(day \d\)"):
        plan_from_trace(rated, trace, Choices(slo_ms=SLO_MS, fit_days=DaySpan(1, 7), scale=1e6), "trace.txt")
