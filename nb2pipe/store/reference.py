"""The training data kept with a registered model version: the baseline its served traffic is
tested against for drift, and the data explainers are fitted on.

It is saved the way steps hand values on (:func:`nb2pipe.runtime.step.save_value`) into
``FOLDER/data``; registration logs FOLDER as the run's artifact folder ``reference/``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.runtime.step import VALUE_SIDECAR, StepError, load_value, save_value

REFERENCE_DIR = "reference"
#: the saved value's folder inside REFERENCE_DIR
REFERENCE_VALUE = "data"


def save_reference(example: Any, folder: str | Path) -> Path:
    """Save ``example`` under ``folder`` and return the saved value's folder."""

    target = Path(folder) / REFERENCE_VALUE
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_value(example, str(target), "the training data")
    except StepError as exc:
        raise Nb2PipeError(str(exc)) from exc
    # what a serializer raises for a value it cannot write (pyarrow's errors are ValueErrors and TypeErrors)
    except (pickle.PicklingError, TypeError, ValueError, AttributeError, OSError) as exc:
        raise Nb2PipeError(
            f"a {type(example).__name__} cannot be saved as training data ({exc}); "
            "pass a pandas DataFrame or a numpy array"
        ) from exc
    return target


def load_reference(path: str | Path) -> Any:
    """The value :func:`save_reference` saved: ``path`` is its folder, or the ``reference``
    folder (as downloaded from MLflow) that holds it."""

    location = Path(path)
    if (location / VALUE_SIDECAR).is_file():
        return _loaded(location)
    saved = sorted(child for child in location.glob(f"*/{VALUE_SIDECAR}")) if location.is_dir() else []
    if not saved:
        raise Nb2PipeError(
            f"{path} holds no saved training data ({VALUE_SIDECAR} in it or in a folder in it); "
            "register the model again so its training data is kept"
        )
    chosen = next((item for item in saved if item.parent.name == REFERENCE_VALUE), saved[0])
    if len(saved) > 1 and chosen.parent.name != REFERENCE_VALUE:
        names = ", ".join(item.parent.name for item in saved)
        raise Nb2PipeError(f"{path} holds several saved values ({names}) and none named {REFERENCE_VALUE!r}")
    return _loaded(chosen.parent)


def _loaded(folder: Path) -> Any:
    try:
        return load_value(str(folder))
    except (OSError, ValueError, KeyError, ImportError, EOFError, pickle.UnpicklingError) as exc:
        raise Nb2PipeError(f"cannot read the training data saved in {folder}: {exc}") from exc
