"""Integrated Gradients for PyTorch modules through Captum, and Anchor on a module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import pandas
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.explain import IGRow, build_explainer
from nb2pipe.monitoring.explain_ig_torch import as_tensor

#: the per-row completeness gap the explainer must keep to (the issue's bar)
MAX_GAP = 0.01
ROOT = Path(__file__).resolve().parents[1]


class CancerNet(torch.nn.Module):
    """Standardizes inside (IG's baselines are raw column means), then a small MLP."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor, outputs: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)
        self.hidden = torch.nn.Linear(len(mean), 16)
        self.dropout = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(16, outputs)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(torch.relu(self.hidden((rows - self.mean) / self.scale))))


@dataclass(frozen=True)
class Cancer:
    model: CancerNet
    train: pandas.DataFrame
    test: pandas.DataFrame
    train_labels: pandas.Series


def train_cancer(outputs: int = 2, dropout: float = 0.0, epochs: int = 150) -> Cancer:
    data = load_breast_cancer(as_frame=True)
    train, test, train_labels, _ = train_test_split(data.data, data.target, train_size=0.75, random_state=7)
    features = torch.tensor(train.to_numpy(), dtype=torch.float32)
    labels = torch.tensor(train_labels.to_numpy())
    torch.manual_seed(7)
    model = CancerNet(features.mean(0), features.std(0), outputs, dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        optimizer.zero_grad()
        scores = model(features)
        if outputs == 1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(scores[:, 0], labels.float())
        else:
            loss = torch.nn.functional.cross_entropy(scores, labels)
        loss.backward()
        optimizer.step()
    return Cancer(model.eval(), train, test, train_labels)


@pytest.fixture(scope="module")
def cancer() -> Cancer:
    return train_cancer()


def module_scores(model: torch.nn.Module, rows: Any) -> numpy.ndarray:
    with torch.no_grad():
        return model(torch.tensor(numpy.asarray(rows, dtype=numpy.float32))).numpy()


def test_attributions_add_up_to_the_score_difference_for_each_row(cancer: Cancer) -> None:
    rows = cancer.test.iloc[:8]
    explanation = build_explainer("ig", cancer.model, cancer.train).explain(rows)
    scores = module_scores(cancer.model, rows)
    at_baseline = module_scores(cancer.model, cancer.train.to_numpy().mean(axis=0, keepdims=True))[0]
    assert explanation.method == "ig" and explanation.modality == "tabular"
    assert explanation.feature_names == tuple(cancer.train.columns)
    assert len(explanation.rows) == 8
    for index, record in enumerate(explanation.rows):
        target = int(scores[index].argmax())
        assert isinstance(record, IGRow) and record.target == target == record.prediction
        assert record.attributions.shape == (cancer.train.shape[1],)
        assert record.input_prediction == pytest.approx(float(scores[index, target]), abs=1e-4)
        assert record.baseline_prediction == pytest.approx(float(at_baseline[target]), abs=1e-4)
        difference = float(scores[index, target] - at_baseline[target])
        assert abs(difference) > 0.05
        assert abs(record.attributions.sum() - difference) <= MAX_GAP * abs(difference)
        assert record.completeness_gap <= MAX_GAP
    assert explanation.metrics()["ig_completeness_error"] <= MAX_GAP
    encoded = json.loads(json.dumps(explanation.to_json()))
    assert len(encoded["explanations"][0]["attributions"]) == cancer.train.shape[1]
    # a row alone (as a server explains it) gets the figures it got in the batch
    (alone,) = build_explainer("ig", cancer.model, cancer.train).explain(rows.iloc[[3]]).rows
    assert alone.target == explanation.rows[3].target
    assert alone.attributions == pytest.approx(explanation.rows[3].attributions, rel=1e-4, abs=1e-6)


def test_a_feature_the_module_ignores_gets_no_attribution(cancer: Cancer) -> None:
    blind = train_cancer()
    ignored = list(cancer.train.columns).index("worst texture")
    with torch.no_grad():
        blind.model.hidden.weight[:, ignored] = 0.0
    rows = cancer.test.iloc[:5]
    seen = build_explainer("ig", cancer.model, cancer.train).explain(rows)
    unseen = build_explainer("ig", blind.model, cancer.train).explain(rows)
    for record in unseen.rows:
        assert abs(float(record.attributions[ignored])) < 1e-7
        assert record.completeness_gap <= MAX_GAP
        assert numpy.abs(record.attributions).max() > 0.01
    # the untouched model does use it: the zero above is the weights', not the method's
    assert max(abs(float(r.attributions[ignored])) for r in seen.rows) > 0.01


def test_one_output_modules_have_no_target_and_dropout_is_off_while_explaining() -> None:
    binary = train_cancer(outputs=1, dropout=0.5)
    binary.model.train()  # as a training step hands it on
    explainer = build_explainer("ig", binary.model, binary.train.to_numpy())
    rows = binary.test.to_numpy()[:4]
    first, again = explainer.explain(rows), explainer.explain(rows)
    assert binary.model.training  # the mode it came in
    binary.model.eval()
    scores = module_scores(binary.model, rows)[:, 0]
    for index, (record, repeated) in enumerate(zip(first.rows, again.rows, strict=True)):
        assert record.target is None and record.prediction == pytest.approx(float(scores[index]), abs=1e-4)
        assert record.completeness_gap <= MAX_GAP
        assert record.attributions == pytest.approx(repeated.attributions, abs=1e-9)
    assert first.feature_names == tuple(f"f{i}" for i in range(binary.train.shape[1]))


class DigitsNet(torch.nn.Module):
    """Takes N,8,8 images as scikit-learn's digits come; batch norm, whose running figures explaining must not move."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(4)
        self.out = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.norm(self.conv(images.unsqueeze(1) / 16.0))).flatten(1))


def test_images_are_attributed_per_pixel_against_a_black_image() -> None:
    digits = load_digits()
    images = digits.images.astype(numpy.float32)
    torch.manual_seed(3)
    model = DigitsNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs, labels = torch.tensor(images[:1200]), torch.tensor(digits.target[:1200])
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    rows = images[1200:1204]
    assert model.norm.running_mean is not None
    running_mean = model.norm.running_mean.clone()
    explanation = build_explainer("ig", model, images[:1200]).explain(rows)
    assert model.training  # handed on in training mode, given back so
    assert torch.equal(running_mean, model.norm.running_mean)  # explaining is no training
    model.eval()
    scores = module_scores(model, rows)
    at_black = module_scores(model, numpy.zeros((1, 8, 8)))[0]
    assert explanation.modality == "image"
    for index, record in enumerate(explanation.rows):
        target = int(scores[index].argmax())
        assert record.target == target and record.attributions.shape == (8, 8)
        assert record.baseline_prediction == pytest.approx(float(at_black[target]), abs=1e-4)
        assert record.completeness_gap <= MAX_GAP
        # black pixels are black at the baseline too: nothing to attribute
        assert numpy.all(record.attributions[rows[index] == 0] == 0)


@pytest.mark.slow  # TensorFlow and alibi
def test_the_keras_path_gives_the_same_explanation_for_the_same_function(cancer: Cancer) -> None:
    import keras

    torch_model = cancer.model
    features = cancer.train.shape[1]
    keras_model = keras.Sequential(
        [
            keras.Input(shape=(features,)),
            keras.layers.Normalization(mean=torch_model.mean.numpy(), variance=torch_model.scale.numpy() ** 2),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    keras_model.layers[1].set_weights(
        [torch_model.hidden.weight.detach().numpy().T, torch_model.hidden.bias.detach().numpy()]
    )
    keras_model.layers[2].set_weights(
        [torch_model.out.weight.detach().numpy().T, torch_model.out.bias.detach().numpy()]
    )
    rows = cancer.test.iloc[:4]
    assert numpy.asarray(keras_model(rows.to_numpy(dtype="float32"))) == pytest.approx(
        module_scores(torch_model, rows), abs=1e-4
    )
    through_captum = build_explainer("ig", torch_model, cancer.train).explain(rows).to_json()
    through_alibi = build_explainer("ig", keras_model, cancer.train).explain(rows).to_json()
    assert through_captum.keys() == through_alibi.keys()
    assert through_captum["feature_names"] == through_alibi["feature_names"]
    for mine, theirs in zip(through_captum["explanations"], through_alibi["explanations"], strict=True):
        assert mine.keys() == theirs.keys()
        assert mine["target"] == theirs["target"] and mine["prediction"] == theirs["prediction"]
        assert mine["input_prediction"] == pytest.approx(theirs["input_prediction"], abs=1e-4)
        assert mine["baseline_prediction"] == pytest.approx(theirs["baseline_prediction"], abs=1e-4)
        assert numpy.asarray(mine["attributions"]) == pytest.approx(numpy.asarray(theirs["attributions"]), abs=2e-3)


@pytest.mark.slow  # alibi
def test_anchor_explains_a_module_through_its_predicted_classes(cancer: Cancer) -> None:
    rows = cancer.test.iloc[:1]
    (record,) = build_explainer("anchor", cancer.model, cancer.train).explain(rows).rows
    assert record.prediction == int(module_scores(cancer.model, rows)[0].argmax())
    assert record.precision >= 0.95 and record.anchor


def test_refusals_say_what_to_do_instead(cancer: Cancer) -> None:
    from sklearn.tree import DecisionTreeClassifier

    estimator = DecisionTreeClassifier(max_depth=2).fit(cancer.train, cancer.train_labels)
    with pytest.raises(Nb2PipeError, match="needs a Keras model or a PyTorch module; use explain:anchor"):
        build_explainer("ig", estimator, cancer.train)
    with pytest.raises(Nb2PipeError, match=r"tables and images .* explain:anchor"):
        build_explainer("ig", cancer.model, ["a text", "another text"])
    categorical = cancer.train.assign(size=numpy.where(cancer.train["mean radius"] > 14, "big", "small"))
    with pytest.raises(Nb2PipeError, match="the columns size are categorical"):
        build_explainer("ig", cancer.model, categorical)
    with pytest.raises(Nb2PipeError, match="does not take the data it is explained on"):
        build_explainer("ig", cancer.model, cancer.train.iloc[:, :5])


def test_batches_take_the_module_dtype_and_device() -> None:
    wide = torch.nn.Linear(3, 2).double()
    tensor = as_tensor(wide, pandas.DataFrame({"a": [1], "b": [2], "c": [3]}))
    assert tensor.dtype == torch.float64 and tensor.device == next(wide.parameters()).device
    assert as_tensor(torch.nn.ReLU(), [[1, 2]]).dtype == torch.float32  # no parameters: float32 on the CPU


@pytest.mark.slow  # MLflow
def test_a_saved_module_loads_on_the_gpu_when_there_is_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pytorch

    from nb2pipe.store.registry import load_explainable, resolve_model

    mlflow.pytorch.save_model(torch.nn.Linear(3, 2), str(tmp_path / "model"), serialization_format="pickle")
    source = resolve_model(str(tmp_path / "model"))
    loaded = load_explainable(source)
    assert isinstance(loaded, torch.nn.Linear) and loaded.weight.device.type == "cpu"
    asked: list[Any] = []

    def load_model(path: str, **options: Any) -> str:
        asked.append(options)
        return "module"

    monkeypatch.setattr(mlflow.pytorch, "load_model", load_model)
    for gpu in (True, False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda gpu=gpu: gpu)
        assert load_explainable(source) == "module"
    assert asked == [{"map_location": "cuda"}, {"map_location": "cpu"}]


@pytest.mark.slow  # MLflow, in two processes
def test_a_module_whose_class_is_not_importable_is_a_clear_error(tmp_path: Path) -> None:
    from nb2pipe.store.registry import RegistryError, load_explainable, resolve_model

    (tmp_path / "gone_layers.py").write_text("import torch\nclass Gone(torch.nn.Linear):\n    pass\n", encoding="utf-8")
    script = (
        "import sys, mlflow.pytorch, gone_layers\n"
        "mlflow.pytorch.save_model(gone_layers.Gone(3, 2), sys.argv[1], serialization_format='pickle')\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    saved = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "model")], capture_output=True, text=True, env=environment
    )
    assert saved.returncode == 0, saved.stderr
    with pytest.raises(RegistryError, match=r"cannot load the PyTorch model .* No module named 'gone_layers'"):
        load_explainable(resolve_model(str(tmp_path / "model")))


@pytest.mark.slow  # an MLflow registration
def test_nb2pipe_explain_gives_attributions_of_a_registered_module(
    cancer: Cancer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nb2pipe.cli import main
    from nb2pipe.lifecycle.register import Registration, register_model
    from nb2pipe.store.registry import TRACKING_ENV, load_explainable, resolve_model

    monkeypatch.setenv(TRACKING_ENV, f"sqlite:///{tmp_path / 'mlflow.db'}")  # restored afterwards
    registered = register_model(cancer.model, cancer.train, Registration("cancer-net", "tests"), store=tmp_path)
    assert isinstance(load_explainable(resolve_model(registered.uri, tmp_path)), torch.nn.Module)
    argv = ["explain", registered.uri, "--method", "ig", "--rows", "3", "--json", "--workdir", str(tmp_path)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    rows = cancer.train.iloc[:3]  # the training data kept with the version: its first rows
    scores = module_scores(cancer.model, rows)
    assert printed["method"] == "ig" and printed["feature_names"] == list(cancer.train.columns)
    for index, record in enumerate(printed["explanations"]):
        assert record["target"] == int(scores[index].argmax())
        assert len(record["attributions"]) == cancer.train.shape[1]
        assert record["completeness_gap"] <= MAX_GAP
    assert printed["metrics"]["ig_rows"] == 3.0

    # nb2pipe serve --explainer ig: the server's explainer takes the module it serves
    from nb2pipe.lifecycle.explainer import ServedExplainer
    from nb2pipe.lifecycle.predictor import Predictor
    from nb2pipe.lifecycle.torch_model import load_for_serving
    from nb2pipe.monitoring.explain import build_explainer
    from nb2pipe.store.registry import input_columns

    source = resolve_model(registered.uri, tmp_path)
    served = load_for_serving(source)
    server_side = ServedExplainer.build("ig", source, served, None, build_explainer)
    answer = server_side.explain(Predictor.build(served, *input_columns(source)), rows.values.tolist())
    assert [record["target"] for record in answer["explanations"]] == [int(row.argmax()) for row in scores]
    assert all(record["completeness_gap"] <= MAX_GAP for record in answer["explanations"])


def test_integrated_gradients_on_a_module_load_neither_alibi_nor_tensorflow() -> None:
    script = textwrap.dedent(
        """
        import sys, numpy, torch
        from nb2pipe.monitoring.explain import build_explainer
        data = numpy.random.default_rng(0).normal(size=(50, 4))
        explanation = build_explainer("ig", torch.nn.Sequential(torch.nn.Linear(4, 3)), data).explain(data[:2])
        assert explanation.metrics()["ig_completeness_error"] <= 0.01
        print(sorted({name.split(".")[0] for name in sys.modules} & {"alibi", "tensorflow", "keras", "captum"}))
        """
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=False)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().splitlines()[-1] == "['captum']"


@pytest.mark.slow  # alibi and TensorFlow, in a fresh process
def test_anchor_in_a_fresh_process_survives_torch_beside_tensorflow() -> None:
    # TensorFlow >= 2.20 then triton (which transformers loads through torch) crashes the process
    script = textwrap.dedent(
        """
        from sklearn.datasets import load_breast_cancer
        from sklearn.tree import DecisionTreeClassifier
        from nb2pipe.monitoring.explain import build_explainer
        features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
        model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, labels)
        (record,) = build_explainer("anchor", model, features).explain(features.iloc[:1]).rows
        print(record.prediction == model.predict(features.iloc[:1])[0])
        """
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=False)
    assert found.returncode == 0, found.stderr[-2000:]
    assert found.stdout.strip().splitlines()[-1] == "True"
