"""PyTorch models: logged with ``mlflow.pytorch`` as a full module, served on the GPU when one is present.

Logging pickles the whole module with cloudpickle (``serialization_format="pickle"``): a class
defined in the notebook (``__main__``) travels by value and loads in a process where it is not
importable. MLflow 3's default, ``pt2`` (``torch.export``), keeps no class either, but traces
``forward`` (data-dependent control flow fails), fixes the device the weights were on, and ignores
``map_location``: a module trained on a GPU would then not load on a CPU server.

The signature's input is the training data's: integers (token ids for an ``nn.Embedding``) keep
their integer type, anything else is float32 (:func:`example_rows`).

Serving (:class:`TorchPredictModel`) loads the module once onto ``cuda`` when
``torch.cuda.is_available()``, else the CPU, in eval mode; each prediction stacks the request's
rows into one tensor of the signature's dtype and row shape on that device and runs ``forward``
under ``torch.inference_mode``. Token ids outside the first embedding's table are refused before
``forward``: on a GPU such an id is a device-side assert that poisons the CUDA context for every
later request, not an ``IndexError``.
torch is imported inside the functions: ``nb2pipe --help`` and ``compile`` must not load it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nb2pipe.errors import Nb2PipeError
from nb2pipe.store.registry import ModelSource, RegistryError, load_explainable, torch_device


def is_torch_module(model: Any) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (without importing torch for other models)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def example_rows(example: Any) -> np.ndarray:
    """Training rows (a tensor on any device, an array, a DataFrame, lists) as the module takes them:
    integers (token ids) keep their integer type, anything else (floats, booleans) becomes float32."""
    rows = _numpy_rows(example)
    return rows if rows.dtype.kind in "iu" else rows.astype(np.float32)


def _numpy_rows(example: Any) -> np.ndarray:
    if hasattr(example, "detach"):
        example = example.detach().to("cpu").numpy()
    elif hasattr(example, "to_numpy"):
        example = example.to_numpy()
    try:
        rows = np.asarray(example)
        if rows.dtype.kind not in "iub":
            rows = rows.astype(np.float32)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"the training data cannot be a tensor for the PyTorch model: {exc}") from None
    return rows


def module_outputs(module: Any, rows: np.ndarray) -> np.ndarray:
    """``module``'s output on ``rows`` in eval mode (dropout off, batch-norm statistics unchanged),
    on the device its parameters are on; its train/eval mode is restored afterwards."""
    import torch

    device = next((parameter.device for parameter in module.parameters()), torch.device("cpu"))
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            output = module(torch.as_tensor(rows, device=device))
    finally:
        module.train(was_training)
    return output_array(output)


def output_array(output: Any) -> np.ndarray:
    """A module's output tensor as a numpy array on the CPU (half precisions widened to float32)."""
    import torch

    if not isinstance(output, torch.Tensor):
        raise Nb2PipeError(
            f"the PyTorch model returned a {type(output).__name__}; nb2pipe serves modules whose forward returns "
            "one tensor (one row of output per input row)"
        )
    if output.is_floating_point() and output.dtype not in (torch.float32, torch.float64):
        output = output.float()  # numpy has no bfloat16
    return output.detach().to("cpu").numpy()


def log_torch_model(model: Any, example: Any, pip_requirements: list[str]) -> Any:
    """Log ``model`` with ``mlflow.pytorch`` (the full module, cloudpickled), its signature and input
    example from the first rows of ``example``; returns MLflow's ModelInfo."""
    import mlflow
    from mlflow.models import infer_signature

    signature, sample = None, None
    if example is not None:
        sample = example_rows(example[:5] if not hasattr(example, "iloc") else example.iloc[:5])
        try:
            outputs = module_outputs(model, sample)
        except Exception as exc:  # a model that cannot run on its own training rows is a user bug
            if sample.dtype.kind not in "iu":
                raise RegistryError(f"the model cannot predict its training data's first rows: {exc}") from exc
            # integer features of a model that casts nothing (an MLP on counts): it took them as floats
            sample = sample.astype(np.float32)
            try:
                outputs = module_outputs(model, sample)
            except Exception:
                raise RegistryError(f"the model cannot predict its training data's first rows: {exc}") from exc
        signature = infer_signature(sample, outputs)
    # MLflow warns on every pickled module and recommends pt2, which this module declines (see the top)
    mlflow_pytorch_log = logging.getLogger("mlflow.pytorch")
    level = mlflow_pytorch_log.level
    mlflow_pytorch_log.setLevel(logging.ERROR)
    try:
        return mlflow.pytorch.log_model(
            model,
            name="model",
            signature=signature,
            input_example=sample,
            serialization_format="pickle",
            pip_requirements=pip_requirements,
        )
    finally:
        mlflow_pytorch_log.setLevel(level)


class TorchPredictModel:
    """A loaded ``nn.Module`` behind ``predict(table)``, as :class:`~nb2pipe.lifecycle.predictor.Predictor` calls
    estimators: rows of ``n_features_in_`` values, reshaped to the module's row shape, of its input dtype."""

    def __init__(
        self, module: Any, device: str, row_shape: Sequence[int] | None, input_dtype: Any = np.float32
    ) -> None:
        self.module = module
        self.device = device
        #: one row's shape as the module takes it (the signature's input shape less the batch)
        self.row_shape = tuple(row_shape) if row_shape else None
        #: the width of a request row: the row shape's values, flattened
        self.n_features_in_ = math.prod(self.row_shape) if self.row_shape else None
        #: the signature's input dtype: an integer type for token ids, else float32
        self.input_dtype = np.dtype(input_dtype)
        #: ids 0..N-1 that the module's first layer, an embedding, has rows for (None: not an embedding)
        self.id_count = first_embedding_size(module) if self.input_dtype.kind in "iu" else None

    def predict(self, table: Any) -> np.ndarray:
        import torch

        rows = np.asarray(table, dtype=self.input_dtype)
        if self.id_count is not None:
            _check_ids(rows, self.id_count)
        if self.row_shape is not None:
            rows = rows.reshape((len(rows), *self.row_shape))
        with torch.inference_mode():
            output = self.module(torch.from_numpy(rows).to(self.device))
        return output_array(output)


def first_embedding_size(module: Any) -> int | None:
    """``num_embeddings`` of the module's first layer (its first submodule without children, in
    definition order) when that layer is an ``nn.Embedding`` or ``nn.EmbeddingBag``; else None."""
    import torch

    first = next((layer for layer in module.modules() if not any(True for _ in layer.children())), None)
    if isinstance(first, torch.nn.Embedding | torch.nn.EmbeddingBag):
        return int(first.num_embeddings)
    return None


def _check_ids(rows: np.ndarray, id_count: int) -> None:
    """A ValueError (the payload's fault) naming the first row holding an id the embedding has no row for."""
    outside = (rows < 0) | (rows >= id_count)
    if outside.any():
        index = int(np.argmax(outside.reshape(len(rows), -1).any(axis=1)))
        bad = rows[index][outside[index]].flat[0]
        raise ValueError(f"row {index} holds token id {bad}; the model's embedding takes ids 0 to {id_count - 1}")


def load_for_serving(source: ModelSource) -> TorchPredictModel:
    """The registered module on the serving device (:func:`~nb2pipe.store.registry.torch_device`), in eval mode."""
    from mlflow.models import Model

    limit_cpu_threads()
    device = torch_device()
    # map_location: a module saved from a GPU loads on a CPU-only server (and the reverse)
    module = load_explainable(source)
    module.to(device)
    module.eval()
    signature = Model.load(str(source.local_path / "MLmodel")).signature
    return TorchPredictModel(module, device, _row_shape(signature), _input_dtype(signature))


def _row_shape(signature: Any) -> tuple[int, ...] | None:
    """One input row's shape from a tensor signature ``(-1, *row)``; None when it does not say."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.is_tensor_spec() or len(inputs.inputs) != 1:
        return None
    shape = tuple(int(n) for n in inputs.inputs[0].shape)
    if len(shape) < 2 or any(n < 1 for n in shape[1:]):
        return None
    return shape[1:]


def _input_dtype(signature: Any) -> np.dtype:
    """The tensor signature's integer dtype (the module takes ids), else float32."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.is_tensor_spec() or len(inputs.inputs) != 1:
        return np.dtype(np.float32)
    declared = np.dtype(inputs.inputs[0].type)
    return declared if declared.kind in "iu" else np.dtype(np.float32)


def limit_cpu_threads() -> None:
    """Size PyTorch's intra-op thread pool to the CPUs this process may use (affinity, cgroup quota)
    less one for the server's event loop, which parses every request. PyTorch counts the node's
    cores: a replica limited to 2 CPUs on a 64-core node would run 64 threads and be throttled,
    and threads that wait on each other for a CPU turn a 32-row forward pass of a small MLP from
    0.05 ms into 3 ms (2 shared cores, bench/serve.py). ``OMP_NUM_THREADS``, when set, decides."""
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return
    budget = max(1, usable_cpus() - 1)
    if budget < torch.get_num_threads():
        torch.set_num_threads(budget)


def usable_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup v2 quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))
