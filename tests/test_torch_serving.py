"""PyTorch models registered with ``register:`` (mlflow.pytorch, the full module cloudpickled) and
served by ``nb2pipe serve``: eval mode, one float32 tensor per batch, v1 and v2, bad rows 400,
concurrent requests stacked into one forward pass."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nb2pipe.errors import Nb2PipeError
from nb2pipe.lifecycle.batcher import BatchPolicy
from nb2pipe.store.registry import TRACKING_ENV, RegistryError, resolve_model
from tests.support.served import Server, serving

ROOT = Path(__file__).resolve().parent.parent
FEATURES, CLASSES = 64, 10  # digits-sized rows
#: float32 sums come out in another order with another thread count or batch: equal up to rounding
SAME: dict[str, Any] = {"rtol": 1e-5, "atol": 1e-6}


class CountingMLP(nn.Module):
    """An MLP that counts its forward calls (how many batches reached the model)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(FEATURES, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, CLASSES)
        )
        self.calls = 0

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.layers(rows)


class PairModule(nn.Module):
    def forward(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rows, rows


def training_rows(count: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, FEATURES, generator=torch.Generator().manual_seed(seed))


def trained_mlp() -> CountingMLP:
    torch.manual_seed(0)
    module = CountingMLP()
    module(training_rows())  # one train-mode pass: batch-norm statistics move off their defaults
    return module


def own_output(module: nn.Module, rows: Any) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        return module(torch.as_tensor(np.asarray(rows, dtype=np.float32))).numpy()


@dataclass(frozen=True)
class Store:
    folder: Path
    tracking_uri: str


def new_store(folder: Path) -> Store:
    folder.mkdir(parents=True, exist_ok=True)
    return Store(folder, f"sqlite:///{folder / 'mlflow.db'}")


@pytest.fixture
def tracking(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    store = new_store(tmp_path / "store")
    monkeypatch.setenv(TRACKING_ENV, store.tracking_uri)
    return store


def register(module: nn.Module, example: Any, store: Store, name: str = "digits") -> Any:
    from nb2pipe.lifecycle.register import Registration, register_model

    return register_model(module, example, Registration(name, "tests"), store=store.folder)


# -- register ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_module_registers_with_the_pytorch_flavour_and_loads_back(tracking: Store):
    from mlflow.models import Model

    from nb2pipe.lifecycle.torch_model import load_for_serving
    from nb2pipe.store.reference import load_reference
    from nb2pipe.store.registry import download_reference

    module = trained_mlp()
    module.train()
    norm = module.layers[1]
    assert isinstance(norm, nn.BatchNorm1d) and norm.running_mean is not None
    statistics = norm.running_mean.clone()
    registered = register(module, training_rows(), tracking)

    assert registered.flavor == "pytorch"
    # the signature's forward pass ran in eval mode and left the module as it was
    assert module.training and torch.equal(norm.running_mean, statistics)
    source = resolve_model(registered.uri)
    assert source.flavor == "pytorch" and source.library_versions["torch"] == torch.__version__
    signature = Model.load(str(source.local_path / "MLmodel")).signature
    assert signature.inputs.inputs[0].shape == (-1, FEATURES) and str(signature.inputs.inputs[0].type) == "float32"
    assert signature.outputs.inputs[0].shape == (-1, CLASSES)
    requirements = (source.local_path / "requirements.txt").read_text()
    assert f"torch=={metadata.version('torch')}" in requirements.splitlines() and "cloudpickle==" in requirements
    # the training data is kept as numpy (drift checks and explainers read no tensors)
    kept = download_reference(registered.uri)
    assert kept is not None
    reference = load_reference(kept)
    assert isinstance(reference, np.ndarray) and reference.dtype == np.float32 and reference.shape == (40, FEATURES)

    served = load_for_serving(source)
    rows = training_rows(6, seed=1).numpy()
    assert served.device == "cpu" and not served.module.training
    np.testing.assert_allclose(served.predict(rows), own_output(module, rows), **SAME)


def test_a_module_answering_no_tensor_is_refused_at_registration(tracking: Store):
    with pytest.raises(RegistryError, match="returned a tuple"):
        register(PairModule(), training_rows(), tracking)


GONE_MAIN = textwrap.dedent(
    """
    import sys

    import numpy as np
    import torch
    from torch import nn

    from nb2pipe.lifecycle.register import Registration, register_model


    class NotebookNet(nn.Module):  # defined in __main__, as in a notebook: importable nowhere else
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(64, 32)
            self.norm = nn.BatchNorm1d(32)
            self.drop = nn.Dropout(0.5)
            self.out = nn.Linear(32, 10)

        def forward(self, rows):
            return self.out(self.drop(torch.relu(self.norm(self.hidden(rows)))))


    torch.manual_seed(0)
    net = NotebookNet()
    rows = torch.randn(40, 64, generator=torch.Generator().manual_seed(0))
    net(rows)
    registered = register_model(net, rows.numpy(), Registration("notebook", "tests"), store=sys.argv[1])
    net.eval()
    with torch.no_grad():
        np.save(sys.argv[2], net(rows[:7]).numpy())
    np.save(sys.argv[3], rows[:7].numpy())
    print(registered.uri)
    """
)


@dataclass(frozen=True)
class GoneMain:
    store: Store
    uri: str
    rows: np.ndarray
    expected: np.ndarray


@pytest.fixture(scope="module")
def gone_main(tmp_path_factory: pytest.TempPathFactory) -> GoneMain:
    """A module whose class lived in the ``__main__`` of a process that has exited."""
    store = new_store(tmp_path_factory.mktemp("gone-main"))
    expected, rows = store.folder / "expected.npy", store.folder / "rows.npy"
    environment = {**os.environ, TRACKING_ENV: store.tracking_uri, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", GONE_MAIN, str(store.folder), str(expected), str(rows)],
        env=environment,
        cwd=store.folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return GoneMain(store, done.stdout.strip().splitlines()[-1], np.load(rows), np.load(expected))


@pytest.mark.slow
def test_a_class_defined_in_a_gone_main_loads_in_another_process(gone_main: GoneMain, monkeypatch: pytest.MonkeyPatch):
    from nb2pipe.lifecycle.torch_model import load_for_serving

    assert "NotebookNet" not in vars(sys.modules["__main__"])
    monkeypatch.setenv(TRACKING_ENV, gone_main.store.tracking_uri)
    served = load_for_serving(resolve_model(gone_main.uri))
    assert type(served.module).__name__ == "NotebookNet"
    np.testing.assert_allclose(served.predict(gone_main.rows), gone_main.expected, **SAME)


# -- serve -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(gone_main: GoneMain) -> Iterator[Server]:
    with serving(gone_main.uri, "digits", gone_main.store.tracking_uri, gone_main.store.folder) as running:
        yield running


@pytest.mark.slow
def test_served_v1_and_v2_answers_equal_the_modules_own(server: Server, gone_main: GoneMain):
    rows = gone_main.rows.tolist()
    status, body = server.post_json("/v1/models/digits:predict", {"instances": rows})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], gone_main.expected, **SAME)

    tensor = {"name": "input-0", "shape": [len(rows), FEATURES], "datatype": "FP32", "data": np.ravel(rows).tolist()}
    status, body = server.post_json("/v2/models/digits/infer", {"id": "t-1", "inputs": [tensor]})
    assert status == 200 and body["id"] == "t-1"
    (output,) = body["outputs"]
    assert output["shape"] == [len(rows), CLASSES] and output["datatype"] == "FP64"
    answered = np.asarray(output["data"]).reshape(output["shape"])
    np.testing.assert_allclose(answered, gone_main.expected, **SAME)


@pytest.mark.slow
def test_served_metadata_describes_the_tensor_input(server: Server):
    status, metadata = server.request("GET", "/v2/models/digits")
    assert status == 200
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, FEATURES]}]
    # the output as :infer answers it: K scores a row, Python floats
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1, CLASSES]}]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "body", "said"),
    [
        ("/v1/models/digits:predict", {"instances": [[0.5] * (FEATURES - 1)]}, f"needs {FEATURES} values"),
        ("/v1/models/digits:predict", {"instances": [[0.5] * FEATURES, [0.5] * 3]}, "row 1"),
        ("/v1/models/digits:predict", {"instances": [["x"] * FEATURES]}, "numbers only"),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            f"needs {FEATURES} values",
        ),
    ],
)
def test_a_bad_row_is_a_400_that_says_why(server: Server, path: str, body: Any, said: str):
    status, answer = server.post_json(path, body)
    assert status == 400 and said in json.dumps(answer)


@pytest.mark.slow
def test_hostile_rows_are_refused_or_answered_never_a_server_error(server: Server):
    row = [0.5] * FEATURES
    hostile = {
        "nested": {"instances": [[row]]},
        "empty": {"instances": []},
        "none": {"instances": [[None] * FEATURES]},
        "booleans": {"instances": [[True] * FEATURES]},
        "huge": {"instances": [[1e308] * FEATURES]},
        "mixed": {"instances": [[*row[:-1], "7"]]},
        "object rows": {"instances": [{"a": 1}]},
        "no instances": {"rows": [row]},
        "many rows": {"instances": [row] * 5000},
    }
    statuses = {name: server.post_json("/v1/models/digits:predict", body)[0] for name, body in hostile.items()}
    raw = {
        "NaN": b'{"instances": [[NaN' + b", 0.5" * (FEATURES - 1) + b"]]}",
        "Infinity": b'{"instances": [[Infinity' + b", 0.5" * (FEATURES - 1) + b"]]}",
    }
    for name, data in raw.items():
        statuses[name] = server.request(
            "POST", "/v1/models/digits:predict", data, {"Content-Type": "application/json"}
        )[0]
    assert all(status in (200, 400) for status in statuses.values()), statuses
    assert statuses["many rows"] == 200 and statuses["nested"] == statuses["mixed"] == 400


# -- batching ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_requests_run_as_one_forward_pass(tracking: Store):
    from kserve.errors import InvalidInput

    from nb2pipe.lifecycle.served_model import model_class

    module = trained_mlp()
    registered = register(module, training_rows(), tracking)
    model = model_class()("digits", registered.uri, batching=BatchPolicy(max_batch_size=64, max_latency_ms=300))
    model.load()
    served_module = model.predictor.model.module
    calls_after_load = served_module.calls  # load itself may probe the model
    rows = training_rows(12, seed=2).numpy().tolist()

    async def send() -> list[Any]:
        bodies = [{"instances": [row]} for row in rows] + [{"instances": [[1.0, 2.0]]}]
        return await asyncio.gather(*(model.predict(body) for body in bodies), return_exceptions=True)

    answers = asyncio.run(send())
    assert isinstance(answers[12], InvalidInput)  # the wrong width fails before it joins a batch
    got = np.asarray([answer["predictions"][0] for answer in answers[:12]])
    np.testing.assert_allclose(got, own_output(module, rows), **SAME)
    assert served_module.calls - calls_after_load == 1
    assert (model.batcher.batches, model.batcher.batched_rows) == (1, 12)


# -- device and threads ----------------------------------------------------------------------


def test_the_module_loads_onto_cuda_when_a_gpu_is_present(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import mlflow.pytorch

    from nb2pipe.lifecycle import torch_model

    (tmp_path / "MLmodel").write_text("flavors:\n  pytorch: {pytorch_version: 2.14.1}\n")
    loaded: dict[str, Any] = {}

    class Placed:
        def to(self, device: str) -> Placed:
            loaded["moved_to"] = device
            return self

        def eval(self) -> Placed:
            loaded["eval"] = True
            return self

    def fake_load(path: str, **kwargs: Any) -> Placed:
        loaded.update(kwargs)
        return Placed()

    monkeypatch.setattr(mlflow.pytorch, "load_model", fake_load)
    source = resolve_model(str(tmp_path))
    for available, device in ((True, "cuda"), (False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda available=available: available)
        loaded.clear()
        served = torch_model.load_for_serving(source)
        assert loaded == {"map_location": device, "moved_to": device, "eval": True} and served.device == device


def test_a_module_that_does_not_load_is_a_registry_error(tmp_path: Path):
    from nb2pipe.lifecycle.torch_model import load_for_serving

    (tmp_path / "MLmodel").write_text("flavors:\n  pytorch:\n    model_data: data\n    pytorch_version: '0'\n")
    with pytest.raises(RegistryError, match="cannot load the PyTorch model"):
        load_for_serving(resolve_model(str(tmp_path)))


def test_rows_take_the_signatures_input_shape():
    from nb2pipe.lifecycle.torch_model import TorchPredictModel

    class Shape(nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            assert images.dtype == torch.float32 and images.shape[1:] == (1, 2, 3)
            return images.flatten(1).sum(dim=1)

    served = TorchPredictModel(Shape(), "cpu", (1, 2, 3))
    assert served.n_features_in_ == 6
    np.testing.assert_array_equal(served.predict(np.arange(12.0).reshape(2, 6)), [15.0, 51.0])
    with pytest.raises(Nb2PipeError, match="returned a tuple"):
        TorchPredictModel(PairModule(), "cpu", None).predict(np.zeros((1, 2)))


@pytest.mark.parametrize(
    ("cpu_max", "expected"), [("200000 100000\n", 2), ("150000 100000\n", 2), ("max 100000\n", None)]
)
def test_usable_cpus_follow_the_cgroup_quota(tmp_path: Path, cpu_max: str, expected: int | None):
    from nb2pipe.lifecycle.torch_model import usable_cpus

    limit = tmp_path / "cpu.max"
    limit.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(limit) == (min(expected, affinity) if expected else affinity)
    assert usable_cpus(tmp_path / "absent") == affinity


def test_thread_pool_is_capped_unless_omp_decides(monkeypatch: pytest.MonkeyPatch):
    from nb2pipe.lifecycle import torch_model

    chosen: list[int] = []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cpus in (6, 2, 1, 100):  # one CPU is left to the event loop; 100 exceeds torch's own 64
        monkeypatch.setattr(torch_model, "usable_cpus", lambda cpus=cpus: cpus)
        torch_model.limit_cpu_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    torch_model.limit_cpu_threads()
    assert chosen == [5, 1, 1]


def test_a_pytorch_model_is_said_to_compute_on_the_gpu_when_pytorch_sees_one(monkeypatch: pytest.MonkeyPatch):
    from nb2pipe.store.registry import serving_device

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    for available, pytorch in ((True, "cuda:0 (NVIDIA H200)"), (False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda available=available: available)
        # what nb2pipe profile records per variant: its rates hold for that device
        assert serving_device("pytorch") == pytorch
        assert serving_device("sklearn") == serving_device("tensorflow") == "cpu"
