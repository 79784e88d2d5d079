"""Run a compiled nb2pipe pipeline on the embedded engine (kfp.local) and print its metrics.

    python examples/run_local.py build/demo/sklearn_train.pipeline.yaml --root build/demo/runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", type=Path, help="IR YAML written by `nb2pipe compile`")
    parser.add_argument("--root", type=Path, default=Path("runs"), help="where step outputs are kept")
    args = parser.parse_args()

    from kfp import local
    from kfp.components import load_component_from_file

    root = args.root.resolve()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    load_component_from_file(str(args.pipeline))()

    run = max(root.iterdir(), key=lambda path: path.stat().st_mtime)
    print(f"\nrun {run.name} succeeded; outputs under {run}")
    for output in sorted(run.glob("*/executor_output.json")):
        artifacts = json.loads(output.read_text()).get("artifacts", {})
        for artifact in artifacts.get("nb2pipe_metrics", {}).get("artifacts", []):
            for name, value in sorted(artifact.get("metadata", {}).items()):
                print(f"  metric {output.parent.name}.{name} = {value:.4f}")


if __name__ == "__main__":
    main()
