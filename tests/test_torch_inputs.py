"""Served PyTorch inputs beyond flat float rows: a CNN's ``[N, 1, 8, 8]`` images (v1 nested lists, v2
tensors of more than two dimensions) and a text model's int64 token ids (an int64 signature, integer
tensors at serve time, ids outside the embedding refused with a 400 naming the row)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nb2pipe.lifecycle.batcher import BatchPolicy
from nb2pipe.lifecycle.predictor import BadPayload, Predictor
from nb2pipe.lifecycle.torch_model import TorchPredictModel, example_rows
from nb2pipe.store.registry import TRACKING_ENV, resolve_model
from tests.support.served import Server, serving
from tests.support.torch_training import fitted
from tests.test_torch_serving import SAME, Store, new_store, register

IMAGE = (1, 8, 8)
PIXELS = 64
CLASSES = 10
#: token ids 0..VOCABULARY-1, LENGTH a sequence; the class: whether token 7 appears
VOCABULARY, LENGTH, DIMENSIONS = 50, 12, 8


def digit_images(count: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images[:count] / 16.0, dtype=torch.float32).reshape(count, *IMAGE)
    return images, torch.tensor(digits.target[:count])


def trained_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * PIXELS, CLASSES)
    )
    images, labels = digit_images()
    return fitted(module, images, labels, epochs=30, rate=0.01)


def token_rows(count: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, VOCABULARY, (count, LENGTH), generator=torch.Generator().manual_seed(seed))
    return ids, (ids == 7).any(dim=1).long()


def trained_text_model() -> nn.Sequential:
    torch.manual_seed(0)
    module = nn.Sequential(nn.EmbeddingBag(VOCABULARY, DIMENSIONS, mode="mean"), nn.Linear(DIMENSIONS, 2))
    ids, labels = token_rows()
    return fitted(module, ids, labels, epochs=30, rate=0.05)


def own_output(module: nn.Module, rows: Any) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        return module(torch.as_tensor(rows)).numpy()


# -- rows -> tables (no MLflow, no server) ------------------------------------------------------


def test_example_rows_keep_integer_ids_and_make_everything_else_float32():
    ids = torch.arange(6).reshape(2, 3)
    assert example_rows(ids).dtype == np.int64 and example_rows(ids.int()).dtype == np.int32
    assert example_rows(np.ones((2, 3), dtype=np.float64)).dtype == np.float32
    assert example_rows(torch.ones(2, 3, dtype=torch.bool)).dtype == np.float32
    assert example_rows([[1.5, 2.0]]).dtype == np.float32


def test_nested_v1_rows_and_v2_image_tensors_become_the_flat_table():
    module = trained_cnn().eval()
    predictor = Predictor.build(TorchPredictModel(module, "cpu", IMAGE), None, None)
    images = digit_images(5)[0].numpy()
    expected = own_output(module, images)

    nested = predictor.table(images.tolist())
    assert nested.shape == (5, PIXELS)
    np.testing.assert_allclose(predictor.predict(nested), expected, **SAME)
    np.testing.assert_allclose(predictor.predict(predictor.table(images.reshape(5, PIXELS).tolist())), expected, **SAME)
    tensor = predictor.rows_from_tensors([("input-0", [5, *IMAGE], images)])
    np.testing.assert_array_equal(tensor, nested)

    with pytest.raises(BadPayload, match=r"\[3, 8, 8\]; this model takes \[N, 64\] or \[N, 1, 8, 8\]"):
        predictor.rows_from_tensors([("input-0", [3, 8, 8], images[:3].reshape(3, 8, 8))])
    with pytest.raises(BadPayload, match=r"row 1 is not a nested list of shape \[1, 8, 8\]"):
        predictor.table([images[0].tolist(), images[1].reshape(8, 8).tolist()])


def test_a_table_model_refuses_v2_inputs_of_more_than_two_dimensions():
    class Table:
        n_features_in_ = 4

        def predict(self, table: Any) -> Any:
            return np.asarray(table).sum(axis=1)

    predictor = Predictor.build(Table(), None, None)
    assert predictor.row_shape is None and predictor.integer_dtype is None
    with pytest.raises(BadPayload, match=r"this model takes \[N, 4\]$"):
        predictor.rows_from_tensors([("x", [1, 2, 2], np.zeros((1, 2, 2)))])
    with pytest.raises(BadPayload, match="numbers only"):
        predictor.table([[[1.0], [2.0], [3.0], [4.0]]])  # no row shape: nested rows stay refused
    assert predictor.predict(predictor.table([[1, 2, 3, 4.5]])) == [10.5]


def test_token_ids_are_integers_inside_the_embedding():
    module = trained_text_model().eval()
    served = TorchPredictModel(module, "cpu", (LENGTH,), np.int64)
    predictor = Predictor.build(served, None, None)
    assert served.id_count == VOCABULARY and predictor.integer_dtype == np.int64
    ids = token_rows(4, seed=3)[0].numpy()
    table = predictor.table(ids.tolist())
    assert table.dtype == np.int64
    np.testing.assert_allclose(predictor.predict(table), own_output(module, ids), **SAME)

    row = ids[0].tolist()
    refused = {
        "row 1 holds 2.5": [row, [*row[:-1], 2.5]],
        "row 0 holds bool": [[True] * LENGTH],
        "row 0 holds token id 1180591620717411303424": [[2**70] * LENGTH],
        "row 2 holds token id 50; the model's embedding takes ids 0 to 49": [row, row, [*row[:-1], VOCABULARY]],
        "row 0 holds token id -1": [[-1] * LENGTH],
    }
    for said, rows in refused.items():
        with pytest.raises(BadPayload, match=said):
            predictor.table(rows)  # before the request joins a batch
    # the module refuses them too when called directly (an id past the embedding is a device-side assert on a GPU)
    with pytest.raises(ValueError, match="row 0 holds token id 50"):
        served.predict(np.full((1, LENGTH), VOCABULARY))


class Counts(nn.Module):
    """Integer inputs without an embedding: any int64 id is fine."""

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        assert counts.dtype == torch.int64
        return counts.sum(dim=1, keepdim=True)


def test_integer_inputs_without_an_embedding_are_bounded_by_their_dtype_only():
    served = TorchPredictModel(Counts(), "cpu", (3,), np.int64)
    predictor = Predictor.build(served, None, None)
    assert served.id_count is None
    assert predictor.predict(predictor.table([[2**60 + 1, -5, 2]])) == [[2**60 - 2]]  # exact: no float64 on the way
    with pytest.raises(BadPayload, match="row 0 holds 9223372036854775808, outside int64's range"):
        predictor.table([[2**63, 0, 0]])


def test_only_a_first_embedding_layer_bounds_the_ids():
    from nb2pipe.lifecycle.torch_model import first_embedding_size

    assert first_embedding_size(nn.Sequential(nn.Embedding(30, 4), nn.Flatten(), nn.Linear(4 * LENGTH, 2))) == 30
    assert first_embedding_size(nn.EmbeddingBag(9, 4)) == 9
    assert first_embedding_size(nn.Sequential(nn.Linear(3, 3), nn.Embedding(30, 4))) is None


def test_a_curl_example_of_an_image_model_holds_the_nested_row():
    from nb2pipe.lifecycle.calling import calling_instructions, first_row

    images = digit_images(2)[0].numpy()
    instructions = calling_instructions("cnn", "http://cnn.example", (), first_row(images, None))
    assert instructions.curl is not None
    body = json.loads(instructions.curl.split(" -d ")[1].strip("'"))
    np.testing.assert_allclose(np.asarray(body["instances"]), images[:1])


# -- registered and served ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, dict[str, Any]]]:
    """A CNN registered on (N, 1, 8, 8) float images and a text model on (N, 12) int64 ids, as the pipeline does."""
    store = new_store(tmp_path_factory.mktemp("torch-inputs"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TRACKING_ENV, store.tracking_uri)
        cnn, text = trained_cnn(), trained_text_model()
        models = {
            "cnn": (cnn, register(cnn, digit_images()[0], store, "cnn")),
            "text": (text, register(text, token_rows()[0], store, "text")),
        }
        yield store, models


@pytest.mark.slow
def test_the_signature_keeps_the_image_shape_and_the_integer_ids(registered: tuple[Store, dict[str, Any]]):
    from mlflow.models import Model

    from nb2pipe.lifecycle.torch_model import load_for_serving
    from nb2pipe.store.reference import load_reference
    from nb2pipe.store.registry import download_reference

    _, models = registered
    shapes = {"cnn": ((-1, *IMAGE), "float32"), "text": ((-1, LENGTH), "int64")}
    for name, (module, version) in models.items():
        source = resolve_model(version.uri)
        (spec,) = Model.load(str(source.local_path / "MLmodel")).signature.inputs.inputs
        assert (spec.shape, str(spec.type)) == shapes[name]
        kept = download_reference(version.uri)
        assert kept is not None
        reference = load_reference(kept)  # what drift checks and explainers read: numpy of the same dtype
        assert isinstance(reference, np.ndarray) and reference.dtype == np.dtype(shapes[name][1])
        served = load_for_serving(source)
        assert served.input_dtype == np.dtype(shapes[name][1]) and served.row_shape == shapes[name][0][1:]
        np.testing.assert_allclose(served.predict(reference[:6]), own_output(module, reference[:6]), **SAME)


@pytest.mark.slow
def test_integer_features_of_a_module_that_takes_floats_register_as_float32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from mlflow.models import Model

    store = new_store(tmp_path / "store")
    monkeypatch.setenv(TRACKING_ENV, store.tracking_uri)
    counts = np.random.default_rng(0).integers(0, 9, size=(20, 5))  # an MLP on counts: nn.Linear takes no int64
    version = register(nn.Sequential(nn.Linear(5, 3)), counts, store, "counts")
    (spec,) = Model.load(str(resolve_model(version.uri).local_path / "MLmodel")).signature.inputs.inputs
    assert (spec.shape, str(spec.type)) == ((-1, 5), "float32")


@pytest.fixture(scope="module")
def servers(registered: tuple[Store, dict[str, Any]]) -> Iterator[dict[str, Server]]:
    store, models = registered
    with (
        serving(models["cnn"][1].uri, "cnn", store.tracking_uri, store.folder) as cnn,
        serving(models["text"][1].uri, "text", store.tracking_uri, store.folder) as text,
    ):
        yield {"cnn": cnn, "text": text}


def v2_input(shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}]}


@pytest.mark.slow
def test_a_served_cnn_takes_images_nested_flat_and_as_v2_tensors(
    servers: dict[str, Server], registered: tuple[Store, dict[str, Any]]
):
    server, module = servers["cnn"], registered[1]["cnn"][0]
    images = digit_images(7)[0].numpy()
    expected = own_output(module, images)
    for rows in (images.tolist(), images.reshape(7, PIXELS).tolist()):
        status, body = server.post_json("/v1/models/cnn:predict", {"instances": rows})
        assert status == 200
        np.testing.assert_allclose(body["predictions"], expected, **SAME)
    for shape in ([7, *IMAGE], [7, PIXELS]):
        status, body = server.post_json("/v2/models/cnn/infer", v2_input(shape, "FP32", images.ravel().tolist()))
        assert status == 200 and body["outputs"][0]["shape"] == [7, CLASSES]
        np.testing.assert_allclose(np.reshape(body["outputs"][0]["data"], (7, CLASSES)), expected, **SAME)

    status, metadata = server.request("GET", "/v2/models/cnn")
    assert status == 200
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, *IMAGE]}]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1, CLASSES]}]


@pytest.mark.slow
def test_a_served_text_model_takes_int64_ids_and_refuses_ids_outside_its_embedding(
    servers: dict[str, Server], registered: tuple[Store, dict[str, Any]]
):
    server, module = servers["text"], registered[1]["text"][0]
    ids = token_rows(5, seed=4)[0].numpy()
    expected = own_output(module, ids)
    status, body = server.post_json("/v1/models/text:predict", {"instances": ids.tolist()})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], expected, **SAME)
    status, body = server.post_json("/v2/models/text/infer", v2_input([5, LENGTH], "INT64", ids.ravel().tolist()))
    assert status == 200
    np.testing.assert_allclose(np.reshape(body["outputs"][0]["data"], (5, 2)), expected, **SAME)
    status, metadata = server.request("GET", "/v2/models/text")
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "INT64", "shape": [-1, LENGTH]}]

    too_big = [ids[0].tolist(), [*ids[1, :-1].tolist(), VOCABULARY + 1]]
    status, answer = server.post_json("/v1/models/text:predict", {"instances": too_big})
    assert status == 400 and "row 1 holds token id 51" in json.dumps(answer)
    cut = v2_input([1, LENGTH], "INT64", [1.5] * LENGTH)  # numpy would cut 1.5 to 1
    status, answer = server.post_json("/v2/models/text/infer", cut)
    assert status == 400 and "values other than integers" in json.dumps(answer)


def statuses(server: Server, path: str, bodies: dict[str, Any], raw: dict[str, bytes]) -> dict[str, int]:
    found = {name: server.post_json(path, body)[0] for name, body in bodies.items()}
    for name, data in raw.items():
        found[name] = server.request("POST", path, data, {"Content-Type": "application/json"})[0]
    return found


@pytest.mark.slow
def test_hostile_images_are_refused_or_answered_never_a_server_error(servers: dict[str, Server]):
    server = servers["cnn"]
    image = np.full(IMAGE, 0.5).tolist()
    ragged = [[[0.5] * 8] * 7 + [[0.5] * 9]]
    v1 = {
        "ragged": {"instances": [ragged]},
        "too deep": {"instances": [[image]]},
        "too shallow": {"instances": [[[0.5] * 8] * 8]},
        "text pixel": {"instances": [[[[*([0.5] * 7), "x"]] + [[0.5] * 8] * 7]]},
        "null pixel": {"instances": [[[[None] * 8] * 8]]},
        "boolean pixels": {"instances": [[[[True] * 8] * 8]]},
        "huge pixels": {"instances": [[[[1e308] * 8] * 8]]},
        "image then flat": {"instances": [image, [0.5] * PIXELS]},
        "many images": {"instances": [image] * 5000},
    }
    v2 = {
        "v2 wrong shape": v2_input([1, 8, 8], "FP32", [0.5] * PIXELS),
        "v2 channels last": v2_input([1, 8, 8, 1], "FP32", [0.5] * PIXELS),
        "v2 short data": v2_input([2, *IMAGE], "FP32", [0.5] * PIXELS),
        "v2 nested ragged data": v2_input([1, *IMAGE], "FP32", ragged),
        "v2 five dimensions": v2_input([1, 1, *IMAGE], "FP32", [0.5] * PIXELS),
        "v2 many images": v2_input([5000, *IMAGE], "FP32", [0.5] * PIXELS * 5000),
    }
    nan = b"[[[NaN" + b", 0.5" * 7 + b"]" + b", [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]" * 7 + b"]]"
    raw = {
        "NaN": b'{"instances": [' + nan + b"]}",
        "Infinity": b'{"instances": [' + nan.replace(b"NaN", b"Infinity") + b"]}",
    }
    found = statuses(server, "/v1/models/cnn:predict", v1, raw)
    found.update(statuses(server, "/v2/models/cnn/infer", v2, {}))
    assert all(status in (200, 400) for status in found.values()), found
    assert found["many images"] == found["v2 many images"] == 200
    refused = ["ragged", "too deep", "too shallow", "text pixel", "null pixel", "image then flat", "v2 wrong shape"]
    assert all(found[name] == 400 for name in refused), found
    assert found["v2 channels last"] == found["v2 five dimensions"] == found["v2 short data"] == 400, found


@pytest.mark.slow
def test_hostile_token_ids_are_refused_or_answered_never_a_server_error(servers: dict[str, Server]):
    server = servers["text"]
    row = list(range(LENGTH))
    v1 = {
        "float id": {"instances": [[*row[:-1], 3.5]]},
        "boolean ids": {"instances": [[True] * LENGTH]},
        "huge id": {"instances": [[*row[:-1], 2**70]]},
        "int64 max id": {"instances": [[*row[:-1], 2**63 - 1]]},
        "1e308 id": {"instances": [[*row[:-1], 1e308]]},
        "negative id": {"instances": [[*row[:-1], -3]]},
        "text id": {"instances": [[*row[:-1], "7"]]},
        "null id": {"instances": [[None] * LENGTH]},
        "ragged": {"instances": [row, row[:-1]]},
        "nested": {"instances": [[row]]},
        "short": {"instances": [row[:-1]]},
        "many rows": {"instances": [row] * 5000},
    }
    v2 = {
        "v2 FP32 data": v2_input([1, LENGTH], "FP32", [float(i) for i in row]),
        "v2 float in INT64": v2_input([1, LENGTH], "INT64", [*row[:-1], 0.5]),
        "v2 boolean in INT64": v2_input([1, LENGTH], "INT64", [True] * LENGTH),
        "v2 huge INT64": v2_input([1, LENGTH], "INT64", [*row[:-1], 2**70]),
        "v2 three dimensions": v2_input([1, LENGTH, 1], "INT64", row),
        "v2 id past the vocabulary": v2_input([1, LENGTH], "INT64", [*row[:-1], VOCABULARY]),
        "v2 many rows": v2_input([5000, LENGTH], "INT64", row * 5000),
    }
    ids = b", 1" * (LENGTH - 1)
    raw = {
        "NaN": b'{"instances": [[NaN' + ids + b"]]}",
        "Infinity": b'{"instances": [[Infinity' + ids + b"]]}",
        "-Infinity": b'{"instances": [[-Infinity' + ids + b"]]}",
    }
    found = statuses(server, "/v1/models/text:predict", v1, raw)
    found.update(statuses(server, "/v2/models/text/infer", v2, {}))
    assert all(status in (200, 400) for status in found.values()), found
    assert found["many rows"] == found["v2 many rows"] == 200
    accepted = {"many rows", "v2 many rows"}
    assert all(status == 400 for name, status in found.items() if name not in accepted), found


# -- batching --------------------------------------------------------------------------------------


def counted_model(version: Any, name: str) -> tuple[Any, list[int]]:
    """The served kserve model with batching, and a list that grows by one per forward pass."""
    from nb2pipe.lifecycle.served_model import model_class

    model = model_class()(name, version.uri, batching=BatchPolicy(max_batch_size=64, max_latency_ms=300))
    model.load()
    calls: list[int] = []
    model.predictor.model.module.register_forward_hook(lambda *_: calls.append(1))
    return model, calls


async def send_together(model: Any, rows: np.ndarray, datatype: str, bad_row: Any) -> list[Any]:
    """One request per row, at once: odd ones v1 (an image nested as [1][8][8]), even ones v2 tensors
    ``[1, *row]``; then one bad v1 request. Answers or exceptions, in order."""
    from kserve.protocol.infer_type import InferInput, InferRequest

    def v2(row: np.ndarray) -> Any:
        return InferRequest(model.name, [InferInput("input-0", [1, *row.shape], datatype, row.ravel().tolist())])

    bodies = [{"instances": [row.tolist()]} if i % 2 else v2(row) for i, row in enumerate(rows)]
    bodies.append({"instances": [bad_row]})
    return await asyncio.gather(*(model.predict(body) for body in bodies), return_exceptions=True)


@pytest.mark.slow
def test_concurrent_image_and_id_requests_run_as_one_forward_pass(
    registered: tuple[Store, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
):
    from kserve.errors import InvalidInput

    store, models = registered
    monkeypatch.setenv(TRACKING_ENV, store.tracking_uri)
    ids = token_rows(12, seed=5)[0].numpy()
    cases = {
        # the bad requests: an [8][8] image without its channel; an id past the vocabulary
        "cnn": (digit_images(12)[0].numpy(), "FP32", [[0.5] * 8] * 8),
        "text": (ids, "INT64", [*ids[0, :-1].tolist(), VOCABULARY]),
    }
    for name, (rows, datatype, bad_row) in cases.items():
        model, calls = counted_model(models[name][1], name)
        answers = asyncio.run(send_together(model, rows, datatype, bad_row))
        assert isinstance(answers[-1], InvalidInput), answers[-1]
        got = [
            answer["predictions"][0] if isinstance(answer, dict) else answer.outputs[0].data for answer in answers[:-1]
        ]
        expected = own_output(models[name][0], rows)
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64).reshape(expected.shape), expected, **SAME)
        # the bad request fails before it joins a batch: one forward pass for the 12 good requests
        assert (len(calls), model.batcher.batches, model.batcher.batched_rows) == (1, 1, 12), name
