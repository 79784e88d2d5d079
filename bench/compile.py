"""Compile speed: the compile work in-process and the whole `nb2pipe compile` process.

Targets (issue 2): <= 0.5 s of compile work and <= 1.0 s per process for a 50-cell /
10-step notebook and every example; `nb2pipe --help` <= 0.5 s.

    python -m bench.compile [--repeat 5] [--json bench/results/compile.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nb2pipe.compiler import compile_source

ROOT = Path(__file__).resolve().parent.parent


def generated_notebook(cells: int = 50, steps: int = 10) -> str:
    """``cells`` code cells: an imports cell, a parameters cell, then ``steps`` steps sharing
    the rest; each step's first cell reads the value the step before it made."""

    def cell(source: str, *tags: str) -> dict[str, object]:
        return {
            "cell_type": "code",
            "metadata": {"tags": list(tags)},
            "execution_count": None,
            "outputs": [],
            "source": source,
        }

    notebook_cells = [cell("import json\nimport math", "imports"), cell("scale = 2\nname = 'bench'", "parameters")]
    step_cells = cells - len(notebook_cells)
    for index in range(step_cells):
        step = index * steps // step_cells
        first = index == 0 or (index - 1) * steps // step_cells != step
        if first:
            previous = f"value_{step - 1}" if step else "[math.sqrt(i) for i in range(10)]"
            notebook_cells.append(cell(f"value_{step} = [v * scale for v in {previous}]", f"step:step_{step}"))
        else:
            notebook_cells.append(cell(f"note_{index} = json.dumps({{'step': {step}, 'size': len(value_{step})}})"))
    return json.dumps({"cells": notebook_cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def time_work(text: str, name: str, repeat: int) -> float:
    compile_source(text, name)  # warm: imports and first-use caches are the process figure's business
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        compile_source(text, name)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def time_process(args: list[str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nb2pipe", *args], check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "compile.json"))
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        generated = Path(scratch) / "generated_50_cells_10_steps.ipynb"
        generated.write_text(generated_notebook())
        notebooks = [generated, *sorted((ROOT / "examples").glob("*.ipynb"))]
        for path in notebooks:
            text = path.read_text()
            steps = len(compile_source(text, path.name).plan.steps)
            cells = sum(1 for c in json.loads(text)["cells"] if c["cell_type"] == "code")
            work = time_work(text, path.name, args.repeat)
            process = time_process(["compile", str(path), "-o", str(Path(scratch) / "out.yaml")], args.repeat)
            rows.append(
                {
                    "notebook": path.name,
                    "code_cells": cells,
                    "steps": steps,
                    "work_s": round(work, 4),
                    "process_s": round(process, 4),
                }
            )
        help_s = time_process(["--help"], args.repeat)

    print(f"{'notebook':40} {'cells':>5} {'steps':>5} {'work s':>8} {'process s':>9}")
    for row in rows:
        print(
            f"{row['notebook']:40} {row['code_cells']:>5} {row['steps']:>5} {row['work_s']:>8.3f} "
            f"{row['process_s']:>9.3f}"
        )
    print(f"nb2pipe --help: {help_s:.3f} s   (targets: work <= 0.5 s, process <= 1.0 s, --help <= 0.5 s)")
    worst_work = max(r["work_s"] for r in rows)
    worst_process = max(r["process_s"] for r in rows)
    result = {
        "rows": rows,
        "help_s": round(help_s, 4),
        "repeat": args.repeat,
        "targets": {"work_s": 0.5, "process_s": 1.0, "help_s": 0.5},
        "met": worst_work <= 0.5 and worst_process <= 1.0 and help_s <= 0.5,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"targets met: {result['met']}; wrote {args.json}")


if __name__ == "__main__":
    main()
