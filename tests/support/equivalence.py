"""Comparing a pipeline run's values with a straight notebook run's."""

from __future__ import annotations

import math
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pandas as pd
from nbclient import NotebookClient

_KEEP_FINALS = """
import pickle as _p, types as _t, cloudpickle as _c
_kept = {}
for _name, _value in list(globals().items()):
    if _name.startswith("_") or _name in ("In", "Out", "get_ipython", "exit", "quit"):
        continue
    if isinstance(_value, (_t.ModuleType, _t.FunctionType, type)):
        continue
    try:
        _kept[_name] = _c.dumps(_value)
    except Exception:
        pass
with open(__PATH__, "wb") as _f:
    _p.dump(_kept, _f)
"""


def notebook_final_variables(path: Path, scratch: Path) -> dict[str, Any]:
    """Run the notebook top to bottom with nbclient; return its final variables."""
    notebook = nbformat.read(path, as_version=4)
    target = scratch / f"{path.stem}-finals.pkl"
    notebook.cells.append(nbformat.v4.new_code_cell(_KEEP_FINALS.replace("__PATH__", repr(str(target)))))
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    with target.open("rb") as handle:
        return {name: pickle.loads(blob) for name, blob in pickle.load(handle).items()}


def same(a: Any, b: Any, where: str = "value") -> None:
    """Assert two values are equal, looking inside frames, arrays and fitted models."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if a is None or (isinstance(a, bool | int | str | bytes | np.generic) and not isinstance(a, np.floating)):
        assert a == b, f"{where}: {a!r} != {b!r}"
    elif isinstance(a, float | np.floating):
        assert a == b or (math.isnan(a) and math.isnan(b)), f"{where}: {a} != {b}"
    elif isinstance(a, type):
        assert a is b, f"{where}: {a} is not {b}"
    elif isinstance(a, types.FunctionType | types.BuiltinFunctionType | types.MethodType):
        assert a.__qualname__ == b.__qualname__, f"{where}: {a} != {b}"
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys differ"
        for key in a:
            same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: lengths differ"
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{index}]")
    elif _is_torch(a, "Tensor"):
        # a step and a kernel train the same way on the same CPU: the very same numbers
        assert (a.dtype, tuple(a.shape), a.requires_grad) == (b.dtype, tuple(b.shape), b.requires_grad), where
        assert bool((a.detach().cpu() == b.detach().cpu()).all()), f"{where}: tensors differ"
    elif _is_torch(a, "Module"):
        assert repr(a) == repr(b), f"{where}: {a!r} != {b!r}"
        same(dict(a.state_dict()), dict(b.state_dict()), f"{where}.state_dict()")
    elif _is_torch(a, "Optimizer"):
        # its state is keyed by the parameter objects themselves; state_dict() numbers them
        same(a.state_dict(), b.state_dict(), f"{where}.state_dict()")
    elif _is_keras_model(a):
        # a Keras model's object graph is cyclic: compare what defines it, its layers and weights
        same(a.get_config(), b.get_config(), f"{where}.get_config()")
        same(list(a.get_weights()), list(b.get_weights()), f"{where}.get_weights()")
    elif hasattr(a, "__dict__") and not isinstance(a, type) and vars(a):
        same(vars(a), vars(b), f"{where}.__dict__")
    elif type(a).__eq__ is object.__eq__:
        # compiled objects (a tree of a forest, say) compare by what they pickle
        same(a.__reduce_ex__(4)[1:3], b.__reduce_ex__(4)[1:3], f"{where}.__reduce__")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _is_torch(value: Any, kind: str) -> bool:
    """A torch.Tensor (Parameters included) or torch.nn.Module, without importing torch for others."""
    if "torch" not in sys.modules:
        return False
    import torch

    kinds = {"Tensor": torch.Tensor, "Module": torch.nn.Module, "Optimizer": torch.optim.Optimizer}
    return isinstance(value, kinds[kind])


def _is_keras_model(value: Any) -> bool:
    return type(value).__module__.split(".")[0] in ("keras", "tf_keras") and hasattr(value, "get_weights")
