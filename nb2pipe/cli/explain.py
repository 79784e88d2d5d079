"""``nb2pipe explain``: argv -> :func:`nb2pipe.monitoring.explain.explain_model`.

Imports stay inside the handler (alibi and TensorFlow take ~10 s to load).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from nb2pipe.cli.args import INT32_MAX, add_html_report, add_json, add_workdir, integer, non_empty
from nb2pipe.ir import EXPLAIN_METHODS

if TYPE_CHECKING:
    from nb2pipe.cli.args import Commands


def add_commands(commands: Commands) -> None:
    explain = commands.add_parser(
        "explain",
        help="explain a model's predictions for a few rows (Anchor rules or Integrated Gradients)",
        description="Fit an explainer of MODEL_URI (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/..., or an MLflow "
        "model folder) on DATA and explain its first rows: Anchor for any model, Integrated Gradients for Keras "
        "models. Tables, texts and images are told apart by the data's type and shape. Tracking URI: "
        "$MLFLOW_TRACKING_URI, else WORKDIR/mlflow.db.",
    )
    explain.add_argument("model_uri", metavar="MODEL_URI", type=non_empty)
    explain.add_argument(
        "--data",
        metavar="DATA",
        type=non_empty,
        help="a CSV or parquet file, or a folder an nb2pipe step saved a value in (default: the training data kept "
        "with the registered version)",
    )
    explain.add_argument("--method", choices=EXPLAIN_METHODS, default="anchor", help="default: anchor")
    explain.add_argument(
        "--rows", type=integer(1, INT32_MAX), default=3, metavar="N", help="explain the first N rows (default 3)"
    )
    add_html_report(explain, "also write the explanation as an HTML page")
    add_json(explain, "print the explanation as one JSON object")
    add_workdir(explain, "nb2pipe's local store (default: .nb2pipe/ here)")
    explain.set_defaults(handler=_explain)


def _explain(args: argparse.Namespace) -> int:
    from nb2pipe.files import check_outputs
    from nb2pipe.monitoring.explain import explain_model, summary_lines

    if args.report:
        check_outputs([("--report", args.report)], [args.data, args.model_uri], folders_made=True)
    explanation, rows = explain_model(
        args.model_uri, data=args.data, method=args.method, rows=args.rows, store=args.workdir
    )
    if args.report:
        from nb2pipe.files import write_whole
        from nb2pipe.monitoring.explain_report import explanation_html

        title = f"{args.model_uri}: {args.method} explanation of {len(explanation.rows)} rows"
        write_whole(Path(args.report), explanation_html(explanation, rows, title=title))
    if args.json:
        print(json.dumps(explanation.to_json()))
        return 0
    print("\n".join(summary_lines(explanation)))
    if args.report:
        print(f"wrote {args.report}")
    return 0
