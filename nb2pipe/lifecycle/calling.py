"""How to call a served model: its inputs as Open Inference Protocol metadata, and for the
editor's Deploy the paths, input schema and a ready-to-copy ``curl`` of one real row.

:func:`signature_specs` reads an MLflow signature; :func:`metadata_tensors` and
:func:`calling_instructions` are pure. :func:`describe_calling` is the I/O edge: it reads the
registered version's signature and the first row of the training data kept with it (else
the model's MLflow input example).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.store.registry import ModelSource

#: MLflow column types -> Open Inference Protocol datatypes
COLUMN_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
}
#: numpy dtype kinds of MLflow tensor specs -> Open Inference Protocol datatypes
TENSOR_DATATYPES = {
    "float64": "FP64",
    "float32": "FP32",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint64": "UINT64",
    "uint32": "UINT32",
    "uint16": "UINT16",
    "uint8": "UINT8",
    "bool": "BOOL",
    "object": "BYTES",
    "str": "BYTES",
    "bytes": "BYTES",
}
#: the name the server gives its one v2 output (see nb2pipe.lifecycle.server)
OUTPUT_NAME = "predict"


@dataclass(frozen=True)
class InputSpec:
    """One input of a signature: a column (``shape`` None) or a tensor (``shape`` as MLflow has it, -1 variable)."""

    name: str
    type: str
    shape: tuple[int, ...] | None = None

    @property
    def datatype(self) -> str:
        table = COLUMN_DATATYPES if self.shape is None else TENSOR_DATATYPES
        return table.get(self.type, "BYTES")


def signature_specs(schema: Any) -> tuple[InputSpec, ...]:
    """The inputs (or outputs) of an MLflow ``Schema``: ColSpecs or TensorSpecs; () for None."""
    if schema is None:
        return ()
    specs = []
    for index, spec in enumerate(schema.inputs):
        name = spec.name or f"input-{index}"
        if hasattr(spec, "shape"):  # TensorSpec: type is a numpy dtype
            specs.append(InputSpec(name, str(spec.type), tuple(int(n) for n in spec.shape)))
        else:  # ColSpec: type is an MLflow DataType (or an object/array type without a plain name)
            specs.append(InputSpec(name, getattr(spec.type, "name", "string")))
    return tuple(specs)


def metadata_tensors(specs: Sequence[InputSpec]) -> list[dict[str, Any]]:
    """Open Inference Protocol ``$metadata_tensor`` entries: ``[-1]`` for a column (one value
    per row), the tensor's own shape (first dimension the batch, -1) for a tensor."""
    return [
        {"name": spec.name, "datatype": spec.datatype, "shape": [-1] if spec.shape is None else list(spec.shape)}
        for spec in specs
    ]


def output_tensors(specs: Sequence[InputSpec]) -> list[dict[str, Any]]:
    """The server's one v2 output (named ``predict``) as it answers it, from the signature's
    outputs when there is exactly one; [] when the signature does not say. One value a row is
    ``[-1]``; a tensor of K values a row (a network's scores) ``[-1, K]``. The server answers
    Python numbers (numpy's ``tolist``): any float type is FP64, any integer type INT64."""
    if len(specs) != 1:
        return []
    spec = specs[0]
    shape = [-1, spec.shape[1]] if spec.shape is not None and len(spec.shape) == 2 and spec.shape[1] > 0 else [-1]
    return [{"name": OUTPUT_NAME, "datatype": _ANSWERED_DATATYPES.get(spec.datatype, "BYTES"), "shape": shape}]


#: the datatype the server answers for each declared one
_ANSWERED_DATATYPES = {
    **dict.fromkeys(("FP16", "FP32", "FP64"), "FP64"),
    **dict.fromkeys(("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"), "INT64"),
    "BOOL": "BOOL",
}


def predict_path(service: str) -> str:
    return f"/v1/models/{service}:predict"


def infer_path(service: str) -> str:
    return f"/v2/models/{service}/infer"


@dataclass(frozen=True)
class CallingInstructions:
    """How to call one service; ``curl`` None with ``curl_note`` saying why."""

    base_url: str | None
    predict_path: str
    infer_path: str
    metadata_path: str
    inputs: tuple[InputSpec, ...]
    curl: str | None
    curl_note: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "predict_path": self.predict_path,
            "infer_path": self.infer_path,
            "metadata_path": self.metadata_path,
            "inputs": [{"name": spec.name, "type": spec.type, "datatype": spec.datatype} for spec in self.inputs],
            "curl": self.curl,
            "curl_note": self.curl_note,
        }


def calling_instructions(
    service: str,
    url: str | None,
    inputs: Sequence[InputSpec],
    example: Mapping[str, Any] | Sequence[Any] | None,
    missing_example: str = "no example input is kept with the model",
) -> CallingInstructions:
    """The paths, the input schema and a POSIX-shell ``curl`` posting ``example`` (one row: a
    ``{column: value}`` mapping, or values in signature order) to the v1 predict path."""
    base = url.rstrip("/") if url else None
    curl: str | None = None
    note: str | None = None
    if base is None:
        note = "the service's URL is not known yet (see its InferenceService status)"
    elif example is None:
        note = missing_example
    else:
        row = {str(k): _json_value(v) for k, v in example.items()} if isinstance(example, Mapping) else None
        body = json.dumps({"instances": [row if row is not None else [_json_value(v) for v in example]]})
        curl = " ".join(
            [
                "curl -s -X POST -H 'Content-Type: application/json'",
                shlex.quote(base + predict_path(service)),
                "-d",
                shlex.quote(body),
            ]
        )
    return CallingInstructions(
        base, predict_path(service), infer_path(service), f"/v2/models/{service}", tuple(inputs), curl, note
    )


def _json_value(value: Any) -> Any:
    """A numpy scalar as its Python value; NaN (not JSON) as null; nested rows (an image's
    channels) as nested lists of such values."""
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def first_row(data: Any, columns: Sequence[str] | None) -> Mapping[str, Any] | list[Any] | None:
    """Row 0 of a DataFrame (by column), a numpy array or a list of rows; None when empty."""
    if hasattr(data, "iloc"):
        if len(data) == 0:
            return None
        record = data.iloc[0]
        return {str(k): v for k, v in record.items()} if hasattr(record, "items") else [record]
    rows = data.tolist() if hasattr(data, "tolist") else list(data)
    if not rows:
        return None
    row = rows[0] if isinstance(rows[0], list | tuple) else [rows[0]]
    return dict(zip(columns, row, strict=True)) if columns and len(columns) == len(row) else list(row)


def model_signature(source: ModelSource) -> Any:
    """The MLflow signature of a resolved model (None when it was logged without one)."""
    from mlflow.models import Model

    return Model.load(str(source.local_path / "MLmodel")).signature


def describe_calling(
    service: str, url: str | None, model_uri: str, store: str | Path | None = None, notebook_uri: str | None = None
) -> CallingInstructions:
    """:func:`calling_instructions` for a registered model: inputs from its signature, the
    example row from the training data kept with the version, else its MLflow input example.
    A failure to fetch the example becomes the ``curl_note`` (the service is already deployed)."""
    from nb2pipe.store.reference import load_reference
    from nb2pipe.store.registry import download_reference, resolve_model

    source = resolve_model(model_uri, store, notebook_uri)  # quiets mlflow before its first import
    from mlflow.models import Model

    meta = Model.load(str(source.local_path / "MLmodel"))
    inputs = signature_specs(meta.signature.inputs if meta.signature else None)
    columns = [spec.name for spec in inputs if spec.shape is None] or None
    example: Any = None
    note = "the model has neither training data nor an input example kept with it"
    try:
        kept = download_reference(model_uri, store, notebook_uri)
        if kept is not None:
            example = first_row(load_reference(kept), columns)
        if example is None:
            logged = meta.load_input_example(str(source.local_path))
            example = first_row(logged, columns) if logged is not None else None
    except Nb2PipeError as exc:
        note = f"no example row: {exc}"
    return calling_instructions(service, url, inputs, example, note)
