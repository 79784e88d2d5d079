"""The order two native libraries must load in: triton before TensorFlow.

TensorFlow >= 2.20 loads its LLVM with ``RTLD_GLOBAL``; triton (PyTorch's kernel compiler, which
PyPI's Linux wheel of torch installs) imported after it crashes the process with a segmentation
fault (tensorflow#124205). Nothing needs to use both for it to happen: ``import alibi.explainers``
and ``import alibi_detect.cd`` load TensorFlow and then transformers, which imports
``torch._dynamo`` and so triton whenever torch is installed. Measured here with TF 2.21 and
torch 2.14.1: exit code 139 for either import; none after ``import triton``.

Every place in nb2pipe that loads TensorFlow (alibi, alibi-detect, Keras models through MLflow)
calls :func:`load_triton_before_tensorflow` first. It costs one import of triton (~0.2 s) where
torch is installed, nothing elsewhere.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def load_triton_before_tensorflow() -> None:
    """Import triton now if it is installed and TensorFlow is not loaded yet (else nothing to do:
    too late, or no conflict)."""
    if "tensorflow" in sys.modules or "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    importlib.import_module("triton")
