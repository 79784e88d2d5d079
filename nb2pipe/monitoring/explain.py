"""Explain a model's predictions: Anchor rules (alibi; any model with ``predict``, and PyTorch
modules) or Integrated Gradients attributions (Keras models through alibi, PyTorch modules
through Captum: :mod:`nb2pipe.monitoring.explain_ig_torch`), for tables, texts and images.

    explainer = build_explainer("anchor", model, training_data)   # fitted once (seconds)
    explanation = explainer.explain(rows)                        # fast after that
    explanation.metrics(), explanation.to_json()

The kind of input is decided from the reference data's type, shape and dtype: a DataFrame or
2-D numeric array is a table (categorical columns by dtype: object, string, bool, category);
a list, Series, one-column DataFrame or 1-D array of strings is text; a numeric array of
ndim 3 or 4 (N,H,W or N,H,W,C, channels last) is images, N,C,H,W (C <= 4) when the model is a
PyTorch module; a PyTorch module's 2-D integer data that goes straight into its first
``nn.Embedding``/``nn.EmbeddingBag`` is token ids (features ``token 0..L-1``; see
:mod:`nb2pipe.monitoring.explain_torch_inputs`). The model may be a scikit-learn
estimator or pipeline (labels from ``predict``), a Keras model (probabilities -> argmax; one
sigmoid output -> above 0.5), a PyTorch module (outputs -> argmax) or an MLflow pyfunc model
(takes a DataFrame).

Text models: the supported shape (example notebooks follow it)
---------------------------------------------------------------
A Keras text model takes raw strings: its input (``keras.Input(shape=(1,), dtype="string")``,
or shape ``()``) feeds one ``keras.layers.TextVectorization`` layer, whose token ids feed an
``Embedding`` layer and then any layers; functional or Sequential::

    vectorize = keras.layers.TextVectorization(max_tokens=2000, output_sequence_length=20)
    vectorize.adapt(texts)
    model = keras.Sequential([keras.Input(shape=(1,), dtype="string"), vectorize,
                              keras.layers.Embedding(2000, 16), keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(2, activation="softmax")])
    model.fit(tf.constant(texts)[:, None], labels)   # Keras 3 takes strings as tensors, not numpy

Anchor (AnchorText, UNK sampling, ``spacy.blank("en")`` as tokenizer) calls the whole model on
perturbed strings. Integrated Gradients splits the model, finding the layers by type, into the
vectorizer and the rest (Keras 3 cuts a functional graph at the vectorizer's output; a
Sequential's later layers are stacked again), and attributes the target score to the Embedding
layer's output, summed over the embedding dimension: one number per token, padding dropped.
Why this shape: one saved model answers ``:predict`` with raw text and serves both methods,
Anchor needing strings in and IG needing a differentiable path from token embeddings on.
A scikit-learn text pipeline (e.g. TfidfVectorizer + LogisticRegression) works with Anchor.
A Keras model that takes token ids (2-D integer data) with an Embedding layer first is
explained by IG per position the same way, but Anchor then sees ids, not words.

Integrated Gradients: gradients w.r.t. the input for tables and images (w.r.t. the Embedding
output for token models); the target is the predicted class for a model with several outputs,
none for one output. Baselines: the reference's column means for tables (attributions say why
this row's score differs from an average row's), zeros for images (black) and token ids
(padding: the empty text). The completeness gap of a row is
``|sum(attributions) - (f(x) - f(baseline))| / max(|f(x) - f(baseline)|, 0.01)``.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import EXPLAIN_METHODS
from nb2pipe.monitoring.explain_inputs import input_form
from nb2pipe.store.data import first_rows, load_data

#: a gap smaller than this share of the score range counts against this floor, not against ~0
GAP_FLOOR = 0.01


@dataclass(frozen=True)
class Condition:
    """One condition of a tabular anchor: ``low < feature <= high`` or ``feature = equals``."""

    feature: str
    low: float | None = None
    high: float | None = None
    equals: Any = None

    def holds(self, value: Any) -> bool:
        if self.low is None and self.high is None:
            return bool(value == self.equals)
        number = float(value)
        return (self.low is None or number > self.low) and (self.high is None or number <= self.high)

    def text(self) -> str:
        if self.low is None and self.high is None:
            return f"{self.feature} = {self.equals}"
        if self.low is None:
            return f"{self.feature} <= {self.high:.4g}"
        if self.high is None:
            return f"{self.feature} > {self.low:.4g}"
        return f"{self.low:.4g} < {self.feature} <= {self.high:.4g}"

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"feature": self.feature}
        if self.low is None and self.high is None:
            found["equals"] = _plain(self.equals)
        else:
            found.update(low=self.low, high=self.high)
        return found


@dataclass(frozen=True, eq=False)
class AnchorRow:
    """An anchor: while it holds, the model predicts ``prediction`` with ``precision``."""

    prediction: Any
    #: readable conditions (tabular), words (text) or segment ids (image)
    anchor: tuple[Any, ...]
    precision: float
    coverage: float
    #: tabular: the exact conditions ``anchor`` spells out
    conditions: tuple[Condition, ...] = ()
    #: text: the character offset of each anchor word in the text
    positions: tuple[int, ...] = ()
    #: image: the H,W map of segment ids the anchor's ids refer to
    segments: Any = None

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "prediction": _plain(self.prediction),
            "anchor": [_plain(item) for item in self.anchor],
            "precision": float(self.precision),
            "coverage": float(self.coverage),
        }
        if self.conditions:
            found["conditions"] = [condition.to_json() for condition in self.conditions]
        if self.positions:
            found["positions"] = list(self.positions)
        if self.segments is not None:
            found["segments"] = self.segments.tolist()
        return found


@dataclass(frozen=True, eq=False)
class IGRow:
    """Integrated Gradients attributions of one row to the target's score."""

    prediction: Any
    #: the output the attributions explain: the predicted class, or None (one output)
    target: int | None
    #: shaped like the row (table, image); one per token for text
    attributions: Any
    #: the model's score for the target at the baseline and at the row
    baseline_prediction: float
    input_prediction: float
    completeness_gap: float
    #: text: the tokens the attributions belong to
    tokens: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        import numpy

        found: dict[str, Any] = {
            "prediction": _plain(self.prediction),
            "target": self.target,
            "attributions": numpy.round(numpy.asarray(self.attributions, dtype=numpy.float64), 6).tolist(),
            "baseline_prediction": float(self.baseline_prediction),
            "input_prediction": float(self.input_prediction),
            "completeness_gap": float(self.completeness_gap),
        }
        if self.tokens:
            found["tokens"] = list(self.tokens)
        return found


@dataclass(frozen=True, eq=False)
class Explanation:
    method: str
    modality: str
    rows: tuple[Any, ...]
    #: tabular: the columns' names, in order
    feature_names: tuple[str, ...] = ()
    #: image: rows and attributions laid out N,C,H,W (a PyTorch module's images), not channels last
    channels_first: bool = False

    def metrics(self) -> dict[str, float]:
        if not self.rows:
            return {}
        if self.method == "anchor":
            return {
                "anchor_precision": sum(float(r.precision) for r in self.rows) / len(self.rows),
                "anchor_coverage": sum(float(r.coverage) for r in self.rows) / len(self.rows),
            }
        return {
            "ig_completeness_error": max(float(r.completeness_gap) for r in self.rows),
            "ig_rows": float(len(self.rows)),
        }

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"method": self.method, "modality": self.modality}
        if self.feature_names:
            found["feature_names"] = list(self.feature_names)
        if self.channels_first:
            found["layout"] = "channels_first"
        found["explanations"] = [row.to_json() for row in self.rows]
        found["metrics"] = self.metrics()
        return found


class Explainer(ABC):
    """Built (fitted) once by :func:`build_explainer`; explains rows in the reference's form."""

    method: str
    modality: str
    feature_names: tuple[str, ...]

    @abstractmethod
    def explain(self, rows: Any) -> Explanation:
        """Explain each row (a DataFrame's rows, list of lists, texts or images)."""


def build_explainer(
    method: str, model: Any, reference: Any, *, feature_names: Sequence[str] | None = None
) -> Explainer:
    """An explainer of ``model`` fitted on ``reference`` (data like the training data)."""
    chosen = check_method(method)
    # the backends build on this module's Explainer and Explanation: they load when chosen
    from nb2pipe.lifecycle.torch_model import is_torch_module
    from nb2pipe.monitoring.explain_ig_torch import TorchIGExplainer, TorchPredictor

    torch_module = is_torch_module(model)
    if torch_module:
        from nb2pipe.monitoring.explain_torch_inputs import torch_input_form

        # images channels first and embedded token ids are read from the module and the data
        form = torch_input_form(reference, model, feature_names)
    else:
        form = input_form(reference, model, feature_names)
    # a PyTorch module has no predict: Anchor gets one
    predicting = TorchPredictor(model, form) if torch_module else model
    if chosen == "anchor":
        from nb2pipe.monitoring.explain_anchor import AnchorExplainer

        return AnchorExplainer(predicting, form)
    if torch_module:
        return TorchIGExplainer(model, form)
    from nb2pipe.monitoring.explain_ig import IGExplainer

    return IGExplainer(model, form)


def check_method(method: str) -> str:
    chosen = str(method).strip().lower()
    if chosen in EXPLAIN_METHODS:
        return chosen
    close = difflib.get_close_matches(chosen, EXPLAIN_METHODS, n=1, cutoff=0.3)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise Nb2PipeError(f"unknown explanation method {method!r}: use 'anchor' or 'ig'{hint}")


def explain_model(
    uri: str,
    data: str | Path | None = None,
    method: str = "anchor",
    rows: int = 3,
    store: str | Path | None = None,
) -> tuple[Explanation, Any]:
    """Fit an explainer of model ``uri`` on ``data`` (a CSV/parquet file or a saved-value
    folder; default: the training data kept with the registered version) and explain its
    first ``rows`` rows. Returns the explanation and those rows."""
    chosen = check_method(method)
    if rows < 1:
        raise Nb2PipeError(f"rows={rows}: explain at least one row")
    from nb2pipe.store.registry import download_reference, load_explainable, resolve_model

    source = resolve_model(uri, store)
    model = load_explainable(source)
    if data is not None:
        if not Path(data).exists():
            raise Nb2PipeError(f"--data {data}: no such file or folder")
        reference = load_data(str(data))
    else:
        kept = download_reference(uri, store)
        if kept is None:
            raise Nb2PipeError(
                f"{uri} has no training data kept with it (only registered versions keep it); "
                "pass the data to fit the explainer on with --data FILE (CSV or parquet)"
            )
        from nb2pipe.store.reference import load_reference

        reference = load_reference(kept)
    explainer = build_explainer(chosen, model, reference)
    chosen_rows = first_rows(reference, rows)
    return explainer.explain(chosen_rows), chosen_rows


def summary_lines(explanation: Explanation, top: int = 5) -> list[str]:
    """A few readable lines per row, for a terminal."""
    lines = [f"{explanation.method} explanation ({explanation.modality}) of {len(explanation.rows)} rows"]
    for index, row in enumerate(explanation.rows):
        if isinstance(row, AnchorRow):
            rule = " AND ".join(str(item) for item in row.anchor) or "(empty anchor: the model predicts it anyway)"
            if explanation.modality == "image":
                rule = "segments " + ", ".join(str(item) for item in row.anchor) if row.anchor else rule
            lines.append(
                f"row {index}: prediction {_plain(row.prediction)!r} when {rule} "
                f"(precision {row.precision:.2f}, coverage {row.coverage:.2f})"
            )
            continue
        lines.append(
            f"row {index}: prediction {_plain(row.prediction)!r}; score {row.input_prediction:.4g} vs "
            f"{row.baseline_prediction:.4g} at the baseline (completeness gap {row.completeness_gap:.1%})"
        )
        names = _attribution_names(explanation, row)
        if names:
            ranked = sorted(names, key=lambda pair: -abs(pair[1]))[:top]
            lines.append("  " + ", ".join(f"{name} {value:+.3g}" for name, value in ranked))
    return lines


def _attribution_names(explanation: Explanation, row: IGRow) -> list[tuple[str, float]]:
    import numpy

    values = numpy.asarray(row.attributions, dtype=numpy.float64)
    if explanation.modality == "text":
        return list(zip(row.tokens, values.tolist(), strict=True))
    if explanation.modality == "tabular" and values.ndim == 1:
        return list(zip(explanation.feature_names, values.tolist(), strict=True))
    return []


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: numpy scalars become Python ones."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
