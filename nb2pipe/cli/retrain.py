"""``nb2pipe retrain`` and ``nb2pipe schedule``: run a notebook's monitoring pipeline (drift
of served traffic -> retrain -> register -> promote and redeploy when better) once, on a
local loop, or as a Kubeflow recurring run."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from nb2pipe.cli.args import (
    INT64_MAX,
    add_json,
    add_kubeflow_namespace,
    add_notebook,
    add_parameters,
    add_workdir,
    duration,
    integer,
    non_empty,
)

if TYPE_CHECKING:
    from nb2pipe.cli.args import Commands
    from nb2pipe.monitoring.retrain import RetrainOutcome


def add_commands(commands: Commands) -> None:
    retrain = commands.add_parser(
        "retrain",
        help="run a notebook's monitoring pipeline once, locally",
        description="Test the traffic the champion served (payload log of deploy:SERVICE with monitor) for drift "
        "against the data it was trained on; on drift rerun the training steps, register a candidate, promote it "
        "only if it beats the champion, and redeploy. For cron or CI.",
    )
    add_notebook(retrain)
    _add_run_options(retrain)
    add_json(retrain)
    retrain.set_defaults(handler=_retrain)

    schedule = commands.add_parser(
        "schedule",
        help="retrain on drift on a schedule: a Kubeflow recurring run, or a local loop",
        description="Compile the notebook's monitoring pipeline and create a Kubeflow Pipelines recurring run of it "
        "(--host with --cron or --every), or keep running it here in the foreground (--local --every).",
    )
    add_notebook(schedule)
    when = schedule.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="CRON", help="5-field cron schedule, e.g. '0 3 * * *' (Kubeflow only)")
    when.add_argument("--every", metavar="DURATION", type=duration, help="interval between runs, e.g. 1h or 30m")
    where = schedule.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", metavar="URL", help="Kubeflow Pipelines endpoint")
    where.add_argument("--local", action="store_true", help="run here, in the foreground, until Ctrl-C")
    schedule.add_argument("--experiment", metavar="NAME", help="Kubeflow experiment (default: notebook metadata)")
    add_kubeflow_namespace(schedule)
    schedule.add_argument("--runs", type=integer(1, INT64_MAX), metavar="N", help="with --local: stop after N runs")
    _add_run_options(schedule)
    add_json(schedule, "print each result as one JSON object")
    schedule.set_defaults(handler=_schedule)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--payloads",
        metavar="DIR|URL",
        type=non_empty,
        help="payload log to test (default: the one the notebook's deploy: with monitor writes in --workdir; "
        "on Kubeflow, a path the pipeline's pods can read, or the s3://, gs:// or abfs:// prefix KServe's logger "
        "writes to: LOGGER_URL/NAMESPACE/SERVICE/predictor/payloads)",
    )
    parser.add_argument("--force", action="store_true", help="retrain whatever the drift test says")
    add_parameters(parser, "set a notebook parameter")
    add_workdir(parser, "local state and runs (default: .nb2pipe/ by the notebook)")


def _retrain(args: argparse.Namespace) -> int:
    from nb2pipe.monitoring.retrain import retrain_notebook
    from nb2pipe.runners.progress import shown_progress

    with shown_progress(not args.json) as progress:
        outcome = retrain_notebook(
            args.notebook,
            payloads=args.payloads,
            workdir=args.workdir,
            force=args.force,
            parameters=args.param,
            observer=progress,
        )
    _print_outcome(outcome, args.json)
    return 0 if outcome.status == "succeeded" else 1


def _print_outcome(outcome: RetrainOutcome, as_json: bool) -> None:
    from nb2pipe.runners.progress import lifecycle_lines

    if as_json:
        print(json.dumps(outcome.to_json(), indent=2), flush=True)
        return
    run = outcome.run
    for failure in run.failures:
        print(failure.describe())
    verdict = {True: "retrain", False: "no retraining needed", None: "no verdict"}[outcome.retrain]
    print(f"monitoring run {run.run_id} {run.status}: {verdict}")
    if outcome.drift_report:
        print(f"drift report: {outcome.drift_report}")
    for line in lifecycle_lines(run):
        print(line)
    print(f"outputs: {run.run_dir}", flush=True)


def _schedule(args: argparse.Namespace) -> int:
    from nb2pipe.errors import Nb2PipeError

    if args.local:
        if args.cron:
            raise Nb2PipeError("--local runs at an interval: use --every (cron schedules run on Kubeflow, --host)")
        from nb2pipe.monitoring.retrain import retrain_every
        from nb2pipe.runners.kubeflow import parse_duration

        seconds = parse_duration(args.every)
        try:
            retrain_every(
                args.notebook,
                seconds,
                on_outcome=lambda outcome: _print_outcome(outcome, args.json),
                runs=args.runs,
                payloads=args.payloads,
                workdir=args.workdir,
                force=args.force,
                parameters=args.param,
            )
        except KeyboardInterrupt:
            print("stopped")
        return 0
    from nb2pipe.runners.kubeflow import submit_notebook

    if args.runs is not None or args.workdir:
        raise Nb2PipeError("--runs and --workdir apply to --local only")
    parameters = list(args.param)
    if args.payloads:
        parameters.append(f"payloads={args.payloads}")
    if args.force:
        parameters.append("force_retrain=true")
    submission = submit_notebook(
        args.notebook,
        host=args.host,
        experiment=args.experiment,
        parameters=parameters,
        namespace=args.namespace,
        cron=args.cron,
        every=args.every,
        monitoring=True,
    )
    if args.json:
        print(json.dumps(submission.to_json(), indent=2))
    else:
        print(f"started recurring run: {submission.url}")
    return 0
