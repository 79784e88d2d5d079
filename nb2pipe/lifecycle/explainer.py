"""The explainer a model server holds: fitted once at start on the training data kept with
the registered version (or a data file), warmed with one explanation so the first request
pays neither alibi's import nor the fit, then asked per ``:explain`` request.

alibi sits behind :func:`nb2pipe.monitoring.explain.build_explainer`, which the caller passes in
(serving sits below monitoring); this module only turns request rows into the explainer's
input and its answer into JSON.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.lifecycle.deferred_warnings import DEFERRED_WARNINGS
from nb2pipe.lifecycle.predictor import BadPayload, Predictor
from nb2pipe.store.reference import load_reference
from nb2pipe.store.registry import load_explainable
from nb2pipe.store.tables import load_table

#: ``(method, model, reference) -> explainer`` with ``explain(rows)`` answering ``.to_json()``
ExplainerBuilder = Callable[[str, Any, Any], Any]

#: Anchor searches take ~0.1-1 s a row: more rows belong in a batch job (nb2pipe explain)
MAX_EXPLAINED_ROWS = 20


class ExplainerSetupError(Nb2PipeError):
    """The server cannot build the explainer it was asked for."""


@dataclass
class ServedExplainer:
    method: str
    explainer: Any
    #: column names of tabular training data (None: rows go to the explainer as arrays)
    columns: list[str] | None
    warm_seconds: float
    #: one explanation at a time: alibi's explainers keep state between calls
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls,
        method: str,
        source: Any,
        served_model: Any,
        reference_path: str | None,
        build_explainer: ExplainerBuilder | None,
    ) -> ServedExplainer:
        """``source``: the resolved model (registry.ModelSource); ``served_model``: what the
        predictor calls (reused unless gradients need the Keras model itself)."""

        if build_explainer is None:
            raise ExplainerSetupError(f"no explainer backend was given to fit the {method} explainer")

        started = time.perf_counter()
        reference = _reference(source, reference_path)
        if source.flavor == "tensorflow":
            model = load_explainable(source)
        elif source.flavor == "pytorch":
            model = served_model.module  # the module itself, already on the serving device
        else:
            model = served_model
        explainer = build_explainer(method, model, reference)
        explainer.explain(reference.iloc[:1] if hasattr(reference, "iloc") else reference[:1])  # warm
        columns = [str(c) for c in reference.columns] if hasattr(reference, "columns") else None
        return cls(method, explainer, columns, time.perf_counter() - started)

    def explain(self, predictor: Predictor, rows: list[Any]) -> dict[str, Any]:
        prepared = self._input(predictor, rows)
        # predictions meanwhile take the plain call: the explainer's model calls run in this thread
        with self.lock, DEFERRED_WARNINGS.exclusive():
            explanation = self.explainer.explain(prepared)
        return explanation.to_json()

    def _input(self, predictor: Predictor, rows: list[Any]) -> Any:
        import numpy as np

        if self.columns is not None:
            import pandas as pd

            table = predictor.table(rows)  # checks width and types as :predict does
            return table if hasattr(table, "columns") else pd.DataFrame(table, columns=self.columns)
        try:
            return np.asarray(rows) if not all(isinstance(r, str) for r in rows) else np.asarray(rows, dtype=object)
        except ValueError as exc:  # ragged nested lists
            raise BadPayload(f"the rows do not form an array: {exc}") from None


def _reference(source: Any, reference_path: str | None) -> Any:
    from nb2pipe.store.registry import download_reference

    if reference_path:
        return load_table(reference_path)
    kept = download_reference(source.uri) if source.name else None
    if kept is None:
        raise ExplainerSetupError(
            f"{source.uri} kept no training data to fit the explainer on: pass --reference DATA "
            "(CSV, parquet or a saved nb2pipe value), or register the model with nb2pipe (register: tag)"
        )
    return load_reference(kept)
