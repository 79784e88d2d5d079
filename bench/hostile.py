"""Hostile requests against a real ``nb2pipe serve``: outcome counts per request class, the
server's memory and log growth, and every broken promise (5xx, resets, timeouts, outcomes a
class does not allow, stalled clients held past the read timeout).

The model (--model) is one of bench/serve.py's, registered in a private sqlite store: the
breast-cancer pipeline by default, or the PyTorch digits MLP; the server runs on 127.0.0.1 and is
stopped by PID.
The requests come from tests/support/hostile_requests.py, seeded, and are sent by tests/support/hostile.py.

    python -m bench.hostile [--model cancer|forest|torch] [--requests 10000] [--seed 19] [--threads 8]
                            [--read-timeout 2] [--server-arg=--model-repository ...] [--no-server-defaults]
                            [--json bench/results/hostile.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.hostile import problems, storm_against, tally
from tests.support.hostile_requests import Served, hostile_jobs
from tests.support.served import serving

#: seconds past the read timeout a stalled client may stay connected
SLOW_MARGIN_S = 4.0


def register(key: str, folder: Path) -> tuple[str, str, Served]:
    """Train and register bench model ``key`` in ``folder``'s own sqlite store (as bench/serve.py
    does): (model URI, tracking URI, what the requests need to know of it)."""
    from bench.serve_models import MODEL_NAME, register as register_bench_model

    model = register_bench_model(key, folder)
    version = model.uri.rsplit("/", 1)[-1]
    served = Served(MODEL_NAME, version, tuple(model.columns or ()), tuple(map(float, model.row)))
    return model.uri, model.tracking_uri, served


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        choices=("cancer", "forest", "torch"),
        default="cancer",
        help="the served model (bench/serve_models.py): cancer (default), forest, or torch (a PyTorch MLP)",
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--read-timeout", type=float, default=2.0, help="passed to nb2pipe serve")
    parser.add_argument("--server-arg", action="append", default=[], help="one more nb2pipe serve argument")
    parser.add_argument(
        "--no-server-defaults", action="store_true", help="do not pass --read-timeout (servers without the option)"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--log-copy", type=Path, help="write what the server logged during the storm here")
    args = parser.parse_args()

    extra = ([] if args.no_server_defaults else ["--read-timeout", f"{args.read_timeout:g}"]) + args.server_arg
    slow_bound = args.read_timeout + SLOW_MARGIN_S
    with tempfile.TemporaryDirectory(prefix="nb2pipe-hostile-") as temporary:
        folder = Path(temporary)
        model_uri, tracking_uri, served = register(args.model, folder)
        jobs = hostile_jobs(served, args.seed, args.requests)
        with serving(model_uri, served.name, tracking_uri, folder, *extra) as server:
            report = storm_against(
                server.process.pid, server.log, server.port, jobs, threads=args.threads, stall_limit=slow_bound + 4
            )
            alive = server.process.poll() is None
            ready = server.request("GET", "/v2/health/ready")[0] if alive else None

    if args.log_copy:
        args.log_copy.write_text(report.log_added)
    counts = tally(report.outcomes)
    broken = problems(report.outcomes, slow_bound)
    by_label = Counter(o.label for o in report.outcomes)
    print(f"{len(report.outcomes)} requests in {report.seconds:.1f} s; outcomes: {dict(by_label.most_common())}")
    for (kind, label), count in sorted(counts.items()):
        print(f"  {kind:42} {label:8} {count}")
    rss = (report.rss_after - report.rss_before) / 2**20
    per_rejected = len(report.log_added.encode()) / max(1, report.rejected)
    print(f"server RSS {report.rss_before / 2**20:.1f} -> {report.rss_after / 2**20:.1f} MiB ({rss:+.1f})")
    print(
        f"log +{len(report.log_added.encode())} bytes for {report.rejected} rejected requests "
        f"({per_rejected:.0f} bytes each), tracebacks: {report.log_added.count('Traceback')}"
    )
    lines = report.log_added.splitlines()
    if lines:
        longest = max(lines, key=len)
        print(f"log lines: {len(lines)}, longest {len(longest)} characters: {longest[:300]!r}")
        for line in lines[:: max(1, len(lines) // 6)][:6]:
            print(f"  {line[:200]}")
    print(f"alive afterwards: {alive}, /v2/health/ready: {ready}")
    print(f"{len(broken)} problems" + "".join(f"\n  {line}" for line in broken))
    if args.json:
        results: dict[str, Any] = {
            "requests": len(report.outcomes),
            "seconds": report.seconds,
            "outcomes": dict(by_label),
            "by_class": {f"{kind} {label}": count for (kind, label), count in sorted(counts.items())},
            "rss_before": report.rss_before,
            "rss_after": report.rss_after,
            "log_bytes_added": len(report.log_added.encode()),
            "rejected": report.rejected,
            "tracebacks": report.log_added.count("Traceback"),
            "alive": alive,
            "ready": ready,
            "problems": broken,
            "server_args": extra,
            "seed": args.seed,
            "model": args.model,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
