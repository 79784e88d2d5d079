"""PyTorch values across step boundaries: which torch values can travel and how (tensors with
torch.save, modules whole with cloudpickle, TorchScript with torch.jit.save), and where loaded
tensors go. Part of the step runtime (embedded before ``values.py``): the same rules as there —
standard library only at import time, no ``from __future__``, nothing newer than Python 3.9.
"""

import os
import pickle
import sys
from typing import Any

_REBUILD_OPTIMIZER = (
    "pass the model (and the optimizer's state_dict() if training goes on) and create the optimizer again "
    "over the loaded model's parameters"
)


#: torch classes whose instances cannot usefully leave their process, matched by (module, name) along
#: the value's class hierarchy, so that torch is not imported for values that are not torch's. An
#: optimizer or scheduler would pickle, but holding copies of the parameters, not the model's that the
#: next step loads: training would go on updating nothing.
_TORCH_PROCESS_BOUND = (
    (
        "torch.utils.data.dataloader",
        "DataLoader",
        "a DataLoader",
        "pass its Dataset (or the tensors) and build the DataLoader in the step that iterates it",
    ),
    (
        "torch.utils.data.dataloader",
        "_BaseDataLoaderIter",
        "a DataLoader iterator",
        "pass the Dataset (or the tensors) and iterate in the step that uses it",
    ),
    ("torch.optim.optimizer", "Optimizer", "an optimizer", _REBUILD_OPTIMIZER),
    (
        "torch.optim.lr_scheduler",
        "LRScheduler",
        "a learning-rate scheduler",
        "pass its state_dict() and create it again over the optimizer of the step that trains",
    ),
    ("torch", "Stream", "a CUDA stream", "create it in the step that uses it"),
    ("torch", "Event", "a CUDA event", "create it in the step that uses it"),
    ("torch._C", "_CudaStreamBase", "a CUDA stream", "create it in the step that uses it"),
    ("torch._C", "_CudaEventBase", "a CUDA event", "create it in the step that uses it"),
)


_TORCH_MODULE = ("torch.nn.modules.module", "Module")


_TORCH_SCRIPT_MODULE = ("torch.jit._script", "ScriptModule")


#: tensors that torch.load(weights_only=True) rebuilds
_PLAIN_TENSORS = frozenset({("torch", "Tensor"), ("torch.nn.parameter", "Parameter")})


def _class_names(value: Any) -> set[tuple[str, str]]:
    return {(kind.__module__, kind.__qualname__) for kind in type(value).__mro__}


def _torch_form(value: Any) -> Any:
    """``torch-script`` for a TorchScript module; ``torch-module`` for any other nn.Module, of
    any class, the notebook's too; ``torch-tensor`` for tensors, alone or in tuples, lists and
    dicts (``(X_train, y_train)``, a state_dict) with plain numbers and strings beside them; None
    for anything else. Containers go through torch.save too, so that loading maps their tensors'
    devices as it does a lone tensor's (a pickled CUDA tensor does not load without CUDA)."""
    if "torch" not in sys.modules:  # no torch value can exist in this process
        return None
    classes = _class_names(value)
    if _TORCH_SCRIPT_MODULE in classes:
        return "torch-script"
    if _TORCH_MODULE in classes:
        return "torch-module"
    return "torch-tensor" if _is_tensor_data(value) else None


def _is_tensor_data(value: Any) -> bool:
    found, seen, pending = False, set(), [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if (kind.__module__, kind.__qualname__) in _PLAIN_TENSORS:
            found = True
        elif kind in (tuple, list, dict) or (kind.__module__, kind.__qualname__) == ("collections", "OrderedDict"):
            if id(item) in seen:
                return False  # a container that holds itself
            seen.add(id(item))
            if isinstance(item, dict):
                if not all(type(key) in (str, int) for key in item):
                    return False
                pending.extend(item.values())
            else:
                pending.extend(item)
        elif kind not in (str, int, float, bool, type(None)):
            return False
    return found


def _write_torch(value: Any, form: str, directory: str) -> tuple[str, str]:
    import torch

    if form == "torch-script":  # compiled code of its own: pickle cannot copy it
        torch.jit.save(value, os.path.join(directory, "model.pt"))
        return "model.pt", form
    if form == "torch-module":
        # the module whole, as mlflow.pytorch saves one: cloudpickle writes classes defined in the
        # notebook (the step's __main__) by value, so it loads where they cannot be imported
        try:
            import cloudpickle as pickler
        except ImportError:
            pickler = pickle
        try:
            torch.save(value, os.path.join(directory, "model.pt"), pickle_module=pickler)
        except RuntimeError as exc:  # torch's way of saying a part of the module cannot be pickled
            raise pickle.PicklingError(str(exc)) from exc
        return "model.pt", form
    torch.save(_compacted(value), os.path.join(directory, "value.pt"))
    return "value.pt", form


def _compacted(value: Any) -> Any:
    """Tensors that are views of a bigger one (``X[:1000]``) copied out of it: torch.save
    writes a tensor's whole storage. Tensors that require gradients are kept as they are."""
    import torch

    if isinstance(value, (tuple, list)):
        return type(value)(_compacted(item) for item in value)
    if isinstance(value, dict):
        return type(value)((key, _compacted(item)) for key, item in value.items())
    if type(value) is not torch.Tensor or value.requires_grad or value.layout is not torch.strided:
        return value
    if value.untyped_storage().nbytes() > value.numel() * value.element_size():
        return value.clone()
    return value


def torch_map_location(on_gpu: bool = False) -> Any:
    """Where loaded tensors go: in a ``gpu:`` step on a machine with CUDA, where they were saved
    (None), so nothing is moved needlessly; anywhere else the CPU, so that a CPU step reads what a
    ``gpu:1`` step wrote and computes with the CPU tensors beside it (also where a GPU is there
    but was not asked for, as on a laptop running the whole pipeline)."""
    import torch

    return None if on_gpu and torch.cuda.is_available() else "cpu"


def _load_torch(target: str, full_module: bool, on_gpu: bool) -> Any:
    import torch

    # A full module is unpickled (weights_only=False runs the pickle's code): safe here, as the
    # file was written by this pipeline's own earlier step. Tensors load with weights_only=True.
    return torch.load(target, map_location=torch_map_location(on_gpu), weights_only=not full_module)
