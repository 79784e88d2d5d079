"""Integrated Gradients (alibi's IntegratedGradients) behind
:class:`nb2pipe.monitoring.explain.Explainer`, for Keras models: see the choices (targets,
baselines, text models) in :mod:`nb2pipe.monitoring.explain`'s docstring."""

from __future__ import annotations

import threading
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.explain import GAP_FLOOR, Explainer, Explanation, IGRow
from nb2pipe.monitoring.explain_inputs import (
    TABULAR,
    TEXT,
    InputForm,
    is_keras,
    keras_module,
    keras_outputs,
    keras_text_input,
)
from nb2pipe.native_order import load_triton_before_tensorflow

#: steps of the path integral (Gauss-Legendre): attributions add up to within ~1e-4 on small models
STEPS = 50


class IGExplainer(Explainer):
    method = "ig"

    def __init__(self, model: Any, form: InputForm, *, n_steps: int = STEPS) -> None:
        if not is_keras(model):
            raise Nb2PipeError(
                f"Integrated Gradients needs a Keras model or a PyTorch module; use explain:anchor for "
                f"{_describe(model)} (it needs only predict)"
            )
        refuse_categories(form)
        self.form, self.modality, self.feature_names = form, form.modality, form.feature_names
        self._model = model
        # a text model's TextVectorization layer (None for other inputs), and the model from its output on
        self._vectorizer: Any
        self._core: Any
        self._vectorizer, self._core = split_text_model(model) if form.modality == TEXT else (None, model)
        self._embedding = input_embedding(self._core)
        load_triton_before_tensorflow()
        from alibi.explainers import IntegratedGradients

        embedding = self._embedding
        # a callable, not the layer: alibi checks layers against Keras 3 only (tf_keras layers fail)
        layer = (lambda _model: embedding) if embedding is not None else None
        self._ig = IntegratedGradients(self._core, layer=layer, method="gausslegendre", n_steps=n_steps)
        self._mean = form.data.mean(axis=0) if form.modality == TABULAR else None
        first = self._inputs(form.data[:1])
        try:
            width = keras_outputs(self._core, first).reshape(1, -1).shape[1]
        except (ValueError, TypeError) as exc:
            raise Nb2PipeError(f"the Keras model does not take the data it is explained on: {exc}") from exc
        self._several = width > 1
        # alibi swaps the Embedding layer's call for its own while it takes gradients
        self._lock = threading.Lock()

    def explain(self, rows: Any) -> Explanation:
        with self._lock:
            return self._explain(rows)

    def _explain(self, rows: Any) -> Explanation:
        import numpy

        inputs = self._inputs(self.form.alibi_rows(rows))
        baselines = self._baselines(inputs)
        outputs = keras_outputs(self._core, inputs).reshape(len(inputs), -1)
        at_baseline = keras_outputs(self._core, baselines).reshape(len(inputs), -1)
        target = outputs.argmax(axis=1) if self._several else None
        found = self._ig.explain(inputs, baselines=baselines, target=target)
        attributions = numpy.asarray(found.attributions[0], dtype=numpy.float64)
        if self._embedding is not None:
            attributions = attributions.sum(axis=-1)  # one number per token: summed over the embedding
        vocabulary = self._vectorizer.get_vocabulary() if self._vectorizer is not None else None
        records = []
        for index in range(len(inputs)):
            column = int(target[index]) if target is not None else 0
            score, base = float(outputs[index, column]), float(at_baseline[index, column])
            row_attributions = attributions[index]
            gap = abs(float(row_attributions.sum()) - (score - base)) / max(abs(score - base), GAP_FLOOR)
            tokens: tuple[str, ...] = ()
            if vocabulary is not None:
                kept = inputs[index] != 0  # padding: the same at the baseline, so attributed exactly 0
                tokens = tuple(vocabulary[int(token)] for token in inputs[index][kept])
                row_attributions = row_attributions[kept]
            prediction = column if target is not None else score
            chosen = column if target is not None else None
            records.append(IGRow(prediction, chosen, row_attributions, base, score, gap, tokens))
        return Explanation("ig", self.modality, tuple(records), self.feature_names)

    def _inputs(self, prepared: Any) -> Any:
        """alibi_rows' form -> the model's inputs: token ids, float32 tables or images."""
        import numpy

        if self._vectorizer is not None:
            return numpy.asarray(self._vectorizer(keras_text_input(self._model, list(prepared))))
        values = numpy.asarray(prepared)
        if self._embedding is not None:
            return numpy.rint(values).astype(numpy.int64)
        return values.reshape((len(values), *self.form.row_shape)).astype(numpy.float32)

    def _baselines(self, inputs: Any) -> Any:
        import numpy

        if self._mean is not None and self._embedding is None:
            return numpy.broadcast_to(self._mean.astype(inputs.dtype), inputs.shape).copy()
        return numpy.zeros_like(inputs)


def refuse_categories(form: InputForm) -> None:
    """Gradients need numbers: a table with categorical columns is refused."""
    if form.modality == TABULAR and form.categories:
        names = ", ".join(form.feature_names[i] for i in sorted(form.categories))
        raise Nb2PipeError(
            f"Integrated Gradients needs numeric inputs; the columns {names} are categorical: "
            "encode them as numbers for the model, or use explain:anchor"
        )


def split_text_model(model: Any) -> tuple[Any, Any]:
    """(the TextVectorization layer, the model from its token ids on), found by layer type."""
    keras = keras_module(model)
    vectorizers = [layer for layer in model.layers if isinstance(layer, keras.layers.TextVectorization)]
    if len(vectorizers) != 1:
        raise Nb2PipeError(
            f"Integrated Gradients explains a Keras text model that takes strings through one TextVectorization "
            f"layer and then an Embedding layer; this model has {len(vectorizers)} TextVectorization layers "
            f"({_layer_list(model)}). See nb2pipe.monitoring.explain for the supported shape, or use explain:anchor"
        )
    vectorizer = vectorizers[0]
    if isinstance(model, keras.Sequential):
        index = model.layers.index(vectorizer)
        if index != 0:
            raise Nb2PipeError(f"the TextVectorization layer must come first in the model; it is layer {index + 1}")
        sample = vectorizer(keras_text_input(model, [""]))
        ids = keras.Input(shape=tuple(sample.shape[1:]), dtype=str(sample.dtype.name))
        return vectorizer, keras.Sequential([ids, *model.layers[index + 1 :]])
    try:
        return vectorizer, keras.Model(vectorizer.output, model.outputs)
    except (ValueError, AttributeError) as exc:
        raise Nb2PipeError(
            f"cannot cut the text model after its TextVectorization layer ({exc}); its input must feed only "
            "that layer (see nb2pipe.monitoring.explain for the supported shape), or use explain:anchor"
        ) from exc


def input_embedding(model: Any) -> Any:
    """The Embedding layer the model's input goes into first, if it does (token ids cannot
    be differentiated: attributions are then taken at the embedding's output)."""
    keras = keras_module(model)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if layers and isinstance(layers[0], keras.layers.Embedding):
        return layers[0]
    return None


def _layer_list(model: Any) -> str:
    return ", ".join(type(layer).__name__ for layer in model.layers[:6])


def _describe(model: Any) -> str:
    return f"{type(model).__module__.split('.')[0]}'s {type(model).__name__}"
