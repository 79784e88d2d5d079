"""PyTorch modules behind :class:`nb2pipe.monitoring.explain.Explainer`: Integrated Gradients
through Captum's ``IntegratedGradients`` (alibi's takes only TensorFlow), and a ``predict`` for
Anchor. The choices follow the Keras path (see :mod:`nb2pipe.monitoring.explain`): the target
is the predicted class of a module with several outputs (none for one output), the baselines
are the reference's column means for tables and zeros (black) for images, Gauss-Legendre
over :data:`~nb2pipe.monitoring.explain_ig.STEPS` steps, more for a row whose completeness
gap (from Captum's convergence delta) is above 1 %. A classifier's score is what the module
returns: its logits when it ends without a softmax.

Token ids (see :mod:`nb2pipe.monitoring.explain_torch_inputs`) go through Captum's
``LayerIntegratedGradients`` on the embedding layer the ids go into: the baseline is a row of
padding ids (the layer's ``padding_idx``, or 0), the path runs between the embeddings, and the
attributions are summed over the embedding dimension (one per token position). An
``nn.EmbeddingBag`` pools its tokens inside the layer, so while explaining its output is
recomputed from a per-token ``nn.Embedding`` on the same weights, pooled as the bag pools.

The module runs on its own device (the GPU when its parameters are there) in eval mode,
restored afterwards. It takes rows shaped as the reference data gave them (images N,C,H,W
when the data came so), as float tensors of its parameters' dtype, token ids as long tensors.
torch and captum are imported here only when a module is explained.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.explain import GAP_FLOOR, Explainer, Explanation, IGRow
from nb2pipe.monitoring.explain_ig import STEPS, refuse_categories
from nb2pipe.monitoring.explain_inputs import IMAGE, TABULAR, TEXT, InputForm, labels_of
from nb2pipe.monitoring.explain_torch_inputs import (
    as_tensor,
    evaluating,
    input_embedding,
    on_host,
    padding_id,
    token_tensor,
)

#: rows x steps that go through the module in one pass (50 steps: 80 rows)
POINTS_PER_PASS = 4096
#: a row whose completeness gap is above this is integrated again with twice the steps, up to
#: MAX_STEPS: a ReLU network's kinks along the path leave 50 Gauss-Legendre steps ~3 % off on a
#: few rows (breast cancer MLP: 3 of 40), while 100 steps already take every row under 1 %
REFINE_ABOVE = 0.01
MAX_STEPS = 800


class TorchPredictor:
    """``predict`` for a module, as Anchor calls it: a batch (array or DataFrame) -> the
    predicted classes (argmax of several outputs; one output's values as they are)."""

    def __init__(self, module: Any, form: InputForm | None = None) -> None:
        self.module = module
        self._token_ids = form is not None and form.token_ids
        # Anchor's sampler calls from one thread at a time; the lock keeps eval mode's switch safe
        self._lock = threading.Lock()

    def predict(self, batch: Any) -> Any:
        import numpy
        import torch

        if self._token_ids:
            values = batch.to_numpy(dtype=numpy.float64) if hasattr(batch, "to_numpy") else batch
            inputs = token_tensor(self.module, values, None)
        else:
            inputs = as_tensor(self.module, batch)
        with self._lock, evaluating(self.module), torch.inference_mode():
            outputs = self.module(inputs)
        return labels_of(outputs.detach().cpu().numpy(), threshold=False)


class TorchIGExplainer(Explainer):
    method = "ig"

    def __init__(self, module: Any, form: InputForm, *, n_steps: int = STEPS) -> None:
        if form.modality == TEXT:
            raise Nb2PipeError(
                "Integrated Gradients explains a PyTorch module's tables and images (a module takes tensors, "
                "not strings); explain a text model with explain:anchor through a model that takes strings"
            )
        refuse_categories(form)
        from captum.attr import IntegratedGradients, LayerIntegratedGradients

        self.form, self.modality, self.feature_names = form, form.modality, form.feature_names
        self._module, self._n_steps = module, n_steps
        self._mean = form.data.mean(axis=0) if form.modality == TABULAR and not form.token_ids else None
        # token ids: the embedding layer they go into, and the layer Captum integrates along
        self._embedding = input_embedding(module, token_tensor(module, form.data[:1], None)) if form.token_ids else None
        self._tokens = per_token_layer(self._embedding) if self._embedding is not None else None
        self._ig = (
            LayerIntegratedGradients(self._scores, self._tokens)
            if self._tokens is not None
            else IntegratedGradients(self._scores)
        )
        first = self._inputs(form.data[:1])
        try:
            with evaluating(module), self._pooling():  # in training mode, batch norm would learn from the probe
                width = self._outputs(first).shape[1]
        except (RuntimeError, ValueError, TypeError) as exc:
            raise Nb2PipeError(f"the PyTorch module does not take the data it is explained on: {exc}") from exc
        self._several = width > 1
        # eval mode is switched on and back per call: one explanation at a time
        self._lock = threading.Lock()

    def explain(self, rows: Any) -> Explanation:
        with self._lock, evaluating(self._module), self._pooling():
            return self._explain(on_host(rows))

    def _explain(self, rows: Any) -> Explanation:
        import torch

        inputs = self._inputs(self.form.alibi_rows(rows))
        baselines = self._baselines(inputs)
        outputs = self._outputs(inputs)
        at_baseline = self._outputs(baselines)
        targets = outputs.argmax(dim=1) if self._several else torch.zeros(len(inputs), dtype=torch.long)
        targets = targets.to(inputs.device)
        scores = outputs.gather(1, targets[:, None])[:, 0].double()
        bases = at_baseline.gather(1, targets[:, None])[:, 0].double()
        ranges = (scores - bases).abs().clamp(min=GAP_FLOOR)
        steps = self._n_steps
        attributions, deltas = self._attribute(inputs, baselines, targets, steps)
        # captum's delta: sum(attributions) - (f(x) - f(baseline)), per row
        gaps = deltas.double().abs() / ranges
        while steps < MAX_STEPS and bool((gaps > REFINE_ABOVE).any()):
            steps *= 2
            again = (gaps > REFINE_ABOVE).nonzero()[:, 0]
            found, delta = self._attribute(inputs[again], baselines[again], targets[again], steps)
            attributions[again], gaps[again] = found, delta.double().abs() / ranges[again]
        values = attributions.double().cpu().numpy()
        records = []
        for index in range(len(inputs)):
            score, base, gap = float(scores[index]), float(bases[index]), float(gaps[index])
            column = int(targets[index]) if self._several else None
            prediction = column if column is not None else score
            records.append(IGRow(prediction, column, values[index], base, score, gap))
        return Explanation(
            "ig", self.modality, tuple(records), self.feature_names, channels_first=self.form.channels_first
        )

    def _pooling(self) -> Any:
        """While explaining an EmbeddingBag: its output recomputed from the per-token layer."""
        if self._embedding is None or self._tokens is self._embedding:
            return nullcontext()
        return pooled_through(self._embedding, self._tokens)

    def _attribute(self, inputs: Any, baselines: Any, targets: Any, steps: int) -> tuple[Any, Any]:
        """(attributions, convergence deltas) of the rows, a bounded number of points at a time."""
        import torch

        attributions, deltas = [], []
        chunk = max(1, POINTS_PER_PASS // steps)
        for start in range(0, len(inputs), chunk):
            window = slice(start, start + chunk)
            found, delta = self._ig.attribute(
                inputs[window],
                baselines=baselines[window],
                target=targets[window],
                n_steps=steps,
                method="gausslegendre",
                return_convergence_delta=True,
            )
            # token ids: the embedding's attributions, summed over its dimension (one per position)
            attributions.append(found.detach().sum(dim=-1) if self._tokens is not None else found.detach())
            deltas.append(delta.detach())
        return torch.cat(attributions), torch.cat(deltas)

    def _scores(self, inputs: Any) -> Any:
        """The module's outputs as (rows, outputs): one output becomes a column Captum can target."""
        found = self._module(inputs)
        return found.reshape(len(inputs), -1)

    def _outputs(self, inputs: Any) -> Any:
        import torch

        with torch.no_grad():
            return self._scores(inputs).detach()

    def _inputs(self, prepared: Any) -> Any:
        """alibi_rows' form (float tables, channel-last images) -> rows shaped as the module takes them."""
        import numpy

        values = numpy.asarray(prepared, dtype=numpy.float64)
        if self._embedding is not None:
            return token_tensor(self._module, values, self._embedding.num_embeddings)
        if self.modality == IMAGE:
            return as_tensor(self._module, self.form.model_images(values))
        return as_tensor(self._module, values.reshape((len(values), *self.form.row_shape)))

    def _baselines(self, inputs: Any) -> Any:
        import torch

        if self._embedding is not None:
            return torch.full_like(inputs, padding_id(self._embedding))
        if self._mean is not None:
            mean = torch.as_tensor(self._mean, dtype=inputs.dtype, device=inputs.device)
            return mean.expand_as(inputs).clone()
        return torch.zeros_like(inputs)


def per_token_layer(embedding: Any) -> Any:
    """The layer whose output gives one vector per token: an ``nn.Embedding`` itself; for an
    ``nn.EmbeddingBag``, an ``nn.Embedding`` on the bag's own weights (shared, not copied)."""
    import torch

    if not isinstance(embedding, torch.nn.EmbeddingBag):
        return embedding
    tokens = torch.nn.Embedding(
        embedding.num_embeddings,
        embedding.embedding_dim,
        padding_idx=embedding.padding_idx,
        max_norm=embedding.max_norm,
        norm_type=embedding.norm_type,
        device="meta",  # its weight is replaced by the bag's just below
    )
    tokens.weight = embedding.weight
    return tokens


@contextmanager
def pooled_through(bag: Any, tokens: Any) -> Iterator[None]:
    """For the block, the bag's output is the per-token layer's, pooled as the bag pools (the
    same figures), so that Captum can integrate along each token's embedding."""

    def pooled(layer: Any, args: tuple[Any, ...], options: dict[str, Any], output: Any) -> Any:
        ids = args[0] if args else options.get("input")
        offsets = args[1] if len(args) > 1 else options.get("offsets")
        weights = args[2] if len(args) > 2 else options.get("per_sample_weights")
        if ids is None or ids.dim() != 2 or offsets is not None or weights is not None:
            raise Nb2PipeError(
                "Integrated Gradients explains an nn.EmbeddingBag given rows of token ids (N, L), without offsets "
                "or per-sample weights; explain this module with explain:anchor"
            )
        return pool(tokens(ids), ids, layer.mode, layer.padding_idx)

    handle = bag.register_forward_hook(pooled, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def pool(vectors: Any, ids: Any, mode: str, padding: int | None) -> Any:
    """(N, L, D) token vectors -> (N, D) as ``nn.EmbeddingBag(mode=mode, padding_idx=padding)``
    pools them: padding ids are left out of the bag, and an empty bag gives zeros."""
    import torch

    kept = (ids != padding) if padding is not None else torch.ones_like(ids, dtype=torch.bool)
    weights = kept.unsqueeze(-1).to(vectors.dtype)
    if mode == "sum":
        return (vectors * weights).sum(dim=1)
    if mode == "mean":
        return (vectors * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
    largest = vectors.masked_fill(~kept.unsqueeze(-1), float("-inf")).amax(dim=1)
    return torch.where(kept.any(dim=1, keepdim=True), largest, torch.zeros_like(largest))
