"""``nb2pipe serve``: a registered model behind KServe's ModelServer, v1 and v2 protocols,
malformed requests answered 400 (never 5xx), payloads logged."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nb2pipe.store.payloads import read_payloads
from tests.support.registered import RegisteredModel
from tests.support.served import Server, serving

pytestmark = pytest.mark.slow  # a real model server on a model registered in MLflow


@pytest.fixture(scope="module")
def payload_dir(registered_model: RegisteredModel) -> Path:
    return registered_model.folder / "payloads"


@pytest.fixture(scope="module")
def server(registered_model: RegisteredModel, payload_dir: Path) -> Iterator[Server]:
    with serving(
        "models:/cancer@champion",
        "cancer",
        registered_model.tracking_uri,
        registered_model.folder,
        "--log-payloads",
        str(payload_dir),
    ) as running:
        yield running


def rows(registered_model: RegisteredModel, count: int = 7) -> list[list[float]]:
    return registered_model.features.iloc[:count].values.tolist()


def expected(registered_model: RegisteredModel, count: int = 7) -> list[int]:
    return registered_model.model.predict(registered_model.features.iloc[:count]).tolist()


def test_health_and_metadata(server: Server):
    assert server.request("GET", "/v1/models/cancer") == (200, {"name": "cancer", "ready": True})
    status, metadata = server.request("GET", "/v2/models/cancer")
    assert status == 200 and metadata["name"] == "cancer"


def test_v1_predictions_equal_the_models(server: Server, registered_model: RegisteredModel):
    status, body = server.post_json("/v1/models/cancer:predict", {"instances": rows(registered_model)})
    assert status == 200
    assert body == {"predictions": expected(registered_model)}


def test_v1_accepts_records_by_column_name(server: Server, registered_model: RegisteredModel):
    records = registered_model.features.iloc[:3].to_dict(orient="records")
    random.Random(3).shuffle(records)  # order of rows is kept; order of keys does not matter
    shuffled = [dict(sorted(r.items(), reverse=True)) for r in records]
    status, body = server.post_json("/v1/models/cancer:predict", {"instances": shuffled})
    frame = registered_model.features.iloc[:3]
    order = [frame.to_dict(orient="records").index(r) for r in records]
    assert status == 200
    assert body["predictions"] == [registered_model.model.predict(frame).tolist()[i] for i in order]


def test_v1_body_sent_without_a_json_content_type(server: Server, registered_model: RegisteredModel):
    # what `curl -d '{...}'` sends: application/x-www-form-urlencoded
    body = json.dumps({"instances": rows(registered_model, 2)})
    status, answer = server.request(
        "POST", "/v1/models/cancer:predict", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert (status, answer) == (200, {"predictions": expected(registered_model, 2)})


def test_v2_predictions_equal_the_models(server: Server, registered_model: RegisteredModel):
    data = rows(registered_model)
    request = {
        "id": "r-1",
        "inputs": [
            {"name": "input-0", "shape": [len(data), len(data[0])], "datatype": "FP64", "data": np.ravel(data).tolist()}
        ],
    }
    status, body = server.post_json("/v2/models/cancer/infer", request)
    assert status == 200
    assert body["id"] == "r-1" and body["model_name"] == "cancer"
    (output,) = body["outputs"]
    assert output["data"] == expected(registered_model) and output["shape"] == [len(data)]


def test_v2_without_an_id_gets_one(server: Server, registered_model: RegisteredModel):
    data = rows(registered_model, 1)
    request = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": data[0]}]}
    status, body = server.post_json("/v2/models/cancer/infer", request)
    assert status == 200 and body["id"] and body["outputs"][0]["data"] == expected(registered_model, 1)


def malformed_requests(count: int, width: int) -> Iterator[tuple[str, bytes | str, dict[str, str]]]:
    """A mix of broken bodies for both protocols, reproducible from a seed."""
    generator = random.Random(1234)
    v1, v2 = "/v1/models/cancer:predict", "/v2/models/cancer/infer"
    as_json = {"Content-Type": "application/json"}

    def row(size: int) -> list[float]:
        return [generator.uniform(-5, 5) for _ in range(size)]

    makers = [
        lambda: (v1, "{not json", as_json),
        lambda: (v1, "", as_json),
        lambda: (v1, "[1, 2, 3]", as_json),
        lambda: (v1, "null", as_json),
        lambda: (v1, json.dumps({"instances": []}), as_json),
        lambda: (v1, json.dumps({"rows": [row(width)]}), as_json),
        lambda: (v1, json.dumps({"instances": "all of them"}), as_json),
        lambda: (v1, json.dumps({"instances": [row(generator.randint(1, width - 1))]}), as_json),
        lambda: (v1, json.dumps({"instances": [row(width), row(width + 3)]}), as_json),
        lambda: (v1, json.dumps({"instances": [["a"] * width]}), as_json),
        lambda: (v1, json.dumps({"instances": [[None] * width]}), as_json),
        lambda: (v1, json.dumps({"instances": [[[1.0]] * width]}), as_json),
        lambda: (v1, json.dumps({"instances": [{"no such column": 1}]}), as_json),
        lambda: (v1, '{"instances": [[1e999' + ", 0" * (width - 1) + "]]}", as_json),
        lambda: (v1, bytes(generator.getrandbits(8) for _ in range(64)), {"Content-Type": "application/json"}),
        lambda: (v1, "\xff\xfe garbage", {"Content-Type": "text/plain"}),
        lambda: (v2, "{broken", as_json),
        lambda: (v2, json.dumps({"inputs": "x"}), as_json),
        lambda: (v2, json.dumps({"inputs": []}), as_json),
        lambda: (
            v2,
            json.dumps({"inputs": [{"name": "x", "shape": [2, width], "datatype": "FP64", "data": row(5)}]}),
            as_json,
        ),
        lambda: (
            v2,
            json.dumps({"inputs": [{"name": "x", "shape": [1, width], "datatype": "BOGUS", "data": row(width)}]}),
            as_json,
        ),
        lambda: (
            v2,
            json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": row(3)}]}),
            as_json,
        ),
        lambda: (v2, json.dumps({"inputs": [{"name": "x", "shape": [-1], "datatype": "FP64", "data": []}]}), as_json),
        lambda: (
            v2,
            json.dumps({"inputs": [{"name": "x", "shape": [1, width], "datatype": "BYTES", "data": ["a"] * width}]}),
            as_json,
        ),
        lambda: (v2, json.dumps({"id": 5, "inputs": [{"name": "x"}]}), as_json),
        lambda: (v2, json.dumps([1, 2]), as_json),
    ]
    for _ in range(count):
        yield generator.choice(makers)()


def test_a_thousand_malformed_requests_get_4xx_and_the_server_still_answers(
    server: Server, registered_model: RegisteredModel
):
    width = registered_model.features.shape[1]
    statuses: dict[int, int] = {}
    for path, body, headers in malformed_requests(1000, width):
        status, answer = server.request("POST", path, body, headers)
        statuses[status] = statuses.get(status, 0) + 1
        assert 400 <= status < 500, f"{path} {body!r:.200} -> {status} {answer!r:.300}"
        assert isinstance(answer, dict) and answer.get("error"), answer  # a JSON error that says why
    assert sum(statuses.values()) == 1000
    status, body = server.post_json("/v1/models/cancer:predict", {"instances": rows(registered_model)})
    assert (status, body) == (200, {"predictions": expected(registered_model)})
    assert server.process.poll() is None


def test_an_oversized_body_is_refused_before_it_is_read(server: Server):
    body = b'{"instances": [' + b"[0.0]," * (3 * 1024 * 1024) + b"[0.0]]}"
    status, answer = server.request("POST", "/v1/models/cancer:predict", body, {"Content-Type": "application/json"})
    assert status == 413 and "larger than" in answer["error"]


def test_payloads_are_logged_one_line_per_request(server: Server, registered_model: RegisteredModel, payload_dir: Path):
    before = len(list(read_payloads(payload_dir)))
    data = rows(registered_model, 4)
    assert server.post_json("/v1/models/cancer:predict", {"instances": data})[0] == 200
    records = list(read_payloads(payload_dir))
    assert len(records) == before + 1
    last = records[-1]
    assert last["model"] == "cancer" and last["version"] == "1" and last["protocol"] == "v1"
    assert last["instances"] == data and last["predictions"] == expected(registered_model, 4)
    assert last["columns"] == list(registered_model.features.columns)


def test_rejected_predictions_are_logged_marked_and_drift_reads_only_answered_ones(
    server: Server, registered_model: RegisteredModel, payload_dir: Path
):
    answered_before = len(list(read_payloads(payload_dir)))
    narrow = {"instances": [[1.0, 2.0]]}
    status, answer = server.post_json("/v1/models/cancer:predict", narrow)
    assert status == 400
    not_a_request = {"inputs": "nope"}
    assert server.post_json("/v2/models/cancer/infer", not_a_request)[0] == 400
    everything = list(read_payloads(payload_dir, include_rejected=True))
    v1, v2 = everything[-2:]
    assert v1["rejected"] == answer["error"] and v1["body"] == narrow and v1["protocol"] == "v1"
    assert v2["rejected"].startswith("invalid inference request") and v2["body"] == not_a_request
    assert len(list(read_payloads(payload_dir))) == answered_before


def test_a_binary_output_is_appended_after_the_json_part(server: Server, registered_model: RegisteredModel):
    data = rows(registered_model, 3)
    request = {
        "inputs": [{"name": "table", "shape": [3, len(data[0])], "datatype": "FP64", "data": data}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    status, raw = server.request("POST", "/v2/models/cancer/infer", json.dumps(request))
    assert status == 200 and isinstance(raw, bytes)
    head = json.loads(raw[: raw.index(b"}]}") + 3])
    output = head["outputs"][0]
    assert output["parameters"]["binary_data_size"] == 3 * 8 and "data" not in output
    assert np.frombuffer(raw[-24:], dtype=np.int64).tolist() == expected(registered_model, 3)
    unknown = {**request, "outputs": [{"name": "proba"}]}
    status, answer = server.request("POST", "/v2/models/cancer/infer", json.dumps(unknown))
    assert status == 400 and "unknown output 'proba'" in answer["error"]


def test_unknown_model_name_is_404(server: Server, registered_model: RegisteredModel):
    status, _ = server.post_json("/v1/models/other:predict", {"instances": rows(registered_model, 1)})
    assert status == 404


def test_v2_metadata_describes_the_signatures_inputs_and_output(server: Server, registered_model: RegisteredModel):
    status, metadata = server.request("GET", "/v2/models/cancer")
    assert status == 200
    features = registered_model.features
    assert all(str(dtype) == "float64" for dtype in features.dtypes)  # so every column is an FP64
    assert metadata["inputs"] == [{"name": column, "datatype": "FP64", "shape": [-1]} for column in features.columns]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    # what the metadata says is what the server takes: one v2 input per column, by name
    first = features.iloc[:2]
    request = {
        "inputs": [
            {"name": item["name"], "datatype": item["datatype"], "shape": [2], "data": first[item["name"]].tolist()}
            for item in metadata["inputs"]
        ]
    }
    status, body = server.post_json("/v2/models/cancer/infer", request)
    assert status == 200
    assert body["outputs"][0]["data"] == registered_model.model.predict(first).tolist()
