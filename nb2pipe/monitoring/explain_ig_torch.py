"""PyTorch modules behind :class:`nb2pipe.monitoring.explain.Explainer`: Integrated Gradients
through Captum's ``IntegratedGradients`` (alibi's takes only TensorFlow), and a ``predict`` for
Anchor. The choices follow the Keras path (see :mod:`nb2pipe.monitoring.explain`): the target
is the predicted class of a module with several outputs (none for one output), the baselines
are the reference's column means for tables and zeros (black) for images, Gauss-Legendre
over :data:`~nb2pipe.monitoring.explain_ig.STEPS` steps, more for a row whose completeness
gap (from Captum's convergence delta) is above 1 %. A classifier's score is what the module
returns: its logits when it ends without a softmax.

The module runs on its own device (the GPU when its parameters are there) in eval mode,
restored afterwards. It takes rows shaped as the reference data gave them, as float tensors of
its parameters' dtype. torch and captum are imported here only when a module is explained.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.explain import GAP_FLOOR, Explainer, Explanation, IGRow
from nb2pipe.monitoring.explain_ig import STEPS, refuse_categories
from nb2pipe.monitoring.explain_inputs import TABULAR, TEXT, InputForm, labels_of

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

    def __init__(self, module: Any) -> None:
        self.module = module
        # Anchor's sampler calls from one thread at a time; the lock keeps eval mode's switch safe
        self._lock = threading.Lock()

    def predict(self, batch: Any) -> Any:
        import torch

        with self._lock, evaluating(self.module), torch.inference_mode():
            outputs = self.module(as_tensor(self.module, batch))
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
        from captum.attr import IntegratedGradients

        self.form, self.modality, self.feature_names = form, form.modality, form.feature_names
        self._module, self._n_steps = module, n_steps
        self._ig = IntegratedGradients(self._scores)
        self._mean = form.data.mean(axis=0) if form.modality == TABULAR else None
        first = self._inputs(form.data[:1])
        try:
            with evaluating(module):  # in training mode, batch norm would learn from the probe
                width = self._outputs(first).shape[1]
        except (RuntimeError, ValueError, TypeError) as exc:
            raise Nb2PipeError(f"the PyTorch module does not take the data it is explained on: {exc}") from exc
        self._several = width > 1
        # eval mode is switched on and back per call: one explanation at a time
        self._lock = threading.Lock()

    def explain(self, rows: Any) -> Explanation:
        with self._lock, evaluating(self._module):
            return self._explain(rows)

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
        return Explanation("ig", self.modality, tuple(records), self.feature_names)

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
            attributions.append(found.detach())
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
        return as_tensor(self._module, values.reshape((len(values), *self.form.row_shape)))

    def _baselines(self, inputs: Any) -> Any:
        import torch

        if self._mean is not None:
            mean = torch.as_tensor(self._mean, dtype=inputs.dtype, device=inputs.device)
            return mean.expand_as(inputs).clone()
        return torch.zeros_like(inputs)


def as_tensor(module: Any, batch: Any) -> Any:
    """A batch (array or DataFrame) as a tensor on the module's device, in its parameters' dtype."""
    import numpy
    import torch

    values = batch.to_numpy(dtype=numpy.float64) if hasattr(batch, "to_numpy") else numpy.asarray(batch)
    device, dtype = placement(module)
    return torch.as_tensor(numpy.asarray(values, dtype=numpy.float64), device=device).to(dtype)


def placement(module: Any) -> tuple[Any, Any]:
    """(device, float dtype) of the module's first floating parameter or buffer: CPU, float32 without one."""
    import torch

    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


@contextmanager
def evaluating(module: Any) -> Iterator[None]:
    """Eval mode (dropout off, batch norm on its running figures) for the block, the mode restored after."""
    training = bool(module.training)
    module.eval()
    try:
        yield
    finally:
        module.train(training)
