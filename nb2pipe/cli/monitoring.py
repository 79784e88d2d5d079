"""``nb2pipe drift``: argv -> one library call (:func:`nb2pipe.monitoring.drift_files.drift_of_files`).

Heavy imports stay inside the handler: alibi-detect brings TensorFlow (seconds to load);
:mod:`nb2pipe.monitoring.drift` itself imports only the standard library.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from nb2pipe.cli.args import add_html_report, add_json, add_workdir, non_empty, real
from nb2pipe.ir import DRIFT_CORRECTIONS, DRIFT_METHODS

if TYPE_CHECKING:
    from nb2pipe.cli.args import Commands

#: the exit code of --fail-on-drift when the data drifted (1 is a problem with the input)
DRIFT_EXIT_CODE = 3


def add_commands(commands: Commands) -> None:
    drift = commands.add_parser(
        "drift",
        help="test whether current data drifted from reference data (alibi-detect)",
        description="Compare CUR with REF: KS per numeric and Chi-squared per categorical column with a "
        "multiple-testing correction (method tabular), or ks, chi2, mmd. REF and CUR: a CSV or parquet file, a "
        "payload-log folder (nb2pipe serve --log-payloads), KServe's payload log (s3://, gs://, abfs:// prefix or a "
        "local copy of its objects, docs/payload-logging.md), or a folder with a value an nb2pipe step saved; REF "
        "may also be a registered model, models:/NAME@ALIAS or models:/NAME/VERSION, meaning the training data "
        "kept with it. Exit code 0 whatever the verdict (3 on drift with --fail-on-drift).",
    )
    drift.add_argument(
        "--reference", required=True, metavar="REF", type=non_empty, help="the baseline data, or a model URI"
    )
    drift.add_argument("--current", required=True, metavar="CUR", type=non_empty, help="the data to test")
    drift.add_argument("--method", choices=DRIFT_METHODS, default="tabular", help="the test (default tabular)")
    drift.add_argument(
        "--p-value",
        type=real(0, 1, above_low=True),
        default=0.05,
        metavar="P",
        help="significance level (default 0.05)",
    )
    drift.add_argument(
        "--correction", choices=DRIFT_CORRECTIONS, default="bonferroni", help="across features (default bonferroni)"
    )
    drift.add_argument(
        "--categorical",
        nargs="+",
        action="extend",
        metavar="COL",
        help="columns to test as categories (default: text, category and bool columns)",
    )
    add_json(drift)
    add_html_report(drift, "write an HTML report with distribution plots")
    add_workdir(
        drift,
        "the MLflow store of models:/ references (default: .nb2pipe/ in the current folder; "
        "MLFLOW_TRACKING_URI wins when set)",
    )
    drift.add_argument("--fail-on-drift", action="store_true", help=f"exit with {DRIFT_EXIT_CODE} on drift")
    drift.set_defaults(handler=_drift)


def _drift(args: argparse.Namespace) -> int:
    from nb2pipe.files import check_outputs
    from nb2pipe.monitoring.drift import DriftSettings
    from nb2pipe.monitoring.drift_files import drift_of_files
    from nb2pipe.monitoring.drift_report import drift_summary, write_drift_report

    if args.report:
        check_outputs([("--report", args.report)], [args.reference, args.current], folders_made=True)
    settings = DriftSettings(
        method=args.method,
        p_value=args.p_value,
        correction=args.correction,
        categorical=tuple(args.categorical) if args.categorical else None,
    )
    result, reference, current = drift_of_files(args.reference, args.current, settings, store=args.workdir)
    report = write_drift_report(result, reference, current, args.report) if args.report else None
    if args.json:
        print(json.dumps(dict(result.to_json(), report=str(report) if report else None), indent=2))
    else:
        print(drift_summary(result))
        if report is not None:
            print(f"report: {report}")
    return DRIFT_EXIT_CODE if args.fail_on_drift and result.is_drift else 0
