"""The warm path in a step's own process (forked from the run's fork server, :mod:`nb2pipe.runners.warm`):
kfp.local's subprocess call replaced by a fork of this process that runs KFP's executor, where the
command is exactly nb2pipe's compiled one and would install nothing."""

from __future__ import annotations

import atexit
import builtins
import logging
import os
import shlex
import shutil
import sys
import tempfile
import traceback
from typing import Any

_EXECUTOR_MODULE = "kfp.dsl.executor_main"
_EXEC_LINE = '"$0" "$@"'
#: print() before kfp.local swaps in its indenting one for a task's lifetime
_PRINT = builtins.print


def run_command_here(full_command: list[str], env_vars: dict[str, str] | None, cold: Any) -> int:
    """kfp.local's ``run_local_subprocess``, forked from this process where ``full_command`` is
    exactly nb2pipe's compiled command and none of its package checks would install anything; the
    command through ``cold`` (a new process, as kfp.local runs it) otherwise. The executor runs in a
    process of its own either way: kfp.local sees its exit code, whatever the step's code does
    (``os._exit``, a crash), and says so in the step's log as it would."""
    parts = _compiled_parts(full_command)
    if parts is None or not _packages_present(parts[0]):
        return int(cold(full_command=full_command, env_vars=env_vars))
    _, source, arguments = parts
    program = tempfile.mkdtemp()
    module_path = os.path.join(program, "ephemeral_component.py")
    with open(module_path, "w", encoding="utf-8") as handle:
        handle.write(source)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.environ.update(env_vars or {})
            os.environ["_KFP_RUNTIME"] = "true"
            os.environ["NB2PIPE_FAST_EXIT"] = "0"  # this fork ends fast anyway, with the executor's own code
            # the exit handlers this process inherited are the runner's and its server's (a runner's
            # temporary folder removed...): not the step's to run; those the step registers run below
            atexit._clear()
            _fresh_random_state()
            code = _execute_component([_EXECUTOR_MODULE, "--component_module_path", module_path, *arguments])
            atexit._run_exitfuncs()  # as a cold step's process does at its end
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    shutil.rmtree(program, ignore_errors=True)
    _PRINT("\n", flush=True)  # kfp.local ends a step's log so
    return code


def _fresh_random_state() -> None:
    """Give this step its own random numbers, as a new interpreter has: Python's ``random``
    reseeds itself after a fork, NumPy's global generator does not, so every step forked from
    one server would draw the same unseeded ``np.random`` numbers (and scikit-learn's
    ``random_state=None`` with them). A seed the notebook sets runs after this, in its code."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _execute_component(argv: list[str]) -> int:
    """What ``python -m kfp.dsl.executor_main ARGS`` does, in this (forked) process."""
    sys.argv = argv
    sys.path.insert(0, os.getcwd())  # as ``python -m`` puts the current folder first
    # as in a new process: kfp.local's task logger and its indenting print() stay outside the step
    logging.root.handlers.clear()
    logging.root.setLevel(logging.WARNING)
    builtins.print = _PRINT
    try:
        from kfp.dsl import executor_main

        executor_main.executor_main()
    except SystemExit as end:
        return end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _compiled_parts(command: list[str]) -> tuple[str, str, list[str]] | None:
    """(install script, component source, executor arguments) of nb2pipe's compiled command."""
    from nb2pipe.emit.kfp import launch_script

    if len(command) < 7 or command[:2] != ["sh", "-c"] or command[3:5] != ["sh", "-ec"]:
        return None
    if command[5] != launch_script().replace("python3", sys.executable):
        return None
    if not command[2].rstrip("\n").endswith(_EXEC_LINE) or "--executor_input" not in command[7:]:
        return None
    return command[2], command[6], command[7:]


def _packages_present(script: str) -> bool:
    """Every check of the install script passes: it would install nothing. A script with any
    line other than nb2pipe's checks, installs and ``fi`` is not ours to judge: False."""
    lines = [line for line in script.rstrip("\n").split("\n")[:-1] if line.strip()]
    for line in lines:
        words = shlex.split(line)
        if words == ["fi"] or (line.startswith("  ") and "pip" in words[:4]):
            continue
        if words[:3] != ["if", "!", sys.executable] or words[3] != "-c" or words[5:] != ["2>/dev/null;", "then"]:
            return False
        if not _check_passes(words[4]):
            return False
    return True


def _check_passes(code: str) -> bool:
    try:
        exec(compile(code, "<nb2pipe package check>", "exec"), {})
    except SystemExit as end:
        return not end.code
    except Exception:
        return False
    return True
