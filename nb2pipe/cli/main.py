"""``nb2pipe`` command line: the root parser (``--version``), the command groups' parsers in a
fixed order, and the one place that prints errors and picks the exit code (0 ok, 1 problem
with the input, 2 usage, 130 interrupted; with ``--json`` every outcome is one JSON object).

Library code raises :class:`~nb2pipe.errors.Nb2PipeError`; only :func:`main` prints it. Each
group's handlers import the libraries they call, so ``nb2pipe --help`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from nb2pipe.cli import autoscale, capacity, explain, lifecycle, monitoring, pipelines, profile, retrain
from nb2pipe.cli.failures import describe_internal_error, is_broken_pipe, own_warnings_as_lines, quiet_stdout
from nb2pipe.errors import CompileError, Diagnostic, Nb2PipeError
from nb2pipe.version import __version__

if TYPE_CHECKING:
    from nb2pipe.cli.args import Commands

#: every command group's ``add_commands``, in the order ``nb2pipe --help`` lists the commands
COMMAND_GROUPS: tuple[Callable[[Commands], None], ...] = (
    pipelines.add_commands,  # compile, run, submit
    lifecycle.add_commands,  # serve, deploy, endpoints
    monitoring.add_commands,  # drift
    explain.add_commands,  # explain
    retrain.add_commands,  # retrain, schedule
    profile.add_commands,  # profile
    capacity.add_commands,  # plan, simulate
    autoscale.add_commands,  # autoscale
)


def build_parser() -> argparse.ArgumentParser:
    # typed as the base class: the groups add to any parser's subcommands (tests use plain ones)
    parser: argparse.ArgumentParser = _Parser(
        prog="nb2pipe",
        description="Turn a tagged Jupyter notebook into a Kubeflow Pipelines v2 pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"nb2pipe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for add_commands in COMMAND_GROUPS:
        add_commands(commands)
    return parser


class UsageError(Nb2PipeError):
    """The command line itself is wrong (argparse's errors, raised instead of exiting)."""

    exit_code = 2

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse prints and exits on a bad command line; raising lets :func:`main` answer
    ``--json`` with a JSON object too. Subcommand parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"{self.format_usage()}{self.prog}: error: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code: 0 ok, 1 a problem with the input (or a bug in
    nb2pipe, reported in one line), 130 interrupted. A usage error (and ``--help``) raises
    :class:`SystemExit` (2, and 0) as argparse does. With ``--json`` every outcome prints
    exactly one JSON object on stdout."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = _asks_for_json(arguments)
    try:
        with own_warnings_as_lines():
            return _main(arguments, as_json)
    except BrokenPipeError as exc:
        if is_broken_pipe(sys.stdout) or is_broken_pipe(sys.stderr):
            quiet_stdout()  # the reader (``| head``) has gone: say nothing more
            return 1
        try:
            return _internal_error(exc, as_json)
        except BrokenPipeError:
            quiet_stdout()
            return 1


def _main(arguments: list[str], as_json: bool) -> int:
    try:
        args = build_parser().parse_args(arguments)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except CompileError as exc:
        if as_json:
            _print_json_error(exc.summary, exc.exit_code, diagnostics=exc.diagnostics)
        else:
            print(str(exc), file=sys.stderr)
        return exc.exit_code
    except UsageError as exc:
        print(exc.usage, file=sys.stderr)
        if as_json:
            _print_json_error(str(exc), exc.exit_code, kind="usage")
        raise SystemExit(exc.exit_code) from None  # as argparse does: callers of main() rely on it
    except Nb2PipeError as exc:
        print(f"nb2pipe: {exc}", file=sys.stderr)
        if as_json:
            _print_json_error(str(exc), exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nb2pipe: interrupted", file=sys.stderr)
        if as_json:
            _print_json_error("interrupted", 130, kind="interrupted")
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # anything else is a bug in nb2pipe: one line, the traceback in a file
        return _internal_error(exc, as_json)


def _asks_for_json(arguments: list[str]) -> bool:
    """Whether ``--json`` (or an abbreviation argparse would take) comes before ``--``."""
    for argument in arguments:
        if argument == "--":
            return False
        if len(argument) > 2 and "--json".startswith(argument):
            return True
    return False


def _print_json_error(
    message: str, exit_code: int, *, kind: str = "error", diagnostics: Sequence[Diagnostic] = (), **extra: object
) -> None:
    report: dict[str, object] = {"error": {"kind": kind, "message": message, "exit_code": exit_code, **extra}}
    if diagnostics:
        report["diagnostics"] = [d.to_json() for d in diagnostics]
    print(json.dumps(report, indent=2))


def _internal_error(exc: BaseException, as_json: bool) -> int:
    line, saved = describe_internal_error(exc)
    print(line, file=sys.stderr)
    if as_json:
        _print_json_error(line.removeprefix("nb2pipe: "), 1, kind="internal", traceback_file=saved)
    return 1


def run() -> None:
    """The ``nb2pipe`` console script: flush stdout here, where a reader that has gone can still
    be answered quietly, rather than at interpreter exit."""
    try:
        code: int | str | None = main()
    except SystemExit as exit:  # usage errors, --help, --version
        code = exit.code
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_stdout()
        code = code or 1
    sys.exit(code)
