"""``nb2pipe profile``: measure served models' latency profiles into ``PROFILE.json``.

Kept apart from :mod:`nb2pipe.cli` so each module stays small; the measurement (and mlflow
through it) is imported inside the handler.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from nb2pipe.cli.args import INT32_MAX, add_json, non_empty
from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import check_outputs

if TYPE_CHECKING:
    from nb2pipe.capacity.measure import Target
    from nb2pipe.capacity.profile import Profile
    from nb2pipe.cli.args import Commands

DEFAULT_BATCH_SIZES = "1,2,4,8,16"
DEFAULT_CONCURRENCY = "1,4"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def add_commands(commands: Commands) -> None:
    profile = commands.add_parser(
        "profile",
        help="measure served models' latency and throughput per batch size into PROFILE.json",
        description="Serve each model with nb2pipe serve on 127.0.0.1 (one at a time), send it batches of rows "
        "through KServe's v1 protocol and record, per batch size, the service-time distribution with one "
        "client and the throughput and latency at each client concurrency. Rows come from --input, else "
        "from the training data kept with each registered model. Tracking URI: $MLFLOW_TRACKING_URI, else "
        ".nb2pipe/mlflow.db in the current folder.",
    )
    profile.add_argument(
        "models",
        nargs="+",
        metavar="MODEL_URI",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/..., or a folder; NAME=URI names the variant",
    )
    profile.add_argument(
        "--variant-name", action="append", default=[], metavar="NAME", help="name of each model's variant, in order"
    )
    profile.add_argument(
        "--accuracy", action="append", default=[], metavar="A", help="accuracy (0-1) of each model, in order"
    )
    profile.add_argument(
        "--accuracy-metric",
        default="accuracy",
        metavar="METRIC",
        help="run metric read as the accuracy when --accuracy is not given (default accuracy)",
    )
    profile.add_argument("--batch-sizes", default=DEFAULT_BATCH_SIZES, metavar="N,N,...", help="default 1,2,4,8,16")
    profile.add_argument("--concurrency", default=DEFAULT_CONCURRENCY, metavar="C,C,...", help="clients; default 1,4")
    profile.add_argument("--requests", default="200", metavar="N", help="batch calls per measurement (default 200)")
    profile.add_argument("--warmup", default="20", metavar="N", help="untimed calls per batch size (default 20)")
    profile.add_argument(
        "--input", metavar="FILE", type=non_empty, help="rows to send: CSV, parquet, or a JSON list of rows"
    )
    profile.add_argument("--slo-ms", metavar="MS", help="p99 latency objective; fills max_rate_under_slo")
    profile.add_argument(
        "-o", "--output", required=True, metavar="PROFILE.json", type=non_empty, help="where to write the profile"
    )
    add_json(profile, "print the profile as JSON instead of a table")
    profile.set_defaults(handler=_profile)


def _profile(args: argparse.Namespace) -> int:
    from nb2pipe.capacity.measure import MeasureOptions, measure_profile
    from nb2pipe.capacity.profile import profile_to_json, write_profile

    targets = targets_from(args.models, args.variant_name, args.accuracy)
    options = MeasureOptions(
        batch_sizes=_sizes(args.batch_sizes, "--batch-sizes"),
        concurrency=_sizes(args.concurrency, "--concurrency"),
        requests=_count(args.requests, "--requests", 1),
        warmup=_count(args.warmup, "--warmup", 0),
        input_path=args.input,
        accuracy_metric=args.accuracy_metric,
    )
    slo = _slo(args.slo_ms)
    if args.input and not Path(args.input).expanduser().is_file():
        raise Nb2PipeError(f"--input {args.input}: no such file; give a CSV, parquet or JSON file of rows")
    output = Path(args.output)
    if output.is_dir():
        raise Nb2PipeError(f"-o {output} is a folder; give a file name such as {output / 'profile.json'}")
    check_outputs([("-o", args.output)], [args.input, *(split_named(m)[1] for m in args.models)], folders_made=True)
    if threading.current_thread() is threading.main_thread():  # only there may handlers be set
        # a SIGTERM (a timeout, a CI job cancelled) unwinds like ^C, so the server is stopped by PID
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    profile = measure_profile(targets, options, progress=lambda text: print(f"nb2pipe: {text}", file=sys.stderr))
    if slo is not None:
        profile = _with_slo(replace(profile, slo_ms=slo), slo)
    written = write_profile(output, profile)
    if args.json:
        print(json.dumps({"output": str(written), "profile": profile_to_json(profile)}, indent=2))
    else:
        print(format_table(profile))
        print(f"wrote {written}")
    return 0


def _with_slo(profile: Profile, slo: float) -> Profile:
    try:
        from nb2pipe.capacity.model import with_slo_rates
    except ImportError as exc:
        if exc.name != "nb2pipe.capacity.model":
            raise
        return profile  # the capacity model is not there yet: max_rate_under_slo stays empty
    return with_slo_rates(profile, slo)


def targets_from(models: list[str], names: list[str], accuracies: list[str]) -> list[Target]:
    """Positional ``URI`` or ``NAME=URI`` with ``--variant-name`` and ``--accuracy`` -> targets."""
    from nb2pipe.capacity.measure import Target

    if names and len(names) != len(models):
        raise Nb2PipeError(f"--variant-name given {len(names)} times for {len(models)} models; give one per model")
    if accuracies and len(accuracies) != len(models):
        raise Nb2PipeError(f"--accuracy given {len(accuracies)} times for {len(models)} models; give one per model")
    targets = []
    for index, text in enumerate(models):
        named, uri = split_named(text)
        if named and names:
            raise Nb2PipeError(f"{text}: name each model once, with NAME=URI or with --variant-name, not both")
        name = named or (names[index] if names else default_name(uri))
        if not _NAME.match(name):
            raise Nb2PipeError(f"variant name {name!r}: use letters, digits, '.', '_' or '-' (--variant-name)")
        accuracy = _accuracy(accuracies[index]) if accuracies else None
        targets.append(Target(name, uri, accuracy))
    chosen = [t.name for t in targets]
    if len(set(chosen)) != len(chosen):
        raise Nb2PipeError(f"variant names repeat ({', '.join(chosen)}); name each with NAME=URI or --variant-name")
    return targets


def split_named(text: str) -> tuple[str | None, str]:
    """``NAME=URI`` -> (NAME, URI); anything else (an existing folder too) -> (None, text)."""
    name, sep, uri = text.partition("=")
    if sep and uri and _NAME.match(name) and not Path(text).expanduser().exists():
        return name, uri
    return None, text


def default_name(uri: str) -> str:
    """The registered model's name (``models:/forest-small@champion`` -> ``forest-small``), a
    folder's own name, else ``model``."""
    if uri.startswith("models:/"):
        return uri.removeprefix("models:/").split("@")[0].split("/")[0].lower()
    folder = Path(uri).expanduser()
    if folder.is_dir() and _NAME.match(folder.resolve().name):
        return folder.resolve().name
    return "model"


def _sizes(text: str, option: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(_is_whole(p) for p in parts):
        raise Nb2PipeError(f"{option} {text!r}: write whole numbers separated by commas, e.g. 1,4,16")
    values = [int(p) for p in parts]
    if not values or any(not 1 <= v <= INT32_MAX for v in values):
        raise Nb2PipeError(f"{option} {text!r}: every value must be at least 1 and at most {INT32_MAX}")
    return tuple(sorted(set(values)))


def _count(text: str, option: str, least: int) -> int:
    if not _is_whole(text.strip()):
        raise Nb2PipeError(f"{option} {text!r}: write a whole number")
    value = int(text)
    if not least <= value <= INT32_MAX:
        raise Nb2PipeError(f"{option} {text!r}: must be at least {least} and at most {INT32_MAX}")
    return value


def _is_whole(text: str) -> bool:
    """ASCII digits that fit in an int32 (``int()`` alone takes '١٢' and '1_000')."""
    return text.isascii() and text.isdigit() and len(text.lstrip("0")) <= len(str(INT32_MAX))


def _accuracy(text: str) -> float:
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        raise Nb2PipeError(f"--accuracy {text!r}: write a number between 0 and 1") from None
    if not 0 <= value <= 1:
        raise Nb2PipeError(f"--accuracy {text!r}: must be between 0 and 1 (0.93, not 93)")
    return value


def _slo(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        raise Nb2PipeError(f"--slo-ms {text!r}: write a number of milliseconds") from None
    if not math.isfinite(value) or value <= 0:
        raise Nb2PipeError(f"--slo-ms {text!r}: must be a positive number of milliseconds")
    return value


def format_table(profile: Profile) -> str:
    """One line per variant and batch size: service p50/p99 (one client) and rows/s per concurrency."""
    levels = sorted({p.concurrency for v in profile.variants for b in v.batches for p in b.load})
    slo = profile.slo_ms is not None
    width = max([7, *(len(v.name) for v in profile.variants)])
    header = f"{'variant':<{width}} {'accuracy':>8} {'batch':>5} {'p50 ms':>8} {'p99 ms':>8}"
    header += "".join(f" {f'rows/s c={c}':>12}" for c in levels) + f" {'errors':>6}"
    if slo:
        header += f" {f'rows/s@{profile.slo_ms:g}ms':>14}"
    lines = [header]
    for variant in profile.variants:
        accuracy = "-" if variant.accuracy is None else f"{variant.accuracy:.4f}"
        for position, batch in enumerate(variant.batches):
            rates = {p.concurrency: p.requests_per_s for p in batch.load}
            line = f"{variant.name if position == 0 else '':<{width}} {accuracy if position == 0 else '':>8}"
            line += f" {batch.batch_size:>5} {batch.service_ms[50]:>8.2f} {batch.service_ms[99]:>8.2f}"
            line += "".join(f" {rates[c]:>12.0f}" if c in rates else f" {'-':>12}" for c in levels)
            line += f" {sum(p.errors for p in batch.load):>6}"
            if slo:
                rate = batch.max_rate_under_slo
                line += f" {'-' if rate is None else f'{rate:.0f}':>14}"
            lines.append(line)
    return "\n".join(lines)
