"""What running a notebook as a pipeline costs, against running it straight through.

For each example: wall time of a direct top-to-bottom nbclient execution (kernel start
included, as `jupyter nbconvert --execute` would pay), wall time of the whole `nb2pipe run`
process (compile included), their ratio, the overhead per step, and whether independent
steps overlapped in time (with the average number of busy cores).

Targets (issue 3): ratio <= 2.0 and <= 2.5 s of overhead per step on a 2-core machine.

    python -m bench.run_overhead [--json bench/results/run_overhead.json] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_nbclient(path: Path) -> float:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return time.perf_counter() - start


def time_run(path: Path, workdir: Path) -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds of the whole process tree, and the run's JSON result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "run", str(path), "--json", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"nb2pipe run {path.name} failed:\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(done.stdout)


def overlap(run_dir: Path) -> tuple[bool, int]:
    """Did steps with no path between them run at the same time; most steps computing at once."""
    state = json.loads((run_dir / "run.json").read_text())
    spec_tasks = _dependencies(run_dir / "pipeline.yaml")
    ancestors = {name: _ancestors(name, spec_tasks) for name in spec_tasks}
    steps = {name: (s["started"], s["finished"]) for name, s in state["steps"].items() if s["started"]}
    overlapped = any(
        a not in ancestors[b] and b not in ancestors[a] and steps[a][0] < steps[b][1] and steps[b][0] < steps[a][1]
        for a, b in itertools.combinations(steps, 2)
    )
    events = sorted([(start, 1) for start, _ in steps.values()] + [(end, -1) for _, end in steps.values()])
    peak = current = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return overlapped, peak


def _dependencies(pipeline_yaml: Path) -> dict[str, list[str]]:
    import yaml

    spec = next(iter(yaml.safe_load_all(pipeline_yaml.read_text())))
    return {name: task.get("dependentTasks", []) for name, task in spec["root"]["dag"]["tasks"].items()}


def _ancestors(name: str, parents: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    stack = list(parents[name])
    while stack:
        parent = stack.pop()
        if parent not in found:
            found.add(parent)
            stack.extend(parents[parent])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "run_overhead.json"))
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "examples").glob("*.ipynb"))

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for path in notebooks:
            direct = time_nbclient(path)
            wall, cpu, result = time_run(path, Path(scratch))
            steps = len(result["steps"])
            overlapped, peak = overlap(Path(result["outputs_dir"]))
            rows.append(
                {
                    "notebook": path.name,
                    "steps": steps,
                    "nbclient_s": round(direct, 2),
                    "run_s": round(wall, 2),
                    "ratio": round(wall / direct, 2),
                    "overhead_per_step_s": round(max(wall - direct, 0) / steps, 2),
                    "independent_steps_overlapped": overlapped,
                    "peak_steps_at_once": peak,
                    "busy_cores": round(cpu / wall, 2),
                }
            )

    print(
        f"{'notebook':28} {'steps':>5} {'nbclient s':>10} {'run s':>7} {'ratio':>6} {'s/step':>7} "
        f"{'overlap':>8} {'peak':>5} {'cores':>6}"
    )
    for row in rows:
        print(
            f"{row['notebook']:28} {row['steps']:>5} {row['nbclient_s']:>10.2f} {row['run_s']:>7.2f} "
            f"{row['ratio']:>6.2f} {row['overhead_per_step_s']:>7.2f} "
            f"{'yes' if row['independent_steps_overlapped'] else 'no':>8} {row['peak_steps_at_once']:>5} "
            f"{row['busy_cores']:>6.2f}"
        )
    met = all(r["ratio"] <= 2.0 and r["overhead_per_step_s"] <= 2.5 for r in rows)
    print(f"targets (ratio <= 2.0, <= 2.5 s per step) met: {met}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps({"rows": rows, "targets": {"ratio": 2.0, "overhead_per_step_s": 2.5}, "met": met}, indent=2) + "\n"
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
