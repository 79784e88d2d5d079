"""``nb2pipe`` command line: turns argv into one library call, prints the outcome, and picks
the exit code (0 ok, 1 problem with the input, 2 usage). Imports stay inside commands so
``nb2pipe --help`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from nb2pipe import __version__
from nb2pipe.errors import CompileError, Diagnostic, Nb2PipeError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nb2pipe",
        description="Turn a tagged Jupyter notebook into a Kubeflow Pipelines v2 pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"nb2pipe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    compile_ = commands.add_parser(
        "compile",
        help="compile a notebook into KFP IR YAML",
        description="Compile a tagged notebook into a Kubeflow Pipelines v2 IR YAML file.",
    )
    compile_.add_argument("notebook", metavar="NB", help="the .ipynb file")
    compile_.add_argument(
        "-o",
        "--output",
        metavar="OUT.yaml",
        help="where to write the pipeline (default: NB.pipeline.yaml beside the notebook)",
    )
    compile_.add_argument("--dsl", metavar="OUT.py", help="also write a readable KFP DSL file")
    compile_.add_argument("--name", help="pipeline name (default: notebook metadata, else the file name)")
    compile_.add_argument("--image", help="container image for steps without an image: tag")
    compile_.add_argument("--json", action="store_true", help="print the result as one JSON object")
    compile_.set_defaults(handler=_compile)
    return parser


def _compile(args: argparse.Namespace) -> int:
    from nb2pipe.compiler import compile_notebook

    result = compile_notebook(args.notebook, output=args.output, dsl=args.dsl, name=args.name, image=args.image)
    plan = result.compiled.plan
    if args.json:
        print(
            json.dumps(
                {
                    "output": str(result.output),
                    "dsl": str(result.dsl_output) if result.dsl_output else None,
                    "pipeline": plan.name,
                    "steps": [
                        {
                            "name": s.name,
                            "upstream": list(s.upstream),
                            "inputs": [i.name for i in s.inputs],
                            "outputs": [o.name for o in s.outputs],
                        }
                        for s in plan.steps
                    ],
                    "diagnostics": [d.to_json() for d in result.compiled.warnings],
                },
                indent=2,
            )
        )
        return 0
    _print_diagnostics(result.compiled.warnings)
    written = str(result.output) + (f" and {result.dsl_output}" if result.dsl_output else "")
    print(
        f"wrote {written}: pipeline {plan.name!r}, {len(plan.steps)} step(s): " + ", ".join(s.name for s in plan.steps)
    )
    return 0


def _print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        print(diagnostic.format(), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CompileError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"diagnostics": [d.to_json() for d in exc.diagnostics]}, indent=2))
        else:
            print(str(exc), file=sys.stderr)
        return exc.exit_code
    except Nb2PipeError as exc:
        print(f"nb2pipe: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nb2pipe: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
