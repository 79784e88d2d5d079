"""nb2pipe: tagged Jupyter notebooks -> Kubeflow Pipelines v2, run locally or on a cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nb2pipe.version import __version__

__all__ = ["CompileError", "Nb2PipeError", "__version__", "compile_notebook", "compile_source"]

if TYPE_CHECKING:
    from nb2pipe.compiler import compile_notebook, compile_source
    from nb2pipe.errors import CompileError, Nb2PipeError


def __getattr__(name: str) -> Any:
    # The public API is loaded on first use so `import nb2pipe` (and the CLI) stays light.
    if name in ("compile_notebook", "compile_source"):
        from nb2pipe import compiler

        return getattr(compiler, name)
    if name in ("CompileError", "Nb2PipeError"):
        from nb2pipe import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'nb2pipe' has no attribute {name!r}")
