"""The models ``nb2pipe profile`` measures: each resolved in MLflow before any is served, with
the rows to send and the accuracy of the run that produced it. mlflow is imported inside
functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.capacity.measure_error import MeasureError
from nb2pipe.capacity.request_rows import read_input, request_rows
from nb2pipe.store.reference import load_reference
from nb2pipe.store.registry import input_columns, resolve_model, serving_device, tracking_env_kept
from nb2pipe.store.tables import as_table


@dataclass(frozen=True)
class Target:
    """One variant to profile: its name, model URI, and accuracy when known."""

    name: str
    model_uri: str
    accuracy: float | None = None


@dataclass(frozen=True)
class PreparedTarget:
    """A target resolved before any server starts: the rows to send and its accuracy."""

    target: Target
    rows: list[Any]
    accuracy: float | None
    row_format: str
    #: what the server computes on (``cpu``, ``cuda:0 (NVIDIA H200)``): the figures hold for that device
    device: str = "cpu"


def prepare_target(
    target: Target, input_path: str | None, store: str | Path | None, accuracy_metric: str
) -> PreparedTarget:
    """Resolve ``target``'s model, read the rows to send (``input_path``, else the training data
    kept with the model) and its accuracy (given, else ``accuracy_metric`` of its run)."""

    with tracking_env_kept():  # resolving exports the tracking URI; leave the caller's environment alone
        source = resolve_model(target.model_uri, store)
        columns, _ = input_columns(source)
        table = read_input(input_path) if input_path else reference_table(target.model_uri, store)
        accuracy = target.accuracy
        if accuracy is None:
            accuracy = run_accuracy(target.model_uri, source.name, source.version, accuracy_metric)
    rows = request_rows(table, columns, input_path or f"the training data of {target.model_uri}")
    row_format = "objects by column name" if columns else "lists of values"
    return PreparedTarget(target, rows, accuracy, row_format, serving_device(source.flavor))


def reference_table(model_uri: str, store: str | Path | None) -> Any:
    """The training data kept with the registered model, as a table."""
    from nb2pipe.store.registry import download_reference

    kept = download_reference(model_uri, store)
    if kept is None:
        raise MeasureError(
            f"{model_uri} kept no training data to send as requests; "
            "pass --input FILE (CSV, parquet or a JSON list of rows)"
        )
    return as_table(load_reference(kept), model_uri)


def run_accuracy(model_uri: str, name: str | None, version: str | None, metric: str) -> float | None:
    """The ``metric`` logged by the run that produced the model, or None when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        if name and version:
            run_id = client.get_model_version(name, version).run_id
        elif model_uri.startswith("runs:/"):
            run_id = model_uri.removeprefix("runs:/").split("/", 1)[0]
        else:
            return None
        if not run_id:
            return None
        value = client.get_run(run_id).data.metrics.get(metric)
    except MlflowException:
        return None
    if value is None:
        return None
    if not 0 <= value <= 1:
        raise MeasureError(
            f"{model_uri}: its run's metric {metric!r} is {value:g}, not an accuracy between 0 and 1; "
            "pass --accuracy-metric with another metric or --accuracy A"
        )
    return float(value)
