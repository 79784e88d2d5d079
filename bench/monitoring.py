"""Monitoring speed: the drift check and warm explanations.

Targets (issue 5): drift check of 10,000 x 20 rows against 10,000 x 20 in <= 1 s, not
counting the first import of alibi-detect; warm Anchor and Integrated Gradients explanation
of one tabular row, p50 <= 0.5 s (the explainer built and warmed once, as `nb2pipe serve
--explainer` does at start).

    python -m bench.monitoring [--repeat 7] [--rows 25] [--json bench/results/monitoring.json]

Explanation latency is over --rows different held-out rows (an anchor search's length varies
from row to row), each explained once. An anchor's precision is also checked on the held-out rows
it does not explain: of those that satisfy the anchor, the fraction the model gives the explained
row's prediction (alibi's own precision is estimated on samples it draws from the training rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

DRIFT_TARGET_S = 1.0
EXPLAIN_TARGET_S = 0.5
PRECISION_TARGET = 0.95


def timed(action: Callable[[], Any], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def drift_figures(repeat: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    from nb2pipe.monitoring.drift import DriftSettings, check_drift

    rng = np.random.default_rng(0)
    columns = [f"x{i}" for i in range(20)]
    reference = pd.DataFrame(rng.normal(size=(10_000, 20)), columns=columns)
    current = pd.DataFrame(rng.normal(size=(10_000, 20)), columns=columns)
    current.iloc[:, :3] += 0.5
    settings = DriftSettings()
    first = check_drift(reference, current, settings)  # the import of alibi-detect lands here
    import_and_first = time.perf_counter() - started
    seconds = timed(lambda: check_drift(reference, current, settings), repeat)
    return {
        "rows": 10_000,
        "features": 20,
        "method": settings.method,
        "first_call_with_import_s": round(import_and_first, 3),
        "p50_s": round(statistics.median(seconds), 4),
        "max_s": round(max(seconds), 4),
        "found_drift": bool(first.is_drift),
        "target_s": DRIFT_TARGET_S,
        "met": statistics.median(seconds) <= DRIFT_TARGET_S,
    }


def tabular_data() -> tuple[Any, Any, Any, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    return train_test_split(features, labels, test_size=0.25, random_state=7)


def keras_classifier(train: Any, labels: Any) -> Any:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    mean, scale = train.to_numpy().mean(axis=0), train.to_numpy().std(axis=0)
    model = keras.Sequential(
        [
            keras.Input(shape=(train.shape[1],)),
            keras.layers.Normalization(mean=mean, variance=scale**2),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(train.to_numpy(np.float32), labels.to_numpy(), epochs=20, verbose=0)
    return model


def held_out_precision(explanation: Any, index: int, held_out: Any, predictions: Any) -> tuple[int, int]:
    """How many held-out rows (other than row `index`) satisfy the row's anchor, and how many of
    those the model gives the explained row's prediction."""
    anchor = explanation.rows[0]
    covered = agreeing = 0
    for other, (_, row) in enumerate(held_out.iterrows()):
        if other != index and all(condition.holds(row[condition.feature]) for condition in anchor.conditions):
            covered += 1
            agreeing += int(predictions[other] == anchor.prediction)
    return covered, agreeing


def precision_figures(counts: list[tuple[int, int]]) -> dict[str, Any]:
    per_anchor = [agreeing / covered for covered, agreeing in counts if covered]
    return {
        "held_out_precision_pooled": round(sum(a for _, a in counts) / max(1, sum(c for c, _ in counts)), 4),
        "held_out_precision_mean": round(statistics.fmean(per_anchor), 4) if per_anchor else None,
        "held_out_precision_min": round(min(per_anchor), 4) if per_anchor else None,
        "anchors_covering_held_out_rows": len(per_anchor),
        "precision_target": PRECISION_TARGET,
    }


def explain_figures(count: int, methods: tuple[str, ...] = ("anchor", "ig")) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from nb2pipe.monitoring.explain import build_explainer

    train, test, labels, _ = tabular_data()
    figures: dict[str, Any] = {}
    builders = {
        "anchor": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train, labels),
        "ig": lambda: keras_classifier(train, labels),
    }
    for method in methods:
        model = builders[method]()
        started = time.perf_counter()
        explainer = build_explainer(method, model, train if method == "anchor" else train.astype("float32"))
        rows = test if method == "anchor" else test.astype("float32")
        explainer.explain(rows.iloc[:1])  # the warm-up a server does at start
        built = time.perf_counter() - started
        seconds, counts = [], []
        predictions = model.predict(rows) if method == "anchor" else None
        for index in range(count):
            row = rows.iloc[index : index + 1]
            started = time.perf_counter()
            explanation = explainer.explain(row)
            seconds.append(time.perf_counter() - started)
            if method == "anchor":
                counts.append(held_out_precision(explanation, index, rows, predictions))
        figures[method] = {
            "build_and_warm_s": round(built, 3),
            "rows": count,
            "p50_s": round(statistics.median(seconds), 4),
            "p90_s": round(statistics.quantiles(seconds, n=10)[-1], 4),
            "max_s": round(max(seconds), 4),
            "target_s": EXPLAIN_TARGET_S,
            "met": statistics.median(seconds) <= EXPLAIN_TARGET_S,
        }
        if method == "anchor":
            precision = precision_figures(counts)
            figures[method].update(precision)
            figures[method]["met"] &= precision["held_out_precision_pooled"] >= PRECISION_TARGET
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="drift checks timed")
    parser.add_argument("--rows", type=int, default=25, help="rows explained per method")
    parser.add_argument(
        "--only", choices=("drift", "anchor", "ig"), action="append", help="measure only these (repeatable)"
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "monitoring.json"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    chosen = tuple(args.only or ("drift", "anchor", "ig"))
    result: dict[str, Any] = {"load_average": [round(load, 2) for load in os.getloadavg()]}
    if "drift" in chosen:
        drift = result["drift"] = drift_figures(args.repeat)
        print(
            f"drift check {drift['rows']} x {drift['features']} ({drift['method']}): p50 {drift['p50_s']:.3f} s, "
            f"max {drift['max_s']:.3f} s (target <= {DRIFT_TARGET_S} s; first call with import "
            f"{drift['first_call_with_import_s']:.1f} s)"
        )
    explain = result["explain"] = explain_figures(args.rows, tuple(m for m in ("anchor", "ig") if m in chosen))
    for method, figures in explain.items():
        print(
            f"warm {method} explanation of one tabular row ({figures['rows']} rows): p50 {figures['p50_s']:.3f} s, "
            f"p90 {figures['p90_s']:.3f} s, max {figures['max_s']:.3f} s "
            f"(target <= {EXPLAIN_TARGET_S} s; build and warm-up {figures['build_and_warm_s']:.1f} s)"
        )
        if method == "anchor":
            print(
                f"  anchor precision on held-out rows: pooled {figures['held_out_precision_pooled']:.3f}, "
                f"mean {figures['held_out_precision_mean']}, min {figures['held_out_precision_min']} "
                f"({figures['anchors_covering_held_out_rows']} anchors cover held-out rows; "
                f"target >= {PRECISION_TARGET})"
            )
    result["load_average_after"] = [round(load, 2) for load in os.getloadavg()]
    result["met"] = all(part["met"] for part in [result.get("drift", {"met": True}), *explain.values()])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"targets met: {result['met']} (written to {args.json})")


if __name__ == "__main__":
    main()
