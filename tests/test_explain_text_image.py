"""Explanations of texts and images (nb2pipe.monitoring.explain): AnchorText and AnchorImage,
Integrated Gradients through a Keras text model's Embedding layer and over a small CNN's
pixels. The models are tiny and trained once per module."""

from __future__ import annotations

from typing import Any

import numpy
import pytest

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.explain import build_explainer
from nb2pipe.monitoring.explain_report import explanation_html

pytestmark = pytest.mark.slow  # alibi and TensorFlow

SPORT = ["goal", "match", "team", "player", "score", "coach", "league", "ball", "stadium", "referee"]
COOKING = ["recipe", "oven", "flour", "sugar", "bake", "kitchen", "dinner", "salt", "butter", "soup"]
FILLER = ["the", "a", "today", "we", "saw", "really", "very", "new", "our"]


def sentences(count: int, seed: int) -> tuple[list[str], Any]:
    """Short sentences about sport (label 0) or cooking (label 1), with filler words."""
    rng = numpy.random.default_rng(seed)
    texts, labels = [], []
    for index in range(count):
        topic = index % 2
        words = rng.choice(COOKING if topic else SPORT, 3).tolist() + rng.choice(FILLER, 3).tolist()
        texts.append(" ".join(rng.permutation(words)))
        labels.append(topic)
    return texts, numpy.array(labels)


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], Any]:
    return sentences(400, seed=5)


@pytest.fixture(scope="module")
def text_model(texts: tuple[list[str], Any]) -> Any:
    """Strings -> TextVectorization -> Embedding -> average -> softmax (the supported shape)."""
    import keras
    import tensorflow

    keras.utils.set_random_seed(5)
    corpus, labels = texts
    vectorize = keras.layers.TextVectorization(max_tokens=100, output_sequence_length=10)
    vectorize.adapt(corpus)
    strings = keras.Input(shape=(1,), dtype="string")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(100, 8)(vectorize(strings)))
    model = keras.Model(strings, keras.layers.Dense(2, activation="softmax")(pooled))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(tensorflow.constant(corpus)[:, None], labels, epochs=30, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def digits() -> tuple[Any, Any]:
    from sklearn.datasets import load_digits

    loaded = load_digits()
    return (loaded.images / 16.0).astype("float32")[..., None], loaded.target


@pytest.fixture(scope="module")
def cnn(digits: tuple[Any, Any]) -> Any:
    import keras

    keras.utils.set_random_seed(7)
    images, labels = digits
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images, labels, epochs=5, batch_size=64, verbose=0)
    return model


def test_anchor_text_finds_words_that_keep_the_prediction(texts: tuple[list[str], Any], text_model: Any) -> None:
    import tensorflow

    corpus, _ = texts
    rows = corpus[:3]
    explanation = build_explainer("anchor", text_model, corpus).explain(rows)
    assert (explanation.method, explanation.modality) == ("anchor", "text")
    predicted = numpy.asarray(text_model(tensorflow.constant(rows)[:, None])).argmax(axis=1)
    for text, record, label in zip(rows, explanation.rows, predicted, strict=True):
        assert record.prediction == label
        assert record.anchor and record.precision >= 0.95
        for word, position in zip(record.anchor, record.positions, strict=True):
            assert text[position : position + len(word)] == word
    page = explanation_html(explanation, rows, title="topics")
    assert page.count('class="anchor-word"') >= sum(len(r.anchor) for r in explanation.rows)
    assert all("<svg" in section for section in page.split('<section class="row">')[1:])


def test_anchor_text_explains_a_scikit_learn_text_pipeline(texts: tuple[list[str], Any]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    corpus, labels = texts
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(corpus, labels)
    record = build_explainer("anchor", model, corpus).explain(corpus[1]).rows[0]
    assert record.prediction == model.predict([corpus[1]])[0] == 1
    assert record.precision >= 0.95 and set(record.anchor) <= set(corpus[1].split())


def test_integrated_gradients_per_token_add_up(texts: tuple[list[str], Any], text_model: Any) -> None:
    import keras
    import tensorflow

    corpus, _ = texts
    rows = corpus[:4]
    explanation = build_explainer("ig", text_model, corpus).explain(rows)
    scores = numpy.asarray(text_model(tensorflow.constant(rows)[:, None]))
    empty = numpy.asarray(text_model(tensorflow.constant([""])[:, None]))[0]  # the baseline: only padding
    for text, record, score in zip(rows, explanation.rows, scores, strict=True):
        target = int(score.argmax())
        assert record.target == target
        assert record.tokens == tuple(text.split())
        assert record.attributions.shape == (len(record.tokens),)
        assert record.baseline_prediction == pytest.approx(float(empty[target]), abs=1e-5)
        difference = score[target] - empty[target]
        assert abs(record.attributions.sum() - difference) <= 0.05 * abs(difference)
        topical = [a for token, a in zip(record.tokens, record.attributions, strict=True) if token in SPORT + COOKING]
        assert max(topical) == max(record.attributions), "a topic word carries the most weight"
    assert explanation.metrics()["ig_completeness_error"] <= 0.05

    # the same layers stacked as a Sequential model are cut the same way
    stacked = keras.Sequential([keras.Input(shape=(1,), dtype="string"), *text_model.layers[1:]])
    again = build_explainer("ig", stacked, corpus).explain(rows[:1]).rows[0]
    assert numpy.allclose(again.attributions, explanation.rows[0].attributions, atol=1e-5)
    page = explanation_html(explanation, rows, title="tokens")
    assert page.count("<svg") == len(rows) and "rgba(" in page


def test_integrated_gradients_over_the_pixels_of_a_cnn(digits: tuple[Any, Any], cnn: Any) -> None:
    images, _ = digits
    rows = images[:3]
    explanation = build_explainer("ig", cnn, images).explain(rows)
    scores = numpy.asarray(cnn(rows))
    black = numpy.asarray(cnn(numpy.zeros((1, 8, 8, 1), "float32")))[0]
    for record, score in zip(explanation.rows, scores, strict=True):
        target = int(score.argmax())
        assert record.prediction == record.target == target
        assert record.attributions.shape == (8, 8, 1)
        difference = score[target] - black[target]
        assert abs(record.attributions.sum() - difference) <= 0.05 * abs(difference)
    assert explanation.metrics()["ig_completeness_error"] <= 0.05
    page = explanation_html(explanation, rows, title="digits")
    assert all(section.count("<img") == 2 for section in page.split('<section class="row">')[1:])


def test_anchor_image_keeps_the_digit_with_a_few_patches(digits: tuple[Any, Any], cnn: Any) -> None:
    images, _ = digits
    rows = images[:3]
    explanation = build_explainer("anchor", cnn, images).explain(rows)
    predicted = numpy.asarray(cnn(rows)).argmax(axis=1)
    for record, label in zip(explanation.rows, predicted, strict=True):
        assert record.prediction == label
        assert record.precision >= 0.95
        assert record.segments.shape == (8, 8) and len(numpy.unique(record.segments)) == 16  # 2x2 patches
        assert record.anchor and set(record.anchor) <= set(numpy.unique(record.segments).tolist())
    assert len(explanation.to_json()["explanations"][0]["segments"]) == 8
    page = explanation_html(explanation, rows, title="digits")
    assert page.count('src="data:image/png;base64,') == 2 * len(rows)


def test_images_without_a_channel_axis_reach_the_model_as_they_were(digits: tuple[Any, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    images, labels = digits
    flat = images.reshape(len(images), -1)
    model = LogisticRegression(max_iter=500).fit(flat, labels)

    class Flattening:
        """A model that takes 8x8 images (N,8,8) and flattens them itself."""

        def predict(self, batch: Any) -> Any:
            assert batch.shape[1:] == (8, 8)
            return model.predict(batch.reshape(len(batch), -1))

    record = build_explainer("anchor", Flattening(), images[..., 0]).explain(images[:1, ..., 0]).rows[0]
    assert record.prediction == model.predict(flat[:1])[0] and record.precision >= 0.95


def test_integrated_gradients_needs_a_vectorizing_text_model(texts: tuple[list[str], Any], cnn: Any) -> None:
    corpus, _ = texts
    with pytest.raises(Nb2PipeError, match="TextVectorization"):
        build_explainer("ig", cnn, corpus)
