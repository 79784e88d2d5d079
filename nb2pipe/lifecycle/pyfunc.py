"""A pyfunc wrapper for models no MLflow flavour knows: anything with ``predict``.

Kept in its own small module because MLflow pickles the wrapper by reference: loading such
a model needs only this module (nb2pipe's server image has it), not the rest of nb2pipe.
"""

from __future__ import annotations

from typing import Any

from mlflow.pyfunc import PythonModel


class PredictWrapper(PythonModel):
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self.model.predict(model_input)
