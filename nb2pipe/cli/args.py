"""Argument types of the ``nb2pipe`` command line, and the options several command groups
share (the notebook, ``--json``, ``--workdir``, ``--param``...), defined once.

Numbers are held to the range the setting can hold and paths must not be empty; a bad value
is a usage error naming the option (exit 2). ``int()`` and ``float()`` alone would take
``'١٢'`` (Arabic-Indic digits), ``'1_000'``, ``'nan'`` and ``'inf'``, and numbers no Kubernetes
field or protobuf integer holds.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    #: what ``add_subparsers()`` returns: each command group's ``add_commands`` adds to it
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

#: protobuf and Kubernetes integer limits (KServe's replica counts are int32, timeouts int64)
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
#: numpy's seeds are unsigned 32-bit
SEED_MAX = 2**32 - 1
#: --json's help where the command prints its result
JSON_RESULT = "print the result as one JSON object"


def integer(low: int | None = None, high: int = INT64_MAX) -> Callable[[str], int]:
    """A whole number written in ASCII digits, from ``low`` to ``high``."""

    def parse(text: str) -> int:
        digits = text.strip().removeprefix("-").removeprefix("+")
        if not (digits.isascii() and digits.isdigit()) or len(digits.lstrip("0")) > len(str(high)):
            raise argparse.ArgumentTypeError(f"{text!r} is not {_whole(low, high)}")
        value = int(text.strip())
        if (low is not None and value < low) or value > high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_whole(low, high)}")
        return value

    return parse


def real(low: float | None = None, high: float | None = None, *, above_low: bool = False) -> Callable[[str], float]:
    """A finite number from ``low`` (or above it, with ``above_low``) to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text) if text.strip().isascii() else math.nan
        except ValueError:
            value = math.nan
        too_low = low is not None and (value <= low if above_low else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {_number(low, high, above_low)}")
        return value

    return parse


def duration(text: str) -> str:
    """An interval such as ``30m`` or ``1h30m``, kept as written; :func:`nb2pipe.runners.kubeflow.parse_duration`
    decides what it may be (ASCII digits, at most ten years)."""
    from nb2pipe.errors import Nb2PipeError
    from nb2pipe.runners.kubeflow import parse_duration

    try:
        parse_duration(text)
    except Nb2PipeError:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r} is not a duration such as 30m, 1h, 1h30m or 1d, at most ten years"
        ) from None
    return text


def non_empty(text: str) -> str:
    """A path or a model URI: not empty (an empty path would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("it is empty")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} holds a NUL character, which no path can")
    return text


def add_notebook(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", metavar="NB", type=non_empty, help="the .ipynb file")


def add_json(parser: argparse.ArgumentParser, help: str = JSON_RESULT) -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_workdir(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--workdir", metavar="DIR", type=non_empty, help=help)


def add_parameters(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help=help)


def add_kubeflow_namespace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", metavar="NS", help="Kubeflow profile namespace (multi-user clusters)")


def add_html_report(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--report", metavar="OUT.html", type=non_empty, help=help)


def _whole(low: int | None, high: int) -> str:
    return f"a whole number from {low} to {high}" if low is not None else f"a whole number up to {high}"


def _number(low: float | None, high: float | None, above_low: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'above' if above_low else 'at least'} {low:g}")
    if high is not None:
        parts.append(f"at most {high:g}")
    return "a finite number" + (" " + " and ".join(parts) if parts else "")
