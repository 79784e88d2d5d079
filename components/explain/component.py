"""Explanations: explain the first rows of a data set with Anchor (any model with predict)
or Integrated Gradients (Keras models), as an HTML page for the Kubeflow UI and a Metrics
artifact (anchor precision and coverage, or how closely attributions add up).

    from kfp import components
    explain = components.load_component_from_file("components/explain/component.yaml")
"""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

NB2PIPE = "nb2pipe[explain,mlflow]==0.1.0"


@dsl.component(base_image="python:3.11-slim", packages_to_install=[NB2PIPE])
def explain(
    model: Input[Model],
    data: Input[Dataset],
    explanation: Output[HTML],
    explain_metrics: Output[Metrics],
    method: str = "anchor",
    rows: int = 3,
):
    """MODEL: a model an nb2pipe step saved, or an MLflow model folder; DATA: the data the
    explainer is fitted on (training data), whose first ROWS rows are explained."""
    from nb2pipe.monitoring.steps import explain_step

    explain_step(
        {"method": method, "rows": rows, "model_name": model.metadata.get("model_name", "model")},
        model=model.path,
        data=data.path,
        report=explanation,
        metrics=explain_metrics,
    )
