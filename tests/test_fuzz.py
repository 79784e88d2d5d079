"""Fuzzing the compiler: thousands of seeded mutants of the examples (tests/support/mutants.py, judged
by tests/support/mutant_judge.py) either compile or fail with nb2pipe's own diagnostics, quickly, and a
failed compile leaves the output folder as it was. A failure lists every failing class with its count, then one
mutant of each class (seed, number, mutations, notebook JSON, traceback); replay one with
``python bench/fuzz.py --seed SEED --show N``."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from nb2pipe.errors import CompileError, Location, error, warning
from tests.support import mutant_judge
from tests.support.mutant_judge import (
    SLOW_SECONDS,
    Outcome,
    diagnostic_problems,
    failure_report,
    run_many,
    run_mutant,
    write_notebook_file,
)
from tests.support.mutants import make_mutant

SEED = 20261204
COUNT = 2500
#: the fast tier (``make check``) judges the first tenth; the full count runs with the slow tests
FAST_COUNT = 250
#: file-level mutants the CLI compiles in a subprocess
CLI_MUTANTS = 10


def _figures(outcomes: list[Outcome], elapsed: float) -> str:
    seconds = sorted(o.seconds for o in outcomes)
    statuses = Counter(o.status for o in outcomes)
    return (
        f"{len(outcomes)} mutants in {elapsed:.1f} s ({dict(statuses)}); per mutant median "
        f"{statistics.median(seconds) * 1000:.0f} ms, p99 {seconds[int(len(seconds) * 0.99)] * 1000:.0f} ms, "
        f"max {seconds[-1]:.2f} s wall-clock, {max(o.cpu_seconds for o in outcomes):.2f} s CPU"
    )


@pytest.mark.parametrize(
    "count", [pytest.param(FAST_COUNT, id="fast"), pytest.param(COUNT, id="full", marks=pytest.mark.slow)]
)
def test_mutants_compile_or_fail_with_diagnostics_and_leave_outputs_alone(tmp_path: Path, count: int) -> None:
    start = time.perf_counter()
    outcomes = run_many(SEED, list(range(count)), tmp_path, workers=2)
    figures = _figures(outcomes, time.perf_counter() - start)
    print(figures)
    report = failure_report(outcomes)
    assert not report, f"{figures}\n{report}"
    # the run reached every outcome, so a broken generator cannot pass by compiling nothing
    statuses = Counter(o.status for o in outcomes)
    assert statuses["compiled"] >= count // 20 and statuses["diagnostics"] >= count // 4, figures
    assert sum(o.file_edge for o in outcomes) >= count // 12, figures
    assert max(o.cpu_seconds for o in outcomes) <= SLOW_SECONDS
    assert not list(tmp_path.iterdir()), "every mutant's folder is cleaned up"


def test_mutants_are_reproducible_from_seed_and_number() -> None:
    first = [make_mutant(SEED, number) for number in range(40)]
    assert first == [make_mutant(SEED, number) for number in range(40)]
    assert len({m.content for m in first if not isinstance(m.content, bytes)}) > 30
    forced = make_mutant(SEED, 3, file_level=True)
    assert forced.file_edge and forced.mutations[:-1] == make_mutant(SEED, 3, file_level=False).mutations


def test_the_judge_catches_crashes_bad_diagnostics_and_files_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks themselves can fail: a crash, a diagnostic naming another file, and a failed
    compile that leaves a file behind are each reported as a failure class."""
    import nb2pipe.compiler

    number = next(n for n in range(100) if make_mutant(SEED, n).file_edge and make_mutant(SEED, n).content)
    notebook = mutant_judge._notebook_path(make_mutant(SEED, number), tmp_path)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    def litter(path: Path, **kwargs: object) -> None:
        (Path(path).parent / ".stray.tmp").write_text("half")
        raise CompileError((error("syntax-error", "bad", Location(str(notebook), 1, None, 2)),))

    monkeypatch.setattr(nb2pipe.compiler, "compile_notebook", crash)
    assert run_mutant(SEED, number, tmp_path).failure.startswith("KeyError at outside nb2pipe")
    monkeypatch.setattr(nb2pipe.compiler, "compile_notebook", litter)
    littered = run_mutant(SEED, number, tmp_path)
    assert littered.failure.startswith("failed compile left new files (at "), littered.failure
    assert "— ['.stray.tmp']" in littered.detail
    assert f"mutant {number}" in littered.detail and "Traceback" in littered.detail
    assert "1 of 1 mutants failed, in 1 classes:\n      1 x failed compile" in failure_report([littered])

    wrong_file = (warning("foreign-tag", "m", Location("other.ipynb")), error("x", "m", Location("nb.ipynb", -1)))
    assert diagnostic_problems(wrong_file, "nb.ipynb", failed=True) == [
        "diagnostic [foreign-tag] names the notebook wrongly, not as given — 'other.ipynb'",
        "diagnostic [x] has cell -1",
    ]
    assert diagnostic_problems((), "nb.ipynb", failed=True) == ["CompileError with no diagnostics"]


def test_cli_prints_no_traceback_for_broken_files(tmp_path: Path) -> None:
    """``nb2pipe compile`` on file-level mutants (truncated JSON, bytes that are not UTF-8, a
    folder in place of the notebook...) exits 0, 1 or 2 and prints no traceback."""
    runs = []
    for number in range(CLI_MUTANTS):
        mutant = make_mutant(SEED, number, file_level=True)
        folder = tmp_path / f"cli-{number}"
        folder.mkdir()
        notebook = write_notebook_file(mutant, folder)
        args = [sys.executable, "-m", "nb2pipe", "compile", str(notebook)]
        args += ["--dsl", str(folder / "dsl.py")] if mutant.options.get("dsl") else []
        args += ["--monitoring"] if mutant.options.get("monitoring") else []
        args += [f"--name={mutant.options['name']}"] if "name" in mutant.options else []
        args += [f"--image={mutant.options['image']}"] if "image" in mutant.options else []
        args += ["--json"] if number % 2 else []
        runs.append((mutant, args))
    problems = []
    for batch in range(0, len(runs), 2):  # two at a time: the machine has two cores
        started = [
            (mutant, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for mutant, args in runs[batch : batch + 2]
        ]
        for mutant, process in started:
            out, err = process.communicate(timeout=60)
            if (
                "Traceback" in err + out
                or process.returncode not in (0, 1, 2)
                or (process.returncode and not (err + out).strip())
            ):
                problems.append(f"exit {process.returncode}: {mutant.describe(300)}\n  stderr: {err[-2000:]}")
    assert not problems, "\n\n".join(problems)
