"""PyTorch values between steps: tensors and modules in PyTorch's own formats, loaded onto a
device the reading step has; values tied to their process refused, at run time and compile time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from nb2pipe.runtime import values
from nb2pipe.runtime.values import StepError, load_value, save_value
from tests.support.nbtools import code, diagnostics_of, notebook, plan_of, write_notebook

REPOSITORY = Path(__file__).resolve().parents[1]


def sidecar_of(folder: Path) -> dict[str, Any]:
    import json

    return json.loads((folder / values.VALUE_SIDECAR).read_text())


def record_torch_loads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of each torch.load call, the call itself going through."""
    calls: list[dict[str, Any]] = []
    real_load = torch.load

    def recording_load(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    return calls


def test_a_tensor_round_trips_in_torch_format_and_loads_with_weights_only(tmp_path: Path, monkeypatch):
    tensor = torch.randn(5, 3, dtype=torch.float64)
    described = save_value(tensor, str(tmp_path / "x"))
    assert described == {
        "format": "torch-tensor",
        "file": "value.pt",
        "library": "torch",
        "python_type": "torch.Tensor",
    }
    loaded_with = record_torch_loads(monkeypatch)
    loaded = load_value(str(tmp_path / "x"))
    assert torch.equal(loaded, tensor) and loaded.dtype == torch.float64
    assert loaded_with[0]["weights_only"] is True


def test_a_tuple_of_tensors_stays_a_tuple_and_views_are_saved_without_their_base(tmp_path: Path):
    whole = torch.arange(100_000, dtype=torch.float32).reshape(1000, 100)
    X_train, y_train = whole[:10], torch.tensor([0, 1] * 5)
    batch = {"features": [X_train, torch.nn.Parameter(torch.ones(2))], "epochs": 3, "note": None}
    assert save_value((X_train, y_train), str(tmp_path / "pair"))["format"] == "torch-tensor"
    assert save_value(batch, str(tmp_path / "batch"))["library"] == "torch"

    pair = load_value(str(tmp_path / "pair"))
    assert type(pair) is tuple and torch.equal(pair[0], X_train) and torch.equal(pair[1], y_train)
    # the view holds 1,000 of 100,000 floats: its file is far smaller than the base's 400 kB
    assert (tmp_path / "pair" / "value.pt").stat().st_size < 40_000
    restored = load_value(str(tmp_path / "batch"))
    assert restored["epochs"] == 3 and restored["note"] is None
    assert isinstance(restored["features"][1], torch.nn.Parameter)
    assert torch.equal(restored["features"][0], X_train)


def test_containers_with_other_values_are_not_torch_data(tmp_path: Path):
    assert save_value([torch.zeros(1), object()], str(tmp_path / "mixed"))["format"] == "pickle"
    assert save_value([1.0, 2.0], str(tmp_path / "plain"))["format"] == "json"
    looped: list[Any] = [torch.zeros(1)]
    looped.append(looped)
    assert save_value(looped, str(tmp_path / "looped"))["format"] == "pickle"


def test_a_module_whose_class_was_defined_in_a_gone_main_loads_here(tmp_path: Path):
    """The class lives only in the saving process's __main__, as a notebook's does in a step."""
    saver = (
        "import torch\nfrom torch import nn\nfrom nb2pipe.runtime.values import save_value\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.layer = nn.Linear(3, 2)\n"
        "    def forward(self, x):\n        return self.layer(x).relu() * 2\n"
        "torch.manual_seed(0)\nnet = Net()\n"
        f"print(save_value(net, {str(tmp_path / 'net')!r})['python_type'])\n"
        "print(net(torch.ones(1, 3)).tolist())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", saver], capture_output=True, text=True, cwd=REPOSITORY, timeout=120, check=True
    )
    python_type, expected = done.stdout.splitlines()
    assert python_type == "__main__.Net"
    assert sidecar_of(tmp_path / "net")["format"] == "torch-module"
    assert sidecar_of(tmp_path / "net")["library"] == "torch"
    assert not hasattr(sys.modules["__main__"], "Net")

    net = load_value(str(tmp_path / "net"))
    assert type(net).__name__ == "Net" and isinstance(net, torch.nn.Module)
    assert str(net(torch.ones(1, 3)).tolist()) == expected


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")  # still the notebook's choice
def test_a_torchscript_module_is_saved_as_torchscript(tmp_path: Path):
    net = torch.jit.script(torch.nn.Linear(3, 1))
    assert save_value(net, str(tmp_path / "net"))["format"] == "torch-script"
    loaded = load_value(str(tmp_path / "net"))
    assert isinstance(loaded, torch.jit.ScriptModule)
    assert torch.equal(loaded(torch.ones(2, 3)), net(torch.ones(2, 3)))


@contextmanager
def storages_tagged_as_cuda() -> Iterator[None]:
    """torch.save records each storage's device; here CPU storages are recorded as on cuda:0,
    so a file reads as a GPU step's would on a machine without CUDA."""
    import torch.serialization as serialization

    registry = list(serialization._package_registry)
    priority, _, deserializer = registry[0]
    serialization._package_registry[0] = (priority, lambda storage: "cuda:0", deserializer)
    try:
        yield
    finally:
        serialization._package_registry[:] = registry


def test_what_a_gpu_step_wrote_loads_on_a_machine_without_cuda(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    layer = torch.nn.Linear(2, 2)
    net = torch.nn.Sequential(layer)
    with storages_tagged_as_cuda():
        save_value(torch.arange(4.0), str(tmp_path / "tensor"))
        save_value(net, str(tmp_path / "net"))
    with pytest.raises(RuntimeError, match="CUDA"):  # the files really name a CUDA device
        torch.load(tmp_path / "tensor" / "value.pt", weights_only=True)

    tensor = load_value(str(tmp_path / "tensor"))
    assert tensor.device.type == "cpu" and tensor.tolist() == [0.0, 1.0, 2.0, 3.0]
    loaded = load_value(str(tmp_path / "net"))
    assert next(loaded.parameters()).device.type == "cpu"
    assert torch.equal(loaded[0].weight, layer.weight)


@pytest.mark.parametrize(
    ("cuda", "on_gpu", "location"),
    [(False, False, "cpu"), (False, True, "cpu"), (True, False, "cpu"), (True, True, None)],
)
def test_only_a_gpu_step_with_cuda_keeps_tensors_where_they_were_saved(
    cuda: bool, on_gpu: bool, location: str | None, monkeypatch
):
    # a CPU step on a machine with a GPU (a whole pipeline on one workstation) computes with CPU
    # tensors beside the loaded ones: it reads them onto the CPU, as its pod on a cluster would
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert values.torch_map_location(on_gpu) == location


def test_a_gpu_step_loads_a_module_without_moving_it_and_a_cpu_step_onto_the_cpu(tmp_path: Path, monkeypatch):
    save_value(torch.nn.Linear(2, 1), str(tmp_path / "net"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    calls = record_torch_loads(monkeypatch)
    assert isinstance(load_value(str(tmp_path / "net"), on_gpu=True), torch.nn.Linear)
    assert isinstance(load_value(str(tmp_path / "net")), torch.nn.Linear)
    assert calls == [{"map_location": None, "weights_only": False}, {"map_location": "cpu", "weights_only": False}]


def test_only_gpu_steps_say_so_in_their_spec():
    from nb2pipe.emit.step_source import step_spec

    plan = plan_of(
        notebook(code("import torch\nx = torch.ones(2)", "step:make", "gpu:1"), code("y = x * 2", "step:use"))
    )
    specs = {step.name: step_spec(step, plan) for step in plan.steps}
    assert specs["make"]["gpu"] is True and "gpu" not in specs["use"]


def refused_values() -> list[tuple[Any, str, str]]:
    net = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4, 2)), batch_size=2)
    return [
        (loader, "a DataLoader", "build the DataLoader in the step that iterates it"),
        (iter(loader), "a DataLoader iterator", "iterate in the step that uses it"),
        (optimizer, "an optimizer", "create the optimizer again"),
        (torch.optim.lr_scheduler.StepLR(optimizer, 1), "a learning-rate scheduler", "state_dict()"),
    ]


@pytest.mark.parametrize(("value", "what", "instead"), refused_values(), ids=["loader", "iterator", "opt", "sched"])
def test_values_tied_to_the_step_are_refused_saying_what_to_pass(value: Any, what: str, instead: str, tmp_path):
    with pytest.raises(StepError) as refused:
        save_value(value, str(tmp_path / "v"), "handed_on")
    assert str(refused.value).startswith(f"'handed_on' is {what}, which cannot be passed to another step: ")
    assert instead in str(refused.value)
    assert os.listdir(tmp_path) == []


def test_streams_and_events_are_refused_by_their_class(tmp_path: Path):
    # torch.cuda.Stream and Event subclass these; without a GPU only the CPU ones can be made
    with pytest.raises(StepError, match=r"'s' is a CUDA stream, which cannot be passed.*create it in the step"):
        save_value(torch.Stream(device="cpu"), str(tmp_path / "s"), "s")
    with pytest.raises(StepError, match="'e' is a CUDA event, which cannot be passed"):
        save_value(torch.Event(), str(tmp_path / "e"), "e")


def test_values_that_are_not_torch_are_checked_without_importing_torch(tmp_path: Path):
    probe = (
        "import sys\nfrom nb2pipe.runtime.values import save_value, load_value\n"
        f"save_value((1, 2), {str(tmp_path / 'v')!r})\nassert load_value({str(tmp_path / 'v')!r}) == (1, 2)\n"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPOSITORY, check=True)
    assert done.stdout.strip() == "False"


# --- kinds from the compiled notebook ---

IMPORTS = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\nfrom torch.utils.data import DataLoader"


def kinds_of(step_code: str) -> dict[str, str]:
    names = [line.split(" =")[0] for line in step_code.splitlines() if " = " in line and not line.startswith(" ")]
    use = code("print(" + ", ".join(names) + ")", "step:use")
    plan = plan_of(notebook(code(IMPORTS, "imports"), code(step_code, "step:make"), use))
    return {output.name: output.kind for output in plan.step("make").outputs}


def test_modules_are_models_and_tensors_datasets_in_the_compiled_pipeline():
    found = kinds_of(
        "net = nn.Sequential(nn.Linear(64, 10))\nmoved = net.to('cpu')\nX = torch.tensor([[1.0]])\n"
        "noise = torch.randn(3, 2)\nscaled = X * 2\nlogits = net(X)\nhidden = F.relu(X)\n"
        "as_float = X.float()\nloss_fn = nn.CrossEntropyLoss()\ndevice = torch.device('cpu')\n"
        "weights = nn.Parameter(torch.zeros(2))\ndata = torch.utils.data.TensorDataset(X)"
    )
    assert found == {
        "net": "Model",
        "moved": "Model",
        "X": "Dataset",
        "noise": "Dataset",
        "scaled": "Dataset",
        "logits": "Dataset",
        "hidden": "Dataset",
        "as_float": "Dataset",
        "loss_fn": "Artifact",
        "device": "Artifact",
        "weights": "Dataset",
        "data": "Dataset",
    }


def test_a_notebook_module_class_makes_models_in_the_compiled_pipeline():
    found = kinds_of(
        "class Net(nn.Module):\n    pass\nclass Deeper(Net):\n    pass\nclass Plain:\n    pass\n"
        "net = Deeper()\nmoved = Net().to('cpu')\nout = net(torch.ones(1))\nplain = Plain()"
    )
    assert found == {"net": "Model", "moved": "Model", "out": "Dataset", "plain": "Artifact"}


def test_a_notebook_module_class_makes_models():
    """Read through kinds.provenance: the class's bases come with its origin (``path``)."""
    from nb2pipe.analysis.kinds import Provenance, provenance
    from nb2pipe.analysis.origins import Origin

    imports = {"torch": "torch", "nn": "torch.nn"}
    known: dict[str, Provenance] = {}

    def bind(name: str, origin: Origin) -> Provenance:
        known[name] = provenance(origin, imports, known.get, lambda _: False)
        return known[name]

    assert bind("Net", Origin("class", path="Mixin,nn.Module")).makes == "Model"
    assert bind("Deeper", Origin("class", path="Net")).makes == "Model"
    assert bind("Plain", Origin("class", path="object")).makes is None
    assert bind("Criterion", Origin("class", path="nn.MSELoss")).makes is None
    assert bind("net", Origin("call", path="Deeper", attr="Deeper")).kind == "Model"
    assert bind("moved", Origin("call", path="Net.to", base="Net", attr="to", receiver_call="Net")).kind == "Model"
    assert bind("out", Origin("call", path="net", attr="net")).kind == "Dataset"
    assert bind("plain", Origin("call", path="Plain", attr="Plain")).kind == "Artifact"
    assert bind("Alias", Origin("alias", base="Net")).makes == "Model"
    assert bind("method", Origin("derived", base="Net")).makes is None
    params = bind("params", Origin("call", path="net.parameters", base="net", attr="parameters"))
    assert params.unserializable == "a generator"


@pytest.mark.parametrize(
    ("making", "what", "instead"),
    [
        ("loader = DataLoader(torch.utils.data.TensorDataset(torch.zeros(4)))", "a DataLoader", "its Dataset"),
        ("opt = torch.optim.Adam(nn.Linear(1, 1).parameters())", "an optimizer", "create the optimizer again"),
        ("sched = torch.optim.lr_scheduler.StepLR(None, 1)", "a learning-rate scheduler", "state_dict()"),
        ("stream = torch.cuda.Stream()", "a CUDA stream", "create it in the step"),
    ],
)
def test_handing_on_what_cannot_leave_its_step_fails_the_compile(making: str, what: str, instead: str):
    name = making.split(" =")[0]
    nb = notebook(code(IMPORTS, "imports"), code(making, "step:make"), code(f"print({name})", "step:use"))
    (diagnostic,) = diagnostics_of(nb)
    assert diagnostic.code == "unserializable-value"
    assert what in diagnostic.message and name in diagnostic.message
    assert instead in (diagnostic.hint or "") + diagnostic.message


# --- end to end ---

DIGITS_CELLS = [
    (
        "import torch\nfrom torch import nn\nfrom sklearn.datasets import load_digits\n"
        "from sklearn.model_selection import train_test_split",
        "imports",
    ),
    (
        "torch.manual_seed(0)\ntorch.set_num_threads(1)\n"
        "digits = load_digits()\n"
        "X_train, X_test, y_train, y_test = train_test_split(digits.data / 16.0, digits.target, random_state=0)\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layers = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))\n"
        "    def forward(self, x):\n"
        "        return self.layers(x)\n"
        "model = Net()\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=0.01)\n"
        "features = torch.tensor(X_train, dtype=torch.float32)\n"
        "labels = torch.tensor(y_train)\n"
        "for epoch in range(30):\n"
        "    optimizer.zero_grad()\n"
        "    loss = nn.functional.cross_entropy(model(features), labels)\n"
        "    loss.backward()\n"
        "    optimizer.step()\n"
        "test_features = torch.tensor(X_test, dtype=torch.float32)\n"
        "del optimizer, loss",
        "step:train",
    ),
    (
        "model.eval()\n"
        "with torch.no_grad():\n"
        "    predicted = model(test_features).argmax(dim=1)\n"
        "accuracy = float((predicted.numpy() == y_test).mean())\n"
        "print(f'accuracy={accuracy!r}')",
        "step:evaluate",
    ),
    ("accuracy", "metrics"),
]


@pytest.mark.slow
def test_a_module_trained_in_one_step_evaluates_in_the_next_as_in_one_process(tmp_path: Path):
    from nb2pipe.runners.local import run_notebook

    path = write_notebook(tmp_path, notebook(*(code(source, tag) for source, tag in DIGITS_CELLS)), "digits.ipynb")
    result = run_notebook(path, workdir=tmp_path / "work")
    assert result.status == "succeeded", result.failures

    script = "\n".join(source for source, tag in DIGITS_CELLS if tag != "metrics")
    alone = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    (expected,) = re.findall(r"accuracy=(\S+)", alone.stdout)
    assert 0.85 < float(expected) < 1.0
    printed = re.findall(r"accuracy=(\S+)", (result.run_dir / "evaluate" / "step.log").read_text())
    assert printed == [expected]
    assert result.metrics["accuracy"] == float(expected)
    assert sidecar_of(result.run_dir / "train" / "model")["format"] == "torch-module"
