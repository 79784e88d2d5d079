"""What running a notebook as a pipeline costs, against running it straight through.

For each example, paired (nbclient, warm run, cold run, alternating, ``--repeat`` times; medians):
wall and CPU time of a direct top-to-bottom nbclient execution (kernel start included, as
`jupyter nbconvert --execute` would pay), of the whole `nb2pipe run` process tree (compile
included) with warm steps (forked from the run's fork server) and cold (``NB2PIPE_WARM=0``),
their ratios, and whether independent steps overlapped in time. Then the per-step start latency
(the runner's fork -> the step's first line of code) on a small notebook, warm and cold.

Targets (issue 24): warm wall <= 0.9x and CPU <= 1.15x nbclient on every example whose pipeline
does the notebook's work only. A pipeline with register / explain / deploy / drift tasks does more
than the notebook (an MLflow registration, explanations, a model server, a drift check): its row
says how many such tasks it adds, and it is reported, not judged against the targets.

    python -m bench.run_overhead [--repeat 3] [--json bench/results/run_overhead.json] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_nbclient(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds (this process and the kernel) of one nbclient execution."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    before = _cpu()
    start = time.perf_counter()
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return time.perf_counter() - start, _cpu() - before


def _cpu() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def time_run(path: Path, workdir: Path, warm: bool = True) -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds of the whole process tree, and the run's JSON result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nb2pipe", "run", str(path), "--json", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env={**os.environ, "NB2PIPE_WARM": "1" if warm else "0"},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"nb2pipe run {path.name} failed:\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(done.stdout)


_LATENCY_STEPS = ("first", "second", "third")


def start_latency(scratch: Path, warm: bool) -> list[float]:
    """Seconds from each step's fork (the runner's record) to its first line of code, on a
    notebook whose prelude imports numpy, pandas and scikit-learn."""
    import nbformat

    folder = scratch / f"latency-{'warm' if warm else 'cold'}"
    folder.mkdir()
    cells = [nbformat.v4.new_code_cell("import time\nimport numpy\nimport pandas\nimport sklearn.linear_model")]
    cells[0].metadata["tags"] = ["imports"]
    for index, step in enumerate(_LATENCY_STEPS):
        cell = nbformat.v4.new_code_cell(f"open('{step}.start', 'w').write(repr(time.time()))\nv{index} = {index}")
        cell.metadata["tags"] = [f"step:{step}"] + ([f"prev:{_LATENCY_STEPS[0]}"] if index else [])
        cells.append(cell)
    path = folder / "latency.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    _, _, result = time_run(path, folder / "work", warm)
    state = json.loads((Path(result["outputs_dir"]) / "run.json").read_text())
    return [float((folder / f"{step}.start").read_text()) - state["steps"][step]["started"] for step in _LATENCY_STEPS]


def added_tasks(path: Path) -> int:
    """The tasks nb2pipe adds to the notebook's steps: registrations, explanations, deploys, drift checks."""
    import yaml

    from nb2pipe.compiler import compile_source

    compiled = compile_source(path.read_text(encoding="utf-8"), str(path))
    spec = next(iter(yaml.safe_load_all(compiled.yaml)))
    return len(spec["root"]["dag"]["tasks"]) - len(compiled.plan.steps)


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
    parser.add_argument("--repeat", type=int, default=3, help="paired runs per notebook (medians are reported)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "run_overhead.json"))
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "examples").glob("*.ipynb"))

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for path in notebooks:
            samples: dict[str, list[float]] = {}
            for _ in range(args.repeat):  # alternating: a change of load hits all three alike
                for key, value in zip(("nbclient_s", "nbclient_cpu_s"), time_nbclient(path), strict=True):
                    samples.setdefault(key, []).append(value)
                for mode in ("warm", "cold"):
                    wall, cpu, result = time_run(path, Path(scratch), warm=mode == "warm")
                    samples.setdefault(f"{mode}_s", []).append(wall)
                    samples.setdefault(f"{mode}_cpu_s", []).append(cpu)
            median = {key: statistics.median(values) for key, values in samples.items()}
            overlapped, peak = overlap(Path(result["outputs_dir"]))
            rows.append(
                {
                    "notebook": path.name,
                    "steps": len(result["steps"]),
                    "added_tasks": added_tasks(path),
                    **{key: round(value, 2) for key, value in median.items()},
                    **{
                        f"{mode}_{kind}ratio": round(median[f"{mode}_{kind}s"] / median[f"nbclient_{kind}s"], 2)
                        for mode in ("warm", "cold")
                        for kind in ("", "cpu_")
                    },
                    "independent_steps_overlapped": overlapped,
                    "peak_steps_at_once": peak,
                }
            )
        latency = {mode: start_latency(Path(scratch), mode == "warm") for mode in ("cold", "warm")}

    print(
        f"{'notebook':24} {'steps':>5} {'added':>5} {'nbclient s':>10} {'cpu':>6} {'warm s':>7} {'cpu':>6} "
        f"{'cold s':>7} {'cpu':>6} {'warm/nb':>8} {'cpu/nb':>7} {'cold/nb':>8} {'cpu/nb':>7}"
    )
    for row in rows:
        print(
            f"{row['notebook']:24} {row['steps']:>5} {row['added_tasks']:>5} {row['nbclient_s']:>10.2f} "
            f"{row['nbclient_cpu_s']:>6.2f} "
            f"{row['warm_s']:>7.2f} {row['warm_cpu_s']:>6.2f} {row['cold_s']:>7.2f} {row['cold_cpu_s']:>6.2f} "
            f"{row['warm_ratio']:>8.2f} {row['warm_cpu_ratio']:>7.2f} {row['cold_ratio']:>8.2f} "
            f"{row['cold_cpu_ratio']:>7.2f}"
        )
    for mode, seconds in latency.items():
        print(f"step start latency, {mode}: " + ", ".join(f"{s:.2f} s" for s in seconds))
    judged = [r for r in rows if not r["added_tasks"]]
    met = all(r["warm_ratio"] <= 0.9 and r["warm_cpu_ratio"] <= 1.15 for r in judged) if judged else None
    verdict = f"met: {met}" if judged else "none of these notebooks is judged (each adds tasks)"
    print(
        f"targets (warm wall <= 0.9x, CPU <= 1.15x nbclient) on the {len(judged)} notebooks that add no task: "
        f"{verdict}; load average {os.getloadavg()}"
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps(
            {
                "rows": rows,
                "start_latency_s": {mode: [round(s, 3) for s in seconds] for mode, seconds in latency.items()},
                "targets": {"wall_ratio": 0.9, "cpu_ratio": 1.15},
                "met": met,
                "load_average": os.getloadavg(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
