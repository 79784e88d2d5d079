"""Compiling a mutant (tests/support/mutants.py) and judging what happened, for the fuzz test
(tests/test_fuzz.py) and bench/fuzz.py.

:func:`run_mutant` compiles one mutant, in-process (``compile_source``) or through real files
(``compile_notebook``), stopping a hang, and returns an :class:`Outcome`: it compiled, failed with
diagnostics or a usage error, or failed the judge — a crash, diagnostics without a code or
naming another notebook, outputs that do not load or compile, files a failed compile left or
changed, too much CPU time. :func:`run_many` runs many in forked processes and
:func:`failure_report` groups the failures by class.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.mutants import ROOT, Mutant, make_mutant

# --- compiling a mutant and judging what happened -----------------------------------------------

#: a mutant whose compile takes more CPU time than this is a failure (CPU time, not wall-clock:
#: other processes on a busy machine stretch the wall-clock time) ...
SLOW_SECONDS = 10.0
#: ... and one still compiling after this much wall-clock time is stopped as a hang
HANG_SECONDS = 60.0
_PREVIOUS = b"previous output, must survive a failed compile\n"


@dataclass(frozen=True)
class Outcome:
    """What compiling one mutant did. ``status`` is ``compiled``, ``diagnostics`` (a
    CompileError), ``usage-error`` (another Nb2PipeError) or ``failure``; a failure's
    ``failure`` is its class, one line, and ``detail`` shows the mutant and the traceback."""

    seed: int
    number: int
    status: str
    seconds: float
    cpu_seconds: float
    file_edge: bool
    codes: tuple[str, ...] = ()
    failure: str = ""
    detail: str = ""


class MutantTimeout(BaseException):
    """Raised by the alarm in a hanging compile; not an Exception, so nb2pipe cannot swallow it."""


def _site(exc: BaseException) -> str:
    """Where ``exc`` was raised: the innermost nb2pipe frame, and the innermost frame when that
    is elsewhere (``json/decoder.py:raw_decode``)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    package = str(ROOT / "nb2pipe")
    ours = [f for f in frames if f.filename.startswith(package)]
    site = f"{Path(ours[-1].filename).relative_to(ROOT)}:{ours[-1].name}" if ours else "outside nb2pipe"
    if frames and (not ours or frames[-1] is not ours[-1]):
        site += f" (in {Path(frames[-1].filename).name}:{frames[-1].name})"
    return site


def _trace(exc: BaseException, lines: int = 30) -> str:
    import traceback

    text = "".join(traceback.format_exception(exc)).rstrip().splitlines()
    shown = text[-lines:] if len(text) > lines else text
    return "\n".join(("    ..." if len(text) > lines else "", *("    " + line for line in shown))).lstrip("\n")


def diagnostic_problems(diagnostics: Any, notebook: str, *, failed: bool) -> list[str]:
    """What is wrong with a compile's diagnostics: each needs a code and a location naming
    ``notebook`` (cell counted from 0, line from 1), and a failed compile needs an error."""
    from nb2pipe.errors import Diagnostic, Severity

    problems = []
    if failed and not diagnostics:
        problems.append("CompileError with no diagnostics")
    elif failed and not any(d.severity is Severity.ERROR for d in diagnostics):
        problems.append(f"CompileError with warnings only — {sorted({d.code for d in diagnostics})}")
    for d in diagnostics:
        if not isinstance(d, Diagnostic) or not isinstance(d.code, str) or not d.code:
            problems.append(f"diagnostic without a code — {d!r}"[:200])
            continue
        where = d.location
        if where.notebook != notebook:
            how = "by its file name only" if where.notebook == Path(notebook).name else "wrongly"
            problems.append(f"diagnostic [{d.code}] names the notebook {how}, not as given — {where.notebook!r}")
        if where.cell is not None and (not isinstance(where.cell, int) or where.cell < 0):
            problems.append(f"diagnostic [{d.code}] has cell {where.cell!r}")
        if where.line is not None and (not isinstance(where.line, int) or where.line < 1):
            problems.append(f"diagnostic [{d.code}] has line {where.line!r}")
        try:
            json.dumps(d.to_json())
            d.format()
        except Exception as exc:
            problems.append(f"diagnostic [{d.code}] does not print: {type(exc).__name__}")
    return problems


def output_problems(compiled: Any) -> list[str]:
    """What is wrong with a compile's outputs: the YAML must load, each step's component
    function and the DSL file (when made) must compile as Python."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        spec = next(yaml.load_all(compiled.yaml, Loader=loader))
        executors = spec["deploymentSpec"]["executors"]
    except Exception as exc:
        return [f"the pipeline YAML does not load: {type(exc).__name__}"]
    problems = []
    for executor in executors.values():
        container = executor.get("container", {})
        args, command = container.get("args", []), container.get("command", [])
        if "--function_to_execute" not in args or not command:
            continue
        function = args[args.index("--function_to_execute") + 1]
        program = command[-1]
        start = program.find(f"\ndef {function}(")
        try:  # the component function alone: the runtime above it is the same in every step
            compile(program[start:] if start >= 0 else program, f"<component {function}>", "exec")
        except (SyntaxError, ValueError) as exc:
            problems.append(f"a step's component function does not compile: {type(exc).__name__} — {exc}")
    if compiled.dsl is not None:
        problems += _dsl_problems(compiled.dsl)
    return problems


def _dsl_problems(text: str) -> list[str]:
    """The DSL file must compile, and no function in it may rebind a name it imports or
    another function (a step named ``dsl`` would hide ``kfp.dsl`` from the code below it)."""
    try:
        compile(text, "<dsl>", "exec")
    except (SyntaxError, ValueError) as exc:
        return [f"the DSL file does not compile: {type(exc).__name__} — {exc}"]
    tree = ast.parse(text)
    seen: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            seen.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef):
            if node.name in seen:
                return [f"a DSL function rebinds a name defined above it — {node.name!r}"]
            seen.add(node.name)
    return []


def _listing(folder: Path) -> dict[str, bytes | None]:
    return {p.name: (p.read_bytes() if p.is_file() else None) for p in sorted(folder.iterdir())}


def write_notebook_file(mutant: Mutant, folder: Path) -> Path:
    """The mutant's notebook as a file in ``folder`` (a folder of that name when the mutant has
    no content: the "folder instead of a file" mutation); its path."""
    notebook = folder / Path(mutant.path).name
    if mutant.content is None:
        notebook.mkdir()
    else:
        content = mutant.content
        notebook.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return notebook


def _compile(mutant: Mutant, scratch: Path | None) -> tuple[Any, str, list[str]]:
    """Compile the mutant; return the result, the notebook path diagnostics must name, and
    (file edge) what is wrong with the folder afterwards. Exceptions propagate, with the
    folder check attached as ``exc.folder_problems``."""
    from nb2pipe.compiler import compile_notebook, compile_source, default_output

    options = dict(mutant.options)
    if not mutant.file_edge:
        assert isinstance(mutant.content, str)
        dsl = "pipeline.yaml" if options.pop("dsl", False) else None
        return compile_source(mutant.content, mutant.path, dsl_yaml_name=dsl, **options), mutant.path, []
    assert scratch is not None
    folder = scratch / f"mutant-{mutant.seed}-{mutant.number}"
    folder.mkdir()
    notebook = write_notebook_file(mutant, folder)
    kind = mutant.output_kind
    target = {
        "default": default_output(notebook, bool(options.get("monitoring"))),
        "the notebook": notebook,
        "in a missing folder": folder / "missing" / "out.yaml",
    }.get(kind, folder / "out.yaml")
    dsl_target = folder / "pipeline_dsl.py" if options.pop("dsl", False) else None
    if kind == "a folder":
        target.mkdir()
    for previous in (target, dsl_target):
        if previous is not None and mutant.previous_outputs and not previous.exists() and previous.parent.is_dir():
            previous.write_bytes(_PREVIOUS)
    before = _listing(folder)
    try:
        result = compile_notebook(notebook, output=None if kind == "default" else target, dsl=dsl_target, **options)
    except BaseException as exc:
        after = _listing(folder)
        added = sorted(set(after) - set(before))
        changed = sorted(name for name in before if after.get(name, b"") != before[name])
        exc.folder_problems = (  # type: ignore[attr-defined]
            ([f"failed compile left new files — {added}"] if added else [])
            + ([f"failed compile changed or removed files — {changed}"] if changed else [])
        )
        raise
    if kind in ("the notebook", "a folder", "in a missing folder"):
        return result, str(notebook), [f"compile wrote to an output path it cannot use — {kind}"]
    after = _listing(folder)
    written = {target.name} | ({dsl_target.name} if dsl_target else set())
    problems = [f"compile wrote unexpected files — {sorted(set(after) - set(before) - written)}"]
    problems = problems if set(after) - set(before) - written else []
    if not after.get(target.name) or after.get(target.name) == _PREVIOUS:
        problems.append("compile succeeded but the pipeline file is missing, empty or old")
    if result.output != target:
        problems.append(f"compile reports another output than asked — {result.output}, not {target}")
    return result, str(notebook), problems


def run_mutant(seed: int, number: int, scratch: Path | None = None) -> Outcome:
    """Build mutant ``number`` of ``seed``, compile it (stopped after :data:`HANG_SECONDS`) and
    judge the outcome. File-edge mutants work in a folder of their own under ``scratch``."""
    import shutil
    import signal
    import threading
    import time

    from nb2pipe.errors import CompileError, Nb2PipeError

    try:
        mutant = make_mutant(seed, number)
    except Exception as exc:  # the fuzzer's own bug: reported like a failure, so a long run still ends
        return Outcome(seed, number, "failure", 0.0, 0.0, False, (), f"fuzzer bug: {type(exc).__name__}", _trace(exc))
    alarm = threading.current_thread() is threading.main_thread()

    def stop(signum: int, frame: Any) -> None:
        raise MutantTimeout(f"still compiling after {HANG_SECONDS} s")

    if alarm:
        previous_handler = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    start, cpu_start = time.perf_counter(), time.process_time()
    problems: list[str] = []
    codes: tuple[str, ...] = ()
    caught: BaseException | None = None
    try:
        result, notebook, problems = _compile(mutant, scratch)
        status = "compiled"
        compiled = result.compiled if mutant.file_edge else result
        problems += diagnostic_problems(compiled.warnings, notebook, failed=False) + output_problems(compiled)
    except CompileError as exc:
        status, caught = "diagnostics", exc
        codes = tuple(d.code for d in exc.diagnostics)
        expected = mutant.path if not mutant.file_edge else str(_notebook_path(mutant, scratch))
        problems = [*diagnostic_problems(exc.diagnostics, expected, failed=True), *_folder_problems(exc)]
        try:
            str(exc)
        except Exception as printing:
            problems.append(f"CompileError does not print: {type(printing).__name__}")
    except Nb2PipeError as exc:
        status, caught = "usage-error", exc
        problems = [*(["Nb2PipeError with an empty message"] if not str(exc).strip() else []), *_folder_problems(exc)]
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        status, caught = "failure", exc
        kind = "hang" if isinstance(exc, MutantTimeout) else type(exc).__name__
        problems = [f"{kind} at {_site(exc)}", *_folder_problems(exc)]
    finally:
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_handler)
        if mutant.file_edge and scratch is not None:
            shutil.rmtree(scratch / f"mutant-{seed}-{number}", ignore_errors=True)
    if cpu_seconds > SLOW_SECONDS:
        problems.append(f"slow: over {SLOW_SECONDS:.0f} s of CPU time")
    if not problems:
        return Outcome(seed, number, status, seconds, cpu_seconds, mutant.file_edge, codes)
    if status != "failure" and caught is not None:
        problems = [_at(problem, _site(caught)) for problem in problems]
    detail = mutant.describe() + (f"\n  {status}: {type(caught).__name__}: {str(caught)[:500]}" if caught else "")
    if caught is not None:
        detail += "\n" + _trace(caught)
    detail += f"\n  all problems: {problems}"
    failure = problems[0].split(" — ")[0]  # the class; what follows the dash is this mutant's own
    return Outcome(seed, number, "failure", seconds, cpu_seconds, mutant.file_edge, codes, failure, detail)


def _at(problem: str, site: str) -> str:
    """``problem`` with the site in its class part: ``CLASS (at SITE) — SPECIFICS``."""
    head, dash, rest = problem.partition(" — ")
    return f"{head} (at {site}){dash}{rest}"


def _notebook_path(mutant: Mutant, scratch: Path | None) -> Path:
    assert scratch is not None
    return scratch / f"mutant-{mutant.seed}-{mutant.number}" / Path(mutant.path).name


def _folder_problems(exc: BaseException) -> list[str]:
    return list(getattr(exc, "folder_problems", []))


def _run_chunk(job: tuple[int, list[int], str | None]) -> list[Outcome]:
    seed, numbers, scratch = job
    return [run_mutant(seed, number, Path(scratch) if scratch else None) for number in numbers]


def run_many(seed: int, numbers: list[int], scratch: Path, workers: int = 2) -> list[Outcome]:
    """Run mutants in ``workers`` forked processes (inline when 1), in number order."""
    if workers <= 1:
        return _run_chunk((seed, numbers, str(scratch)))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = max(1, min(100, len(numbers) // (workers * 8)))
    jobs = [(seed, numbers[i : i + size], str(scratch)) for i in range(0, len(numbers), size)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return [outcome for chunk in pool.map(_run_chunk, jobs) for outcome in chunk]


def failure_report(outcomes: list[Outcome], examples_per_class: int = 1) -> str:
    """One line per failing class with its count, then an example mutant of each class."""
    from collections import Counter

    failures = [o for o in outcomes if o.status == "failure"]
    if not failures:
        return ""
    counts = Counter(o.failure for o in failures)
    lines = [f"{len(failures)} of {len(outcomes)} mutants failed, in {len(counts)} classes:"]
    lines += [f"  {count:5d} x {failure}" for failure, count in counts.most_common()]
    for failure, _ in counts.most_common():
        examples = [o for o in failures if o.failure == failure][:examples_per_class]
        for outcome in examples:
            lines += ["", f"=== {failure}", outcome.detail]
    return "\n".join(lines)
