"""Integrated Gradients (Captum) for a PyTorch module's channels-first images (N,C,H,W) and for
token ids that go into an nn.Embedding / nn.EmbeddingBag (issue 22, item 5)."""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy
import pytest
import torch
from sklearn.datasets import load_digits

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.explain import IGRow, build_explainer
from nb2pipe.monitoring.explain_ig_torch import TorchPredictor, pool
from nb2pipe.monitoring.explain_inputs import input_form, predictor_for
from nb2pipe.monitoring.explain_report import attribution_map, explanation_html
from nb2pipe.monitoring.explain_torch_inputs import torch_input_form
from tests.support.torch_training import fitted
from tests.test_torch_explain import MAX_GAP

#: sequences of token ids: the class is whether the token SIGNAL appears; 0 pads
VOCABULARY, LENGTH, SIGNAL = 20, 12, 7


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """These tensors are tiny: torch's thread hand-offs would cost more than the work (50x on 2 busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scores_of(model: torch.nn.Module, rows: numpy.ndarray) -> numpy.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(rows)).numpy()


@dataclass(frozen=True)
class Digits:
    model: torch.nn.Module
    train: numpy.ndarray  # N,1,8,8 in [0, 1]
    test: numpy.ndarray


@pytest.fixture(scope="module")
def digits() -> Digits:
    data = load_digits()
    images = (data.images / 16.0).astype(numpy.float32)[:, numpy.newaxis]
    torch.manual_seed(5)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 10),
    )
    fitted(model, torch.tensor(images[:1200]), torch.tensor(data.target[:1200]), epochs=30, rate=0.03)
    return Digits(model, images[:1200], images[1200:])


def test_a_cnn_on_channels_first_digits_is_explained_per_pixel(digits: Digits) -> None:
    rows = digits.test[:12]
    explanation = build_explainer("ig", digits.model, digits.train).explain(rows)
    scores = scores_of(digits.model, rows)
    at_black = scores_of(digits.model, numpy.zeros((1, 1, 8, 8), numpy.float32))[0]
    assert explanation.modality == "image" and explanation.channels_first
    assert (scores.argmax(axis=1) == load_digits().target[1200:1212]).mean() >= 0.75  # the CNN learnt digits
    for index, record in enumerate(explanation.rows):
        target = int(scores[index].argmax())
        assert isinstance(record, IGRow) and record.target == target
        assert record.attributions.shape == (1, 8, 8)  # as the row came
        assert record.baseline_prediction == pytest.approx(float(at_black[target]), abs=1e-4)
        difference = float(scores[index, target] - at_black[target])
        assert record.completeness_gap <= MAX_GAP
        assert abs(record.attributions.sum() - difference) <= MAX_GAP * max(abs(difference), 0.01)
        heat = attribution_map(record.attributions, channels_first=True)
        assert heat.shape == (8, 8)
        # the strongest pixels lie on the digit's ink more often than pixels drawn at random would
        ink = rows[index, 0] > 0
        strongest = numpy.argsort(-numpy.abs(heat).ravel())[:8]
        assert ink.ravel()[strongest].mean() > ink.mean()
    encoded = json.loads(json.dumps(explanation.to_json()))
    assert encoded["layout"] == "channels_first"
    assert numpy.asarray(encoded["explanations"][0]["attributions"]).shape == (1, 8, 8)


def test_channels_first_attributions_keep_each_channel_in_place() -> None:
    # a linear module on zero baselines: IG is exactly weight * input, per channel and pixel
    torch.manual_seed(1)
    layer = torch.nn.Linear(3 * 6 * 7, 4)
    linear = torch.nn.Sequential(torch.nn.Flatten(), layer)
    images = numpy.random.default_rng(2).uniform(size=(30, 3, 6, 7)).astype(numpy.float32)
    explanation = build_explainer("ig", linear, images).explain(images[:3])
    weights = layer.weight.detach().numpy()
    for index, record in enumerate(explanation.rows):
        expected = weights[record.target].reshape(3, 6, 7) * images[index]
        assert record.attributions == pytest.approx(expected, abs=1e-5)
        assert attribution_map(record.attributions, channels_first=True) == pytest.approx(
            expected.sum(axis=0), abs=1e-5
        )
    # a module's N,H,W,C images (last axis <= 4 channels, second axis > 4) stay channels last
    last = torch_input_form(images.transpose(0, 2, 3, 1), linear)
    assert last.modality == "image" and not last.channels_first and last.row_shape == (6, 7, 3)
    # any other model's N,C,H,W data is refused: its channels are read last
    with pytest.raises(Nb2PipeError, match="channels last; N,C,H,W for a PyTorch module"):
        input_form(images)


def test_the_report_draws_channels_first_images_and_heat_maps_at_h_by_w(digits: Digits) -> None:
    rows = torch.as_tensor(digits.test[:2])  # a tensor, as a step hands it on
    explanation = build_explainer("ig", digits.model, torch.as_tensor(digits.train)).explain(rows)
    page = explanation_html(explanation, rows, title="digits")
    pictures = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pictures) == 4  # the image and its heat map, per row
    for picture in pictures:
        width, height = struct.unpack(">II", base64.b64decode(picture)[16:24])
        assert width == height and width % 8 == 0 and width >= 8 * 20  # 8x8, enlarged by whole pixels


def test_anchor_takes_channels_first_images_through_the_module(digits: Digits) -> None:
    form = torch_input_form(digits.train, digits.model)
    assert form.image_shape == (8, 8, 1) and form.data.shape == (1200, 8, 8, 1)
    predict = predictor_for(TorchPredictor(digits.model, form), form)
    batch = form.alibi_rows(digits.test[:20])  # AnchorImage's H,W,C
    assert list(predict(batch)) == list(scores_of(digits.model, digits.test[:20]).argmax(axis=1))


@pytest.mark.slow
def test_an_anchor_report_on_channels_first_images_draws_them(digits: Digits) -> None:
    rows = digits.test[:1]
    explanation = build_explainer("anchor", digits.model, digits.train).explain(rows)
    assert explanation.channels_first
    page = explanation_html(explanation, rows, title="digits")
    assert re.findall(r'src="data:image/png;base64,([^"]+)"', page)


def token_rows(count: int, seed: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Sequences of 6..12 ids from 1..19 padded with 0; half hold SIGNAL once or twice."""
    generator = numpy.random.default_rng(seed)
    ids = generator.integers(1, VOCABULARY, size=(count, LENGTH))
    ids[ids == SIGNAL] = SIGNAL + 1
    lengths = generator.integers(6, LENGTH + 1, size=count)
    for index in numpy.nonzero(generator.random(count) < 0.5)[0]:
        ids[index, generator.integers(0, lengths[index], size=generator.integers(1, 3))] = SIGNAL
    ids[numpy.arange(LENGTH)[None, :] >= lengths[:, None]] = 0
    return ids, (ids == SIGNAL).any(axis=1).astype(numpy.int64)


@pytest.fixture(scope="module")
def bag_classifier() -> torch.nn.Module:
    ids, labels = token_rows(1500, seed=0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.EmbeddingBag(VOCABULARY, 8, mode="mean", padding_idx=0), torch.nn.Linear(8, 2))
    fitted(model, torch.tensor(ids), torch.tensor(labels), epochs=100, rate=0.05)
    return model


def test_the_positions_holding_the_deciding_token_get_the_largest_attribution(bag_classifier: torch.nn.Module) -> None:
    reference, _ = token_rows(1500, seed=0)
    rows, labels = token_rows(60, seed=1)
    explanation = build_explainer("ig", bag_classifier, reference).explain(rows)
    scores = scores_of(bag_classifier, rows)
    at_padding = scores_of(bag_classifier, numpy.zeros((1, LENGTH), numpy.int64))[0]
    assert (scores.argmax(axis=1) == labels).mean() >= 0.95
    assert explanation.modality == "tabular" and explanation.feature_names == tuple(f"token {i}" for i in range(12))
    top_is_signal = []
    for index, record in enumerate(explanation.rows):
        target = int(scores[index].argmax())
        assert record.target == target and record.attributions.shape == (LENGTH,)
        assert record.baseline_prediction == pytest.approx(float(at_padding[target]), abs=1e-5)
        assert record.completeness_gap <= MAX_GAP
        assert numpy.all(record.attributions[rows[index] == 0] == 0)  # padding, as at the baseline
        if labels[index]:
            top_is_signal.append(rows[index, int(numpy.argmax(record.attributions))] == SIGNAL)
    assert len(top_is_signal) >= 20 and numpy.mean(top_is_signal) >= 0.8
    encoded = json.loads(json.dumps(explanation.to_json()))
    assert len(encoded["explanations"][0]["attributions"]) == LENGTH and "layout" not in encoded
    # Anchor's predict hands the module ids, not floats
    form = torch_input_form(reference, bag_classifier)
    assert form.token_ids and list(TorchPredictor(bag_classifier, form).predict(rows.astype(float))) == list(
        scores.argmax(axis=1)
    )


class TokenMean(torch.nn.Module):
    """Not a Sequential: an nn.Embedding without padding_idx (baseline: id 0), averaged, then a score."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = torch.nn.Embedding(VOCABULARY, 4)
        self.score = torch.nn.Linear(4, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.score(torch.tanh(self.tokens(ids)).mean(dim=1))


def test_an_embedding_inside_a_module_is_found_by_what_it_is_handed() -> None:
    torch.manual_seed(4)
    model = TokenMean()
    ids, _ = token_rows(200, seed=3)
    explanation = build_explainer("ig", model, ids).explain(ids[:10])
    at_zero = scores_of(model, numpy.zeros((1, LENGTH), numpy.int64))[0, 0]
    for index, record in enumerate(explanation.rows):
        assert record.target is None and record.baseline_prediction == pytest.approx(float(at_zero), abs=1e-6)
        assert record.input_prediction == pytest.approx(float(scores_of(model, ids[index : index + 1])[0, 0]), abs=1e-6)
        assert record.completeness_gap <= MAX_GAP and record.attributions.shape == (LENGTH,)
        assert numpy.abs(record.attributions).max() > 0


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_pooling_token_vectors_gives_what_the_bag_gives(mode: str) -> None:
    torch.manual_seed(6)
    bag = torch.nn.EmbeddingBag(VOCABULARY, 5, mode=mode, padding_idx=0)
    ids, _ = token_rows(40, seed=4)
    ids[0] = 0  # an empty bag
    tokens = torch.as_tensor(ids)
    vectors = torch.nn.functional.embedding(tokens, bag.weight)
    with torch.no_grad():
        assert torch.allclose(pool(vectors, tokens, mode, 0), bag(tokens), atol=1e-6)


class Shifted(torch.nn.Module):
    """Its embedding is handed the ids changed, not the module's input."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = torch.nn.EmbeddingBag(VOCABULARY, 4)
        self.score = torch.nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.score(self.tokens((ids + 1) % VOCABULARY))


def test_token_refusals_say_what_to_do_instead(bag_classifier: torch.nn.Module) -> None:
    ids, _ = token_rows(100, seed=5)
    with pytest.raises(Nb2PipeError, match=r"not handed its input as it is .* explain:anchor"):
        build_explainer("ig", Shifted(), ids)
    explainer = build_explainer("ig", bag_classifier, ids)
    with pytest.raises(Nb2PipeError, match="token id 25; the embedding knows 20 ids"):
        explainer.explain(numpy.full((1, LENGTH), 25))
    with pytest.raises(Nb2PipeError, match="whole numbers"):
        explainer.explain(numpy.full((1, LENGTH), 1.5))
    # integer data into a module without an embedding is a table of numbers, integrated as such
    counts = torch.nn.Sequential(torch.nn.Linear(LENGTH, 2))
    form = torch_input_form(ids, counts)
    assert not form.token_ids and form.feature_names[0] == "f0"
    assert build_explainer("ig", counts, ids).explain(ids[:3]).metrics()["ig_completeness_error"] <= MAX_GAP
