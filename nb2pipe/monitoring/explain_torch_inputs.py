"""How a PyTorch module takes the data it is explained on, for :mod:`nb2pipe.monitoring.explain`.

Two layouts differ from the ones :func:`~nb2pipe.monitoring.explain_inputs.input_form` reads for
every model, and both are decided from the model being a torch module plus the data's shape and
dtype (never from names):

- images N,C,H,W (C <= 4, H and W > 4): torch's convolutions take the channels first, so such an
  array is images laid out channels first (a Keras model's N,H,W,C stays channels last);
- a 2-D integer table whose values go straight into an ``nn.Embedding``/``nn.EmbeddingBag``: token
  ids, which cannot be interpolated; Integrated Gradients then works on the embedding's output.

It also holds the small tensor helpers the PyTorch explainers share. torch is imported inside
the functions, only when a module is explained.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.explain_inputs import IMAGE, TABULAR, InputForm, input_form

#: channels-first images have at most this many channels, and sides longer than MIN_SIDE
MAX_CHANNELS, MIN_SIDE = 4, 4


def torch_input_form(reference: Any, module: Any, feature_names: Any = None) -> InputForm:
    """The reference data as explainers of ``module`` (a ``torch.nn.Module``) use it."""
    import numpy

    reference = on_host(reference)
    if isinstance(reference, numpy.ndarray) and is_channels_first(reference):
        return InputForm(
            IMAGE,
            reference.transpose(0, 2, 3, 1),
            row_shape=reference.shape[1:],
            dtype=reference.dtype,
            channels_first=True,
        )
    form = input_form(reference, None, feature_names)
    if form.modality != TABULAR or form.categories or not _integer_table(reference) or not embeddings(module):
        return form
    first = token_tensor(module, form.data[:1], None)
    input_embedding(module, first)  # refuses a module whose embeddings do not take its input
    names = form.feature_names if feature_names is not None else tuple(f"token {i}" for i in range(form.data.shape[1]))
    return replace(form, feature_names=names, token_ids=True)


def is_channels_first(array: Any) -> bool:
    """N,C,H,W with few channels and real sides: how a PyTorch module takes images."""
    return (
        array.ndim == 4
        and array.dtype.kind in "biuf"
        and len(array) > 0
        and array.shape[1] <= MAX_CHANNELS
        and min(array.shape[2], array.shape[3]) > MIN_SIDE
    )


def on_host(values: Any) -> Any:
    """A tensor (on any device) as a numpy array; anything else as it is."""
    if type(values).__module__.split(".")[0] == "torch" and hasattr(values, "detach"):
        return values.detach().cpu().numpy()
    return values


def _integer_table(reference: Any) -> bool:
    import numpy
    import pandas
    from pandas.api import types

    if isinstance(reference, pandas.DataFrame):
        return all(types.is_integer_dtype(dtype) for dtype in reference.dtypes)
    return numpy.asarray(reference).dtype.kind in "iu"


def embeddings(module: Any) -> list[Any]:
    """The module's ``nn.Embedding`` and ``nn.EmbeddingBag`` layers, in ``modules()`` order."""
    import torch

    return [layer for layer in module.modules() if isinstance(layer, torch.nn.Embedding | torch.nn.EmbeddingBag)]


def input_embedding(module: Any, ids: Any) -> Any:
    """The first embedding layer that is handed the module's input itself (for a Sequential: its
    first child), found by calling the module on ``ids`` once and watching the layers' inputs."""
    import torch

    layers = embeddings(module)
    fed: list[Any] = []

    def note(layer: Any, args: tuple[Any, ...]) -> None:
        if args and args[0] is ids:
            fed.append(layer)

    handles = [layer.register_forward_pre_hook(note) for layer in layers]
    try:
        with evaluating(module), torch.no_grad():
            module(ids)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise Nb2PipeError(f"the PyTorch module does not take the token ids it is explained on: {exc}") from exc
    finally:
        for handle in handles:
            handle.remove()
    if not fed:
        kinds = ", ".join(type(layer).__name__ for layer in layers[:4])
        raise Nb2PipeError(
            f"Integrated Gradients explains token ids through the embedding layer they go into; this module's "
            f"embedding layers ({kinds}) are not handed its input as it is (the ids must go straight into an "
            "nn.Embedding or nn.EmbeddingBag, e.g. a Sequential's first layer): explain it with explain:anchor"
        )
    return fed[0]


def padding_id(layer: Any) -> int:
    """The id of the empty text: the layer's ``padding_idx``, or 0."""
    return int(layer.padding_idx) if layer.padding_idx is not None else 0


def token_tensor(module: Any, table: Any, vocabulary: int | None) -> Any:
    """A float table of ids -> a long tensor on the module's device; ids outside the vocabulary
    (``vocabulary`` ids; None: not checked) are refused."""
    import numpy
    import torch

    values = numpy.asarray(table, dtype=numpy.float64)
    ids = numpy.rint(values)
    if not numpy.array_equal(ids, values) or (len(ids) and ids.min() < 0):
        raise Nb2PipeError("token ids must be whole numbers from 0 on; the rows to explain have other values")
    if vocabulary is not None and len(ids) and ids.max() >= vocabulary:
        raise Nb2PipeError(f"the rows hold the token id {int(ids.max())}; the embedding knows {vocabulary} ids")
    device, _ = placement(module)
    return torch.as_tensor(ids.astype(numpy.int64), device=device)


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
