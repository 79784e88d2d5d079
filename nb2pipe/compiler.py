"""Compiling a notebook: the pure chain ``read -> layout -> plan -> emit`` and the file edge.

:func:`compile_source` does no I/O. :func:`compile_notebook` reads the notebook and writes
the outputs, all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from nb2pipe.analysis.magics import gc_paused
from nb2pipe.environment import notebook_server_image, packaging_for
from nb2pipe.errors import CompileError, Diagnostic, Location, Nb2PipeError, error
from nb2pipe.files import Output, check_outputs, read_regular_file, write_all_or_nothing
from nb2pipe.ir import PackageIndex, Packaging, PipelinePlan
from nb2pipe.notebook.layout import build_layout
from nb2pipe.notebook.pipeline_settings import index_url_problem, trusted_host_problem, untrusted_http_urls
from nb2pipe.notebook.read import parse_notebook
from nb2pipe.plan import build_plan
from nb2pipe.plan.compose import Composer


@dataclass(frozen=True)
class CompiledPipeline:
    plan: PipelinePlan
    yaml: str
    dsl: str | None = None

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return self.plan.warnings


@dataclass(frozen=True)
class CompileResult:
    compiled: CompiledPipeline
    output: Path
    dsl_output: Path | None


def plan_source(
    text: str,
    path: str,
    *,
    name: str | None = None,
    image: str | None = None,
    fallback_image: str | None = None,
    package_index: PackageIndex | None = None,
) -> PipelinePlan:
    """Notebook JSON text -> plan, raising :class:`CompileError` with every problem found.
    ``package_index`` (``--pip-index-url``, ``--pip-trusted-host``) wins over the notebook's
    ``metadata.nb2pipe.pip_index_urls`` / ``pip_trusted_hosts``, list by list."""
    notebook = parse_notebook(text, path)
    try:
        layout, diagnostics = build_layout(notebook, name=name, image=image, fallback_image=fallback_image)
        plan = build_plan(layout, diagnostics, Composer(_read_child))
    except RecursionError:  # code Python parses but the analysis walks recursively, e.g. 600 elifs
        raise CompileError(
            (
                error(
                    "syntax-error",
                    "the code is nested too deeply for nb2pipe's analysis",
                    Location(path),
                    "break deeply nested code (a long elif chain, a huge expression) into several statements",
                ),
            )
        ) from None
    return replace(plan, package_index=chosen_index(package_index, layout.settings.package_index))


def _read_child(path: str) -> str:
    """A ``notebook:`` cell's notebook: the one file read while planning."""
    return read_notebook_text(Path(path))


def chosen_index(given: PackageIndex | None, notebook: PackageIndex) -> PackageIndex:
    """``given`` (from the command line or a caller) over the notebook's index, list by list;
    a value pip cannot use, or must not see in a pipeline file, is refused."""
    if given is None:
        return notebook
    for problem in [*map(index_url_problem, given.urls), *map(trusted_host_problem, given.trusted_hosts)]:
        if problem is not None:
            raise Nb2PipeError(f"{problem[0]}; {problem[1]}")
    chosen = PackageIndex(given.urls or notebook.urls, given.trusted_hosts or notebook.trusted_hosts)
    untrusted = untrusted_http_urls(chosen)
    if untrusted:
        host = urlsplit(untrusted[0]).netloc
        raise Nb2PipeError(
            f"pip skips the index {untrusted[0]!r}: an http:// index must be a trusted host; add "
            f"--pip-trusted-host {host}, or serve the index over https"
        )
    return chosen


def compile_source(
    text: str,
    path: str,
    *,
    name: str | None = None,
    image: str | None = None,
    dsl_yaml_name: str | None = None,
    packaging: Callable[[PipelinePlan], Packaging] | None = None,
    fallback_image: str | None = None,
    monitoring: bool = False,
    package_index: PackageIndex | None = None,
) -> CompiledPipeline:
    """Notebook JSON text -> KFP IR YAML (and the DSL text when ``dsl_yaml_name`` is set).

    ``packaging`` pins a plan's imports (see :func:`nb2pipe.environment.packaging_for`);
    without it steps run ``python:3.11`` with only their declared packages. ``monitoring``
    compiles the notebook's monitoring pipeline instead (see
    :func:`nb2pipe.plan.monitoring.monitoring_plan`), which has no DSL file. ``package_index``:
    see :func:`plan_source`.
    """
    from nb2pipe.emit.kfp import emit_pipeline_yaml

    # a compile makes millions of short-lived, acyclic objects for a big cell: the cycle
    # collector's passes over them would cost more than the compile itself
    with gc_paused():
        plan = plan_source(
            text, path, name=name, image=image, fallback_image=fallback_image, package_index=package_index
        )
        if monitoring:
            from nb2pipe.plan.monitoring import monitoring_plan

            plan = monitoring_plan(plan, path)
            dsl_yaml_name = None
        packages = packaging(plan) if packaging else None
        dsl = None
        if dsl_yaml_name is not None:
            from nb2pipe.emit.dsl_text import emit_dsl_text

            dsl = emit_dsl_text(plan, dsl_yaml_name, packages)
        return CompiledPipeline(plan, emit_pipeline_yaml(plan, packages), dsl)


def environment_packaging(base_image: str | None = None) -> Callable[[PipelinePlan], Packaging]:
    """Pin a plan's imports to this environment's installed versions."""

    def pin(plan: PipelinePlan) -> Packaging:
        return packaging_for(plan.modules, base_image)

    return pin


def compile_with_environment(
    text: str,
    path: str,
    *,
    name: str | None = None,
    image: str | None = None,
    base_image: str | None = None,
    dsl_yaml_name: str | None = None,
    monitoring: bool = False,
    package_index: PackageIndex | None = None,
) -> CompiledPipeline:
    """Compile for a cluster: steps with no image named anywhere run the Kubeflow notebook
    server's own image when compiled inside one, else ``base_image`` plus the notebook's
    imports pinned to the versions installed here."""

    return compile_source(
        text,
        path,
        name=name,
        image=image,
        dsl_yaml_name=dsl_yaml_name,
        packaging=environment_packaging(base_image),
        fallback_image=None if image else notebook_server_image(),
        monitoring=monitoring,
        package_index=package_index,
    )


def default_output(notebook: Path, monitoring: bool = False) -> Path:
    stem = notebook.name[: -len(".ipynb")] if notebook.name.endswith(".ipynb") else notebook.stem
    return notebook.with_name(f"{stem}{'.monitor' if monitoring else ''}.pipeline.yaml")


def read_notebook_text(path: Path) -> str:
    """The notebook file's text; errors name the path. A pipe or a device is refused rather
    than read (the read would wait for a writer, or never end)."""
    if str(path) == "-":
        raise Nb2PipeError("-: notebooks are not read from standard input; give the .ipynb file's path")
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        raise Nb2PipeError(f"{path}: no such notebook; check the path") from None
    except IsADirectoryError:
        raise Nb2PipeError(f"{path}: is a directory, not a notebook file") from None
    except OSError as exc:
        raise Nb2PipeError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as some Windows editors write, is harmless
    except UnicodeDecodeError as exc:
        raise CompileError(
            (
                error(
                    "invalid-notebook",
                    f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                    Location(str(path)),
                    "notebooks are UTF-8 JSON files",
                ),
            )
        ) from None


def compile_notebook(
    notebook: str | Path,
    *,
    output: str | Path | None = None,
    dsl: str | Path | None = None,
    name: str | None = None,
    image: str | None = None,
    base_image: str | None = None,
    monitoring: bool = False,
    package_index: PackageIndex | None = None,
) -> CompileResult:
    """Compile a notebook file (see :func:`compile_with_environment`); write the IR YAML
    (default ``NB.pipeline.yaml`` beside it) and optionally the DSL file. The outputs are
    checked first (never over the notebook or each other, see :func:`check_outputs`), and
    nothing is written if compilation fails."""
    if str(notebook) == "":
        raise Nb2PipeError("no notebook given (the path is empty)")
    path = Path(notebook)
    target = Path(output) if output else default_output(path, monitoring)
    dsl_target = Path(dsl) if dsl else None
    outputs: list[Output] = [("output", output or target)]
    if dsl:
        outputs.append(("DSL output", dsl))
    text = read_notebook_text(path)
    check_outputs(outputs, inputs=[notebook])
    compiled = compile_with_environment(
        text,
        str(path),
        name=name,
        image=image,
        base_image=base_image,
        dsl_yaml_name=target.name if dsl_target else None,
        monitoring=monitoring,
        package_index=package_index,
    )
    files = {target: compiled.yaml}
    if dsl_target is not None and compiled.dsl is not None:
        files[dsl_target] = compiled.dsl
    write_all_or_nothing(files)
    return CompileResult(compiled, target, dsl_target)
