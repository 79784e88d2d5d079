"""The command line on hostile input: outputs checked before anything is written, one JSON
object for every --json outcome, bugs reported in one line with the traceback in a file, a
closed pipe ends quietly, and a sweep of every subcommand with bad arguments that never shows
a traceback."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nb2pipe.files
from nb2pipe.cli import build_parser, main
from tests.support.nbtools import code, notebook, write_notebook

SMALL = notebook(code("x = 1", "step:make"), code("y = x + 1", "step:use"))


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding nb.ipynb; crash reports go to its cache/."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_notebook(tmp_path, SMALL)
    return tmp_path


def _listing(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        for p in sorted(folder.rglob("*"))
        if "cache" not in p.parts
    }


# --- outputs are checked before anything is written --------------------------------------


@pytest.mark.parametrize("spelling", ["nb.ipynb", "./nb.ipynb", "sub/../nb.ipynb", "{folder}/nb.ipynb"])
def test_the_notebook_is_never_its_own_output(spelling: str, folder: Path, capsys: pytest.CaptureFixture[str]):
    (folder / "sub").mkdir()
    before = _listing(folder)
    typed = spelling.format(folder=folder)
    assert main(["compile", "nb.ipynb", "-o", typed]) == 1
    err = capsys.readouterr().err
    assert f"output {typed}: that is the input nb.ipynb" in err and "Traceback" not in err
    assert _listing(folder) == before


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_links_to_the_notebook_are_refused(link: str, folder: Path, capsys: pytest.CaptureFixture[str]):
    (os.link if link == "hard" else os.symlink)("nb.ipynb", "other.yaml")
    before = _listing(folder)
    assert main(["compile", "nb.ipynb", "-o", "other.yaml"]) == 1
    assert "output other.yaml:" in capsys.readouterr().err
    assert _listing(folder) == before


def test_a_planted_symbolic_link_is_refused_not_followed(folder: Path, capsys: pytest.CaptureFixture[str]):
    victim = folder / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, "nb.pipeline.yaml")  # the default output
    assert main(["compile", "nb.ipynb"]) == 1
    assert "is a symbolic link (to " in capsys.readouterr().err
    assert victim.read_text() == "keep me" and (folder / "nb.pipeline.yaml").is_symlink()


def test_output_and_dsl_on_one_file_are_refused(folder: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["compile", "nb.ipynb", "-o", "out.yaml", "--dsl", "./out.yaml"]) == 1
    assert "DSL output ./out.yaml and output out.yaml are the same file" in capsys.readouterr().err
    assert not (folder / "out.yaml").exists()


def test_a_folder_as_dsl_output_fails_before_the_yaml_is_replaced(folder: Path, capsys: pytest.CaptureFixture[str]):
    (folder / "out.yaml").write_text("the previous pipeline")
    (folder / "dsl").mkdir()
    before = _listing(folder)
    assert main(["compile", "nb.ipynb", "-o", "out.yaml", "--dsl", "dsl"]) == 1
    err = capsys.readouterr().err
    assert "DSL output dsl: is a folder" in err and ".tmp" not in err
    assert _listing(folder) == before


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        ("missing/out.yaml", "folder missing does not exist"),
        (".", "is a folder"),
        ("/dev/null", "not a regular file"),
    ],
)
def test_outputs_that_cannot_be_written_name_the_path(
    output: str, needle: str, folder: Path, capsys: pytest.CaptureFixture[str]
):
    before = _listing(folder)
    assert main(["compile", "nb.ipynb", "-o", output]) == 1
    err = capsys.readouterr().err
    assert f"output {output}: " in err and needle in err
    assert _listing(folder) == before


def test_a_folder_without_write_permission_is_named(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    # tests may run as root, whom chmod does not stop: ask os.access what a user would be told
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: Path(p).resolve() != folder / "locked" and real_access(p, mode)
    )
    (folder / "locked").mkdir()
    assert main(["compile", "nb.ipynb", "-o", "locked/out.yaml"]) == 1
    assert "cannot write in folder locked (permission denied)" in capsys.readouterr().err


def test_a_failed_compile_leaves_outputs_untouched(folder: Path, capsys: pytest.CaptureFixture[str]):
    (folder / "out.yaml").write_text("the previous pipeline")
    write_notebook(folder, notebook(code("y = undefined_name", "step:a")), "bad.ipynb")
    before = _listing(folder)
    assert main(["compile", "bad.ipynb", "-o", "out.yaml", "--dsl", "out.py"]) == 1
    assert "undefined-name" in capsys.readouterr().err
    assert _listing(folder) == before


def test_temporary_files_are_new_files_never_a_planted_name(folder: Path, monkeypatch: pytest.MonkeyPatch):
    victim = folder / "victim.txt"
    victim.write_text("keep me")
    names = iter(["planted", "fresh"])
    monkeypatch.setattr(nb2pipe.files.secrets, "token_hex", lambda _: next(names))
    os.symlink(victim, folder / ".out.yaml.planted.tmp")
    nb2pipe.files.write_all_or_nothing({folder / "out.yaml": "new text"})
    assert victim.read_text() == "keep me"
    assert (folder / "out.yaml").read_text() == "new text"
    assert not (folder / ".out.yaml.fresh.tmp").exists()
    mode = stat.S_IMODE((folder / "out.yaml").stat().st_mode)
    assert mode & 0o044, "the output keeps the umask's permissions, not mkstemp's 0600"


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "missing", "stdin", "empty-path"])
def test_notebook_paths_that_are_not_files_are_named(kind: str, folder: Path):
    path = {"device": "/dev/zero", "directory": str(folder), "missing": "gone.ipynb", "stdin": "-", "empty-path": ""}
    if kind == "fifo":
        os.mkfifo(folder / "pipe.ipynb")
    typed = path.get(kind, "pipe.ipynb")
    # a subprocess: a regression would block on the FIFO or read /dev/zero forever
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "compile", typed], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr
    assert typed in done.stderr or kind == "empty-path"
    assert done.stderr.count("\n") <= 8


def test_a_byte_order_mark_is_harmless(folder: Path, capsys: pytest.CaptureFixture[str]):
    (folder / "bom.ipynb").write_bytes(b"\xef\xbb\xbf" + (folder / "nb.ipynb").read_bytes())
    assert main(["compile", "bom.ipynb"]) == 0
    assert (folder / "bom.pipeline.yaml").is_file()


def test_an_r_notebook_is_refused_by_name(folder: Path, capsys: pytest.CaptureFixture[str]):
    r_kernel = {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}}
    write_notebook(folder, notebook(code("x <- 1", "step:a"), metadata=r_kernel), "r.ipynb")
    assert main(["compile", "r.ipynb", "--json"]) == 1
    (diagnostic,) = json.loads(capsys.readouterr().out)["diagnostics"]
    assert diagnostic["code"] == "not-python" and "'R'" in diagnostic["message"]
    assert not (folder / "r.pipeline.yaml").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["deploy", "--name", "x", "--plan", "pipe.json", "--dry-run"],
        ["plan", "--profile", "pipe.json", "--trace", "gone.txt", "--slo-ms", "100"],
    ],
)
def test_json_inputs_that_are_pipes_are_refused_not_read(argv: list[str], folder: Path):
    os.mkfifo(folder / "pipe.json")
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr == "nb2pipe: pipe.json: cannot read it (not a regular file but a pipe, socket or device)\n"


# --- --json: one object in every outcome ---------------------------------------------------

JSON_COMMANDS = {
    "compile": ["compile", "gone.ipynb"],
    "run": ["run", "gone.ipynb"],
    "submit": ["submit", "gone.ipynb"],
    "deploy": ["deploy", "--name", "Bad_Name", "--dry-run"],
    "endpoints": ["endpoints", "--stop", "nothing"],
    "drift": ["drift", "--reference", "gone.csv", "--current", "gone.csv"],
    "explain": ["explain", "gone", "--data", "gone.csv"],
    "retrain": ["retrain", "gone.ipynb"],
    "schedule": ["schedule", "gone.ipynb", "--every", "1h", "--local"],
    "profile": ["profile", "gone", "-o", "missing/p.json"],
    "plan": ["plan", "--profile", "gone.json", "--trace", "gone.txt", "--slo-ms", "100"],
    "simulate": ["simulate", "--profile", "gone.json", "--trace", "gone.txt", "--slo-ms", "100"],
}


def test_every_command_with_json_is_listed():
    assert set(JSON_COMMANDS) == {name for name, parser in _subcommands().items() if "--json" in _options(parser)}


@pytest.mark.parametrize("command", sorted(JSON_COMMANDS))
def test_json_errors_are_one_object(command: str, folder: Path, capsys: pytest.CaptureFixture[str]):
    assert main([*JSON_COMMANDS[command], "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"]["exit_code"] == 1 and report["error"]["message"]


@pytest.mark.parametrize("command", sorted(JSON_COMMANDS))
def test_json_usage_errors_are_one_object(command: str, folder: Path, capsys: pytest.CaptureFixture[str]):
    assert _exit_code([*JSON_COMMANDS[command], "--no-such-option", "--json"]) == 2
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["error"] == {
        "kind": "usage",
        "message": "unrecognized arguments: --no-such-option",
        "exit_code": 2,
    }
    assert "usage: nb2pipe" in captured.err


def test_json_compile_errors_carry_the_diagnostics(folder: Path, capsys: pytest.CaptureFixture[str]):
    write_notebook(folder, notebook(code("x = 1", "retry:2147483648")), "bad.ipynb")
    assert main(["compile", "bad.ipynb", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"]["message"] == "1 error; nothing was written"
    (diagnostic,) = report["diagnostics"]
    assert diagnostic["code"] == "bad-tag" and "at most 2147483647" in diagnostic["message"]


def test_json_abbreviated_and_after_the_notebook(folder: Path, capsys: pytest.CaptureFixture[str]):
    assert _exit_code(["compile", "--js", "gone.ipynb", "--bogus"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["kind"] == "usage"


def test_endpoints_stop_with_json_prints_an_object(folder: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["endpoints", "--stop-all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"stopped": []}


# --- bugs: one line, the traceback in a file ------------------------------------------------


def _crash(*_: object, **__: object) -> None:
    raise ValueError("boom\nsecond line")


def test_a_bug_is_one_line_and_a_saved_traceback(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("nb2pipe.compiler.compile_notebook", _crash)
    assert main(["compile", "nb.ipynb"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "nb2pipe: internal error (ValueError: boom second line); this is a bug — the traceback is in "
    )
    assert line.endswith("; please report it")
    saved = Path(line.split("the traceback is in ")[1].removesuffix("; please report it"))
    assert saved.parent == folder / "cache" / "nb2pipe" / "crashes"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    text = saved.read_text()
    assert "Traceback (most recent call last)" in text and "ValueError: boom" in text and "_crash" in text


def test_a_bug_with_json_is_one_object(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("nb2pipe.compiler.compile_notebook", _crash)
    assert main(["compile", "nb.ipynb", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["kind"] == "internal" and Path(error["traceback_file"]).is_file()


def test_a_bug_is_still_reported_when_the_cache_cannot_be_written(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    (folder / "cache").write_text("a file where the cache folder should be")
    monkeypatch.setattr("tempfile.tempdir", str(folder / "tmp"))
    (folder / "tmp").mkdir()
    monkeypatch.setattr("nb2pipe.compiler.compile_notebook", _crash)
    assert main(["compile", "nb.ipynb"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert f"the traceback is in {folder / 'tmp'}" in line


def test_interrupted_is_130(folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    def interrupt(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("nb2pipe.compiler.compile_notebook", interrupt)
    assert main(["compile", "nb.ipynb", "--json"]) == 130
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"]["exit_code"] == 130 and "interrupted" in captured.err


# --- a reader that went away ----------------------------------------------------------------


def test_a_closed_pipe_ends_quietly(folder: Path):
    reading, writing = os.pipe()
    os.close(reading)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nb2pipe", "compile", "nb.ipynb", "--json"],
            stdout=writing,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writing)
    assert done.returncode == 1 and done.stderr == ""


def test_a_closed_pipe_in_the_middle_of_output_ends_quietly(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    reading, writing = os.pipe()
    os.close(reading)

    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

        def fileno(self) -> int:
            return writing

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    try:
        assert main(["compile", "nb.ipynb", "--json"]) == 1
    finally:
        os.close(writing)
    assert capsys.readouterr().err == ""


def test_a_broken_pipe_that_is_not_stdout_is_a_bug(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    def broken(*_: object, **__: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("nb2pipe.compiler.compile_notebook", broken)
    assert main(["compile", "nb.ipynb"]) == 1
    assert "internal error (BrokenPipeError" in capsys.readouterr().err


# --- the sweep: every subcommand, hostile arguments -------------------------------------------


def _exit_code(argv: list[str]) -> int:
    """main()'s exit code; usage errors raise SystemExit(2), as argparse does."""
    try:
        return main(argv)
    except SystemExit as exit:
        assert isinstance(exit.code, int)
        return exit.code


def _subcommands() -> dict[str, object]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    return dict(commands.choices)


def _options(parser: object) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}  # type: ignore[attr-defined]


#: values that name no usable file, or no usable number
HOSTILE = [
    "gone.ipynb",
    "folder",
    "empty.ipynb",
    "garbage.ipynb",
    "garbage.csv",
    "garbage.json",
    "deep.json",
    "-",
    "",
    "99999999999999999999999",
    "-1",
    "nan",
    "\u00b2",
    "\u0661\u0662",
    "\u2603 snow",
]

#: per subcommand, argument lists with V where a hostile value goes; every list fails fast
#: (nothing starts a server, a pipeline run or a schedule)
SWEEP = {
    "compile": [["V"], ["nb.ipynb", "-o", "V"], ["nb.ipynb", "--dsl", "V"], ["garbage.ipynb", "--name", "V"]],
    "run": [["V"], ["garbage.ipynb", "--parallel", "V"], ["garbage.ipynb", "--workdir", "V"]],
    "submit": [["V"], ["garbage.ipynb", "--host", "V"], ["garbage.ipynb", "--every", "V"]],
    "serve": [["V"], ["gone", "--port", "V"]],
    "deploy": [["V", "--name", "x", "--dry-run"], ["gone", "--name", "V", "--dry-run"], ["--name", "x", "--plan", "V"]],
    "endpoints": [["--workdir", "V"], ["--stop", "V"]],
    "drift": [["--reference", "V", "--current", "V"], ["--reference", "gone", "--current", "gone", "--p-value", "V"]],
    "explain": [["V"], ["gone", "--rows", "V"], ["gone", "--data", "V"]],
    "retrain": [["V"], ["garbage.ipynb", "--payloads", "V"]],
    "schedule": [["V", "--every", "1h", "--local"], ["garbage.ipynb", "--every", "V", "--local"]],
    "profile": [["V", "-o", "p.json"], ["gone", "-o", "V"], ["gone", "--requests", "V", "-o", "p.json"]],
    "plan": [
        ["--profile", "V", "--trace", "V", "--slo-ms", "100"],
        ["--profile", "gone", "--trace", "gone", "--slo-ms", "V"],
    ],
    "simulate": [
        ["--profile", "V", "--trace", "V", "--slo-ms", "100"],
        ["--profile", "gone", "--trace", "gone", "--slo-ms", "1", "--seed", "V"],
    ],
    "autoscale": [
        ["V", "--plan", "V", "--prometheus-url", "http://127.0.0.1:9/", "--once", "--dry-run"],
        ["svc", "--plan", "gone.json", "--prometheus-url", "V", "--once", "--dry-run"],
        ["svc", "--plan", "gone.json", "--prometheus-url", "http://127.0.0.1:9/", "--interval", "V", "--once"],
    ],
}


def test_the_sweep_covers_every_subcommand():
    assert set(SWEEP) == set(_subcommands())


def test_no_subcommand_shows_a_traceback(folder: Path, capsys: pytest.CaptureFixture[str]):
    (folder / "folder").mkdir()
    (folder / "empty.ipynb").write_text("")
    for name in ("garbage.ipynb", "garbage.csv", "garbage.json"):
        (folder / name).write_bytes(b"\x00\xff{ not json")
    (folder / "deep.json").write_text("[" * 100_000)
    wants_json = {name for name, parser in _subcommands().items() if "--json" in _options(parser)}
    started = time.monotonic()
    problems = []
    for command, templates in SWEEP.items():
        for template in templates:
            for value in HOSTILE:
                argv = [command, *(value if part == "V" else part for part in template)]
                for as_json in (False, True) if command in wants_json else (False,):
                    code = _exit_code([*argv, "--json"] if as_json else argv)
                    captured = capsys.readouterr()
                    shown = f"{argv}{' --json' if as_json else ''}: exit {code}: {captured.err[-300:]!r}"
                    if code not in (0, 1, 2, 130) or "Traceback" in captured.err or "internal error" in captured.err:
                        problems.append(shown)
                    if as_json and code != 0:
                        try:
                            assert isinstance(json.loads(captured.out)["error"]["message"], str)
                        except (ValueError, KeyError, TypeError, AssertionError):
                            problems.append(f"{shown}: stdout is not one JSON error: {captured.out[:200]!r}")
    assert not problems, "\n".join(problems)
    assert time.monotonic() - started < 120


def test_nb2pipe_warnings_print_as_one_line_and_others_keep_pythons_format(capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from nb2pipe.cli.failures import own_warnings_as_lines
    from nb2pipe.store.payloads import PayloadLogWarning

    with warnings.catch_warnings(record=True) as passed_on:  # what Python's own showwarning gets
        shown_before = warnings.showwarning
        with own_warnings_as_lines():
            warnings.simplefilter("always")
            warnings.warn("payload log p.jsonl: skipped 1 torn line", PayloadLogWarning, stacklevel=1)
            warnings.warn("a library's warning", DeprecationWarning, stacklevel=1)
        assert warnings.showwarning is shown_before
    assert capsys.readouterr().err == "nb2pipe: warning: payload log p.jsonl: skipped 1 torn line\n"
    assert [(w.category, str(w.message)) for w in passed_on] == [(DeprecationWarning, "a library's warning")]
