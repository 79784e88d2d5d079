"""Values a pipeline step reads: one a notebook step saved (nb2pipe's sidecar), a data file
or folder, or a registered model; on kfp.local, inputs may still be arriving."""

from __future__ import annotations

import os
from typing import Any

from nb2pipe.native_order import load_triton_before_tensorflow
from nb2pipe.runtime.step import VALUE_SIDECAR, load_value
from nb2pipe.store.registry import load_explainable, resolve_model
from nb2pipe.store.tables import load_table

#: set by the local runner when a step may start before its inputs are complete
#: (nb2pipe.runtime.step reads the same variable: the embedded runtime imports nothing)
WAIT_FOR_INPUTS_ENV = "NB2PIPE_WAIT_FOR_INPUTS"


def inputs_may_be_pending() -> bool:
    """The local runner started this task early: its inputs appear while it starts."""
    return os.environ.get(WAIT_FOR_INPUTS_ENV) == "1"


def load_data(path: str) -> Any:
    """A value a notebook step saved (a folder with nb2pipe's sidecar), else a data file or
    folder :func:`nb2pipe.store.tables.load_table` reads (CSV, parquet, payload log)."""

    wait = inputs_may_be_pending()
    if wait or os.path.isfile(os.path.join(path, VALUE_SIDECAR)):
        return load_value(path, wait=wait)

    return load_table(path)


def load_model(path: str) -> Any:
    """A model a notebook step saved, else an MLflow model (folder or URI) in its own flavour."""
    # a Keras model loads TensorFlow, and the explain and drift steps import alibi afterwards
    load_triton_before_tensorflow()
    wait = inputs_may_be_pending()
    if wait or os.path.isfile(os.path.join(path, VALUE_SIDECAR)):
        return load_value(path, wait=wait)

    return load_explainable(resolve_model(path))


def first_rows(data: Any, count: int) -> Any:
    if hasattr(data, "iloc"):
        return data.iloc[:count]
    return data[:count]
