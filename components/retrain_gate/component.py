"""Retrain gate: test the traffic a registered model's champion served (nb2pipe's payload
log) for drift against the data it was trained on, and answer whether to retrain — the first
task of the monitoring pipeline `nb2pipe compile --monitoring` / `nb2pipe schedule` build.

    from kfp import components
    gate = components.load_component_from_file("components/retrain_gate/component.yaml")
    with dsl.If(gate(model_name="churn", payloads="/mnt/payloads/churn").outputs["retrain"] == True):
        ...
"""

from kfp import dsl
from kfp.dsl import HTML, Metrics, Output, OutputPath

NB2PIPE = "nb2pipe[drift,mlflow]==0.1.0"


@dsl.component(base_image="python:3.11-slim", packages_to_install=[NB2PIPE])
def retrain_gate(
    model_name: str,
    payloads: str,
    drift_metrics: Output[Metrics],
    drift_report: Output[HTML],
    retrain: OutputPath(bool),
    force_retrain: bool = False,
    method: str = "tabular",
    p_value: float = 0.05,
    min_rows: int = 50,
):
    """MLflow is found through MLFLOW_TRACKING_URI; PAYLOADS is the payload log folder."""
    from nb2pipe.monitoring.steps import monitor_step

    options = {"method": method, "p_value": p_value, "min_rows": min_rows}
    monitor_step(
        {"model_name": model_name, "service": None, "options": options},
        payloads=payloads,
        force=force_retrain,
        metrics=drift_metrics,
        report=drift_report,
        flag_path=retrain,
    )
