"""How to call a served model: MLflow signature -> v2 metadata, and the Deploy answer's paths,
input schema and curl (pure functions, no server)."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pandas as pd
import pytest
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from nb2pipe.lifecycle.calling import (
    InputSpec,
    calling_instructions,
    first_row,
    metadata_tensors,
    output_tensors,
    signature_specs,
)


def test_column_signature_maps_every_mlflow_type_to_its_v2_datatype():
    kinds = ["double", "float", "long", "integer", "boolean", "string"]
    schema = Schema([ColSpec(kind, f"c_{kind}") for kind in kinds])
    assert metadata_tensors(signature_specs(schema)) == [
        {"name": f"c_{kind}", "datatype": datatype, "shape": [-1]}
        for kind, datatype in zip(kinds, ["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES"], strict=True)
    ]


def test_tensor_signature_keeps_its_shape_and_names_unnamed_inputs():
    named = Schema(
        [TensorSpec(np.dtype("float32"), (-1, 28, 28), "image"), TensorSpec(np.dtype("int64"), (-1,), "ids")]
    )
    assert metadata_tensors(signature_specs(named)) == [
        {"name": "image", "datatype": "FP32", "shape": [-1, 28, 28]},
        {"name": "ids", "datatype": "INT64", "shape": [-1]},
    ]
    unnamed = Schema([TensorSpec(np.dtype("float64"), (-1, 30))])
    assert metadata_tensors(signature_specs(unnamed)) == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}]


def test_outputs_are_the_servers_one_predict_output_typed_by_the_signature():
    assert output_tensors(signature_specs(Schema([TensorSpec(np.dtype("int64"), (-1,))]))) == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]}
    ]
    assert output_tensors(signature_specs(None)) == []
    assert metadata_tensors(signature_specs(None)) == []
    # the server answers Python numbers: a network's float32 scores, K a row, come back as [N, K] FP64
    scores = Schema([TensorSpec(np.dtype("float32"), (-1, 10))])
    assert output_tensors(signature_specs(scores)) == [{"name": "predict", "datatype": "FP64", "shape": [-1, 10]}]
    labels = Schema([ColSpec("integer")])
    assert output_tensors(signature_specs(labels)) == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]


def test_the_curl_posts_one_row_quoted_for_a_posix_shell():
    inputs = [InputSpec("it's", "double"), InputSpec("n", "long")]
    call = calling_instructions("svc", "http://127.0.0.1:9000/", inputs, {"it's": np.float64(1.5), "n": np.int64(2)})
    assert (call.base_url, call.predict_path, call.infer_path) == (
        "http://127.0.0.1:9000",
        "/v1/models/svc:predict",
        "/v2/models/svc/infer",
    )
    words = shlex.split(call.curl or "")
    assert words[:6] == ["curl", "-s", "-X", "POST", "-H", "Content-Type: application/json"]
    assert words[6] == "http://127.0.0.1:9000/v1/models/svc:predict" and words[7] == "-d"
    assert json.loads(words[8]) == {"instances": [{"it's": 1.5, "n": 2}]}
    assert call.curl_note is None
    assert call.to_json()["inputs"] == [
        {"name": "it's", "type": "double", "datatype": "FP64"},
        {"name": "n", "type": "long", "datatype": "INT64"},
    ]


def test_no_url_or_no_example_means_no_curl_and_says_why():
    unknown = calling_instructions("svc", None, [], {"a": 1})
    assert unknown.curl is None and "URL is not known" in (unknown.curl_note or "")
    assert unknown.predict_path == "/v1/models/svc:predict" and unknown.to_json()["base_url"] is None
    bare = calling_instructions("svc", "http://h", [], None, "no data kept")
    assert bare.curl is None and bare.curl_note == "no data kept"


def test_values_that_json_cannot_hold_become_null_or_text():
    call = calling_instructions("s", "http://h", [], [float("nan"), pd.Timestamp("2024-01-02"), True])
    body = json.loads(shlex.split(call.curl or "")[8])
    assert body == {"instances": [[None, "2024-01-02 00:00:00", True]]}


@pytest.mark.parametrize(
    ("data", "columns", "row"),
    [
        (pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), None, {"a": 1.0, "b": "x"}),
        (np.array([[1, 2], [3, 4]]), ["a", "b"], {"a": 1, "b": 2}),
        (np.array([[1, 2], [3, 4]]), None, [1, 2]),
        ([[5, 6]], ["a"], [5, 6]),  # columns that do not fit: the values alone
        (pd.DataFrame({"a": []}), None, None),
    ],
)
def test_first_row_of_the_kept_data(data, columns, row):
    assert first_row(data, columns) == row
