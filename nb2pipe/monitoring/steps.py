"""What the drift, explain and monitoring tasks of a compiled pipeline run inside their
containers (or kfp.local's processes); their images have nb2pipe installed, like the
register task's.

Drift: compare two saved tables, write a Metrics artifact, an HTML report and the verdict
as an output parameter a ``dsl.If`` can branch on. Explain: explain the first rows of the
training data with Anchor or Integrated Gradients and write an HTML page.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import write_whole
from nb2pipe.monitoring.drift import DriftSettings, check_drift
from nb2pipe.monitoring.drift_report import drift_report_html
from nb2pipe.store.data import first_rows, load_data, load_model
from nb2pipe.store.logged_payloads import is_blob_url, logged_payloads_url
from nb2pipe.store.payloads import PayloadCounts
from nb2pipe.store.reference import load_reference
from nb2pipe.store.registry import CHAMPION
from nb2pipe.store.tables import as_table, named_like, payload_table

#: the namespace a pod runs in (the InferenceService's when the deploy: names none)
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def drift_step(
    config: Mapping[str, Any], *, reference: str, current: str, metrics: Any, report: Any, flag_path: str
) -> bool:
    reference_table = as_table(load_data(reference), config.get("reference", "reference"))
    current_table = as_table(load_data(current), config.get("current", "current"))
    result = check_drift(reference_table, current_table, drift_settings(config.get("options", {})))
    write_drift_outputs(result, reference_table, current_table, metrics=metrics, report=report, flag_path=flag_path)
    verdict = "drift" if result.is_drift else "no drift"
    print(f"nb2pipe: {config.get('current')} vs {config.get('reference')}: {verdict}", flush=True)
    return bool(result.is_drift)


def drift_settings(options: Mapping[str, Any]) -> Any:
    categorical = options.get("categorical")
    return DriftSettings(
        method=options.get("method", "tabular"),
        p_value=float(options.get("p_value", 0.05)),
        correction=options.get("correction", "bonferroni"),
        categorical=tuple(categorical) if categorical is not None else None,
    )


def write_drift_outputs(
    result: Any, reference: Any, current: Any, *, metrics: Any, report: Any, flag_path: str
) -> None:
    for name, value in sorted(result.metrics().items()):
        metrics.log_metric(name, float(value))
    write_whole(Path(report.path), drift_report_html(result, reference, current))
    write_whole(Path(flag_path), "true" if result.is_drift else "false")


def explain_step(config: Mapping[str, Any], *, model: str, data: str, report: Any, metrics: Any) -> None:
    from nb2pipe.monitoring.explain import build_explainer
    from nb2pipe.monitoring.explain_report import explanation_html

    trained = load_model(model)
    reference = load_data(data)
    method = config["method"]
    started = time.perf_counter()
    explainer = build_explainer(method, trained, reference)
    rows = first_rows(reference, int(config.get("rows", 3)))
    explanation = explainer.explain(rows)
    title = f"{config.get('model_name', 'model')}: {method} explanation of {len(rows)} training rows"
    write_whole(Path(report.path), explanation_html(explanation, rows, title=title))
    for name, value in sorted(explanation.metrics().items()):
        metrics.log_metric(name, float(value))
    print(f"nb2pipe: {method} explanation of {len(rows)} rows in {time.perf_counter() - started:.1f} s", flush=True)


def monitor_step(
    config: Mapping[str, Any], *, payloads: str, force: bool, metrics: Any, report: Any, flag_path: str
) -> bool:
    """The monitoring pipeline's gate: retrain when the traffic the champion served drifted
    from the data it was trained on, when there is no champion yet, or when forced."""
    from nb2pipe.store.registry import download_reference, local_store, use_tracking

    use_tracking()
    name, service = config["model_name"], config.get("service")
    options = config.get("options", {})
    local = str(local_store() / "payloads" / service) if service else ""
    folder = payloads or logged_payloads_of(config) or local
    version = champion_version(name)
    if version is None:
        return _verdict(True, f"{name} has no champion yet: train one", metrics, report, flag_path)
    if not folder:
        raise Nb2PipeError(
            f"no served traffic to test: {name} is deployed by no deploy: tag with monitor; "
            "pass the payload folder (nb2pipe retrain --payloads DIR, or the pipeline parameter payloads)"
        )
    kept = download_reference(f"models:/{name}/{version}")
    if kept is None:
        reason = f"{name} version {version} kept no training data to compare with; register it again"
        return _verdict(bool(force), reason, metrics, report, flag_path)
    reference = as_table(load_reference(kept), "the champion's training data")
    counts = PayloadCounts()
    readable = is_blob_url(folder) or Path(folder).is_dir()  # KServe's blob log, or a local folder
    current = payload_table(folder, version=version, counts=counts) if readable else None
    served = 0 if current is None else len(current)
    fewest = int(options.get("min_rows", 50))
    rejected = f" ({counts.rejected} rejected requests not tested)" if counts.rejected else ""
    if current is None or served < fewest:
        reason = (
            f"{served} requests served by {name} version {version} in {folder}{rejected}; drift is tested from {fewest}"
        )
        return _verdict(bool(force), reason, metrics, report, flag_path, served)
    current = named_like(current, reference)
    result = replace(check_drift_of(reference, current, options), rejected_requests=counts.rejected)
    write_drift_outputs(result, reference, current, metrics=metrics, report=report, flag_path=flag_path)
    retrain = bool(result.is_drift or force)
    metrics.log_metric("served_rows", float(served))
    metrics.log_metric("retrain", float(retrain))
    write_whole(Path(flag_path), "true" if retrain else "false")
    drifted = [f.name for f in result.features if f.is_drift]
    verdict = f"drift in {', '.join(drifted) or 'the data'}" if result.is_drift else "no drift"
    print(
        f"nb2pipe: {served} requests served by {name} version {version}{rejected}: {verdict}; retrain: {retrain}",
        flush=True,
    )
    return retrain


def logged_payloads_of(config: Mapping[str, Any]) -> str:
    """Where KServe's blob logger writes the service's objects, when the deploy: has a blob
    ``logger_url`` (its ``namespace``, else this pod's own); "" otherwise."""
    url, service = config.get("logger_url"), config.get("service")
    if not url or not service or not is_blob_url(url):
        return ""
    namespace = config.get("namespace")
    if not namespace and POD_NAMESPACE_FILE.is_file():
        namespace = POD_NAMESPACE_FILE.read_text(encoding="utf-8").strip()
    return logged_payloads_url(url, namespace, service) if namespace else ""


def check_drift_of(reference: Any, current: Any, options: Mapping[str, Any]) -> Any:
    return check_drift(reference, current, drift_settings(options))


def champion_version(name: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def _verdict(retrain: bool, reason: str, metrics: Any, report: Any, flag_path: str, served: int = 0) -> bool:
    from html import escape

    metrics.log_metric("served_rows", float(served))
    metrics.log_metric("retrain", float(retrain))
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>drift check</title></head><body>'
        f"<h1>No drift test</h1><p>{escape(reason)}</p><p>retrain: <b>{retrain}</b></p></body></html>"
    )
    write_whole(Path(report.path), page)
    write_whole(Path(flag_path), "true" if retrain else "false")
    print(f"nb2pipe: {reason}; retrain: {retrain}", flush=True)
    return retrain
