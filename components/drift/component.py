"""Drift check: compare a current data set with a reference one (alibi-detect) and hand on
the verdict as a boolean a ``dsl.If`` can branch on, with a Metrics artifact and an HTML
report for the Kubeflow UI.

    from kfp import components
    drift_check = components.load_component_from_file("components/drift/component.yaml")
"""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output, OutputPath

NB2PIPE = "nb2pipe[drift]==0.1.0"


@dsl.component(base_image="python:3.11-slim", packages_to_install=[NB2PIPE])
def drift_check(
    reference: Input[Dataset],
    current: Input[Dataset],
    drift_metrics: Output[Metrics],
    drift_report: Output[HTML],
    is_drift: OutputPath(bool),
    method: str = "tabular",
    p_value: float = 0.05,
    correction: str = "bonferroni",
    categorical: list = [],  # noqa: B006  (kfp reads the default from the signature)
):
    """Test CURRENT against REFERENCE (CSV, parquet, a payload log folder, or a value an nb2pipe
    step saved): KS for numeric and Chi-squared for categorical columns with a multiple-testing
    correction (method tabular), or ks, chi2, mmd."""
    from nb2pipe.monitoring.steps import drift_step

    options = {
        "method": method,
        "p_value": p_value,
        "correction": correction,
        "categorical": list(categorical) or None,
    }
    drift_step(
        {"current": "current", "reference": "reference", "options": options},
        reference=reference.path,
        current=current.path,
        metrics=drift_metrics,
        report=drift_report,
        flag_path=is_drift,
    )
