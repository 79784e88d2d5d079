"""Monitoring speed: the drift check and warm explanations.

Targets (issue 5): drift check of 10,000 x 20 rows against 10,000 x 20 in <= 1 s, not
counting the first import of alibi-detect; warm Anchor and Integrated Gradients explanation
of one tabular row, p50 <= 0.5 s (the explainer built and warmed once, as `nb2pipe serve
--explainer` does at start).

    python -m bench.monitoring [--repeat 7] [--rows 25] [--json bench/results/monitoring.json]

Explanation latency is over --rows different held-out rows (an anchor search's length varies
from row to row), each explained once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

DRIFT_TARGET_S = 1.0
EXPLAIN_TARGET_S = 0.5


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


def explain_figures(count: int) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from nb2pipe.monitoring.explain import build_explainer

    train, test, labels, _ = tabular_data()
    figures: dict[str, Any] = {}
    models = {
        "anchor": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train, labels),
        "ig": keras_classifier(train, labels),
    }
    for method, model in models.items():
        started = time.perf_counter()
        explainer = build_explainer(method, model, train if method == "anchor" else train.astype("float32"))
        rows = test if method == "anchor" else test.astype("float32")
        explainer.explain(rows.iloc[:1])  # the warm-up a server does at start
        built = time.perf_counter() - started
        seconds = []
        for index in range(count):
            row = rows.iloc[index : index + 1]
            seconds += timed(partial(explainer.explain, row), 1)
        figures[method] = {
            "build_and_warm_s": round(built, 3),
            "rows": count,
            "p50_s": round(statistics.median(seconds), 4),
            "p90_s": round(statistics.quantiles(seconds, n=10)[-1], 4),
            "max_s": round(max(seconds), 4),
            "target_s": EXPLAIN_TARGET_S,
            "met": statistics.median(seconds) <= EXPLAIN_TARGET_S,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="drift checks timed")
    parser.add_argument("--rows", type=int, default=25, help="rows explained per method")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "monitoring.json"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    drift = drift_figures(args.repeat)
    print(
        f"drift check {drift['rows']} x {drift['features']} ({drift['method']}): p50 {drift['p50_s']:.3f} s, "
        f"max {drift['max_s']:.3f} s (target <= {DRIFT_TARGET_S} s; first call with import "
        f"{drift['first_call_with_import_s']:.1f} s)"
    )
    explain = explain_figures(args.rows)
    for method, figures in explain.items():
        print(
            f"warm {method} explanation of one tabular row ({figures['rows']} rows): p50 {figures['p50_s']:.3f} s, "
            f"p90 {figures['p90_s']:.3f} s, max {figures['max_s']:.3f} s "
            f"(target <= {EXPLAIN_TARGET_S} s; build and warm-up {figures['build_and_warm_s']:.1f} s)"
        )
    result = {"drift": drift, "explain": explain, "met": drift["met"] and all(f["met"] for f in explain.values())}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"targets met: {result['met']} (written to {args.json})")


if __name__ == "__main__":
    main()
