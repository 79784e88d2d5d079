"""``nb2pipe plan``: a capacity plan per interval, and the KServe fields that realise it.

A plan is the forecast peak of every interval with the allocation the exact search chose
for it (replicas, batch size and traffic share per variant). KServe cannot change its
configuration on a timetable by itself, so the plan also gives, per variant, the envelope
an autoscaler keeps it in:

- ``minReplicas``/``maxReplicas``: the fewest and most replicas the plan uses;
- ``scaleMetric: rps`` with ``scaleTarget`` = the rate one replica carries under the SLO
  (KServe's autoscaler scales at its target utilisation, 70 % by default, of this);
- ``containerConcurrency`` = two batches (one served while the next one fills);
- ``batcher``: ``maxBatchSize`` = the chosen batch size, ``maxLatency`` = half of what the SLO
  leaves after a full batch's p99 service time;
- ``traffic``: the split of the busiest interval, when there are several variants. ``deploy --plan``
  deploys another split, fixed, with replicas sized for it (``nb2pipe.capacity.deployment``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe.capacity.model import VariantOption
from nb2pipe.capacity.optimize import Allocation, Optimizer, Share
from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import read_json, write_whole
from nb2pipe.ir import ScaleMetric

if TYPE_CHECKING:
    from nb2pipe.capacity.forecast import OnlineForecaster

PLAN_FORMAT = "nb2pipe.plan/1"


class PlanError(Nb2PipeError):
    """A plan file that cannot be read or used."""


@dataclass(frozen=True)
class PlannedInterval:
    start_s: int
    forecast_rps: float
    allocation: Allocation


@dataclass(frozen=True)
class VariantServing:
    """The KServe fields of one variant's InferenceService."""

    variant: str
    model_uri: str | None
    min_replicas: int
    max_replicas: int
    scale_target: int
    container_concurrency: int
    max_batch_size: int
    max_latency_ms: int
    #: percent of the traffic (the busiest interval's split)
    traffic_percent: int
    scale_metric: ScaleMetric = "rps"
    #: the device its rates were measured on: ``deploy --plan`` asks for a GPU when it was one
    device: str = "cpu"


@dataclass(frozen=True)
class CapacityPlan:
    slo_ms: float
    interval_s: int
    cold_start_s: float
    price_per_replica_hour: float
    accuracy_value: float
    forecast: dict[str, Any]
    options: tuple[VariantOption, ...]
    intervals: tuple[PlannedInterval, ...]
    serving: tuple[VariantServing, ...]
    #: the fitted online forecaster, every parameter (``nb2pipe autoscale`` forecasts with it);
    #: None for a day-ahead plan
    online: OnlineForecaster | None = None

    @property
    def replica_hours(self) -> float:
        return sum(i.allocation.replicas for i in self.intervals) * self.interval_s / 3600.0

    @property
    def mean_accuracy(self) -> float | None:
        values = [i.allocation.accuracy for i in self.intervals]
        if not values or any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None) / len(values)


def build_plan(
    forecasts: list[float],
    first_start_s: int,
    optimizer: Optimizer,
    *,
    slo_ms: float,
    interval_s: int,
    cold_start_s: float,
    price_per_replica_hour: float,
    forecast: dict[str, Any],
    online: OnlineForecaster | None = None,
) -> CapacityPlan:
    intervals = tuple(
        PlannedInterval(first_start_s + k * interval_s, round(float(peak), 3), optimizer.best(float(peak)))
        for k, peak in enumerate(forecasts)
    )
    if not intervals:
        raise PlanError("nothing to plan: the horizon holds no interval")
    serving = serving_fields(optimizer.options, intervals, slo_ms)
    return CapacityPlan(
        slo_ms,
        interval_s,
        cold_start_s,
        price_per_replica_hour,
        optimizer.accuracy_value,
        forecast,
        optimizer.options,
        intervals,
        serving,
        online,
    )


def serving_fields(
    options: tuple[VariantOption, ...], intervals: tuple[PlannedInterval, ...], slo_ms: float
) -> tuple[VariantServing, ...]:
    busiest = max(intervals, key=lambda i: (i.forecast_rps, -i.start_s)).allocation
    used = [o for o in options if any(i.allocation.replicas_of(o.name) for i in intervals)]
    percents = _percents([_share(busiest, o.name) for o in used])
    fields = []
    for option, percent in zip(used, percents, strict=True):
        counts = [i.allocation.replicas_of(option.name) for i in intervals]
        slack_ms = max(0.0, slo_ms - option.service_p99_s * 1000.0)
        fields.append(
            VariantServing(
                option.name,
                option.model_uri,
                min(counts),
                max(counts),
                max(1, math.floor(option.rate_per_replica)),
                2 * option.batch_size,
                option.batch_size,
                max(1, math.floor(slack_ms / 2)),
                percent,
                device=option.device,
            )
        )
    return tuple(fields)


def _share(allocation: Allocation, variant: str) -> float:
    return next((s.traffic for s in allocation.shares if s.variant == variant), 0.0)


def whole_percents(shares: list[float]) -> list[int]:
    """Whole percents adding up to 100 (largest remainders get the rounding)."""
    return _percents(shares)


def _percents(shares: list[float]) -> list[int]:
    """Whole percents adding up to 100 (largest remainders get the rounding)."""
    total = sum(shares) or 1.0
    exact = [100 * s / total for s in shares]
    whole = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (whole[i] - exact[i], i))
    for i in order[: 100 - sum(whole)]:
        whole[i] += 1
    return whole


def plan_to_json(plan: CapacityPlan) -> dict[str, Any]:
    return {
        "format": PLAN_FORMAT,
        "slo_ms": plan.slo_ms,
        "interval_s": plan.interval_s,
        "cold_start_s": plan.cold_start_s,
        "price_per_replica_hour": plan.price_per_replica_hour,
        "accuracy_value": plan.accuracy_value,
        "forecast": plan.forecast,
        "summary": {
            "intervals": len(plan.intervals),
            "replica_hours": round(plan.replica_hours, 3),
            "cost": round(plan.replica_hours * plan.price_per_replica_hour, 3),
            "mean_accuracy": None if plan.mean_accuracy is None else round(plan.mean_accuracy, 5),
        },
        "variants": [vars(o) for o in plan.options],
        "kserve": [vars(s) for s in plan.serving],
        "intervals": [
            {
                "start_s": i.start_s,
                "forecast_rps": i.forecast_rps,
                "capacity_rps": round(i.allocation.capacity_rps, 2),
                "shares": [vars(s) for s in i.allocation.shares],
            }
            for i in plan.intervals
        ],
        **({"online_forecaster": online_to_json(plan.online)} if plan.online is not None else {}),
    }


def online_to_json(forecaster: OnlineForecaster) -> dict[str, Any]:
    """Every parameter of the online forecaster, so that it can be rebuilt exactly."""
    return {
        "interval_s": forecaster.interval_s,
        "lead_s": forecaster.lead_s,
        "window_s": forecaster.window_s,
        "period_s": forecaster.period_s,
        "headroom": list(forecaster.headroom),
        "floor_rps": forecaster.floor_rps,
        "quantile": forecaster.quantile,
        "statistic": forecaster.statistic,
    }


def online_from_json(data: dict[str, Any]) -> OnlineForecaster:
    from nb2pipe.capacity.forecast import OnlineForecaster

    return OnlineForecaster(
        int(data["interval_s"]),
        int(data["lead_s"]),
        int(data["window_s"]),
        int(data["period_s"]),
        tuple(float(h) for h in data["headroom"]),
        float(data["floor_rps"]),
        float(data["quantile"]),
        str(data["statistic"]),
    )


def write_plan(path: str | Path, plan: CapacityPlan) -> Path:
    target = Path(path)
    write_whole(target, json.dumps(plan_to_json(plan), indent=1) + "\n")
    return target


def read_plan(path: str | Path) -> CapacityPlan:
    source = Path(path)
    data = read_json(source, f"make one with nb2pipe plan ... -o {source}", PlanError)
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise PlanError(f"{source}: not an nb2pipe plan (expected format {PLAN_FORMAT!r}); make one with nb2pipe plan")
    try:
        options = tuple(VariantOption(**o) for o in data["variants"])
        serving = tuple(VariantServing(**s) for s in data["kserve"])
        intervals = tuple(
            PlannedInterval(
                int(i["start_s"]),
                float(i["forecast_rps"]),
                Allocation(
                    tuple(Share(**s) for s in i["shares"]),
                    float(i["capacity_rps"]),
                    None,
                ),
            )
            for i in data["intervals"]
        )
        plan = CapacityPlan(
            float(data["slo_ms"]),
            int(data["interval_s"]),
            float(data["cold_start_s"]),
            float(data["price_per_replica_hour"]),
            float(data["accuracy_value"]),
            dict(data.get("forecast") or {}),
            options,
            intervals,
            serving,
            online_from_json(data["online_forecaster"]) if data.get("online_forecaster") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(
            f"{source}: a field is missing or malformed ({exc}); write the plan anew with nb2pipe plan"
        ) from None
    if not plan.serving:
        raise PlanError(f"{source}: the plan serves no variant")
    return plan
