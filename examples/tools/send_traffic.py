"""Send breast-cancer rows to a local endpoint that `nb2pipe run` started, as served traffic
for the drift check of `nb2pipe retrain` — unchanged, or drifted.

    python examples/tools/send_traffic.py WORKDIR SERVICE [--rows 300] [--shift 0.0]
                                          [--features 3] [--seed 0] [--explain]

Rows are drawn (with replacement, seeded) from the data set the example trains on. With
--shift S, the first --features features move by S standard deviations: drifted traffic
that the drift check should catch. With --explain, one row is also sent to the endpoint's
:explain route (when the model was deployed with an explainer) and the anchor is printed.
WORKDIR is the run's --workdir; its endpoints/SERVICE.json says where the server listens.
"""

import argparse
import json
import urllib.request
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def traffic(rows: int, shift: float, features: int, seed: int) -> tuple[list[str], np.ndarray]:
    data = load_breast_cancer(as_frame=True).data
    chosen = data.sample(n=rows, replace=True, random_state=seed).to_numpy(dtype=float)
    if shift:
        chosen[:, :features] += shift * data.to_numpy()[:, :features].std(axis=0)
    return [str(c) for c in data.columns], chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir")
    parser.add_argument("service")
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--features", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=20, help="rows per request")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    record = json.loads((Path(args.workdir) / "endpoints" / f"{args.service}.json").read_text())
    columns, rows = traffic(args.rows, args.shift, args.features, args.seed)
    url = f"{record['url']}/v1/models/{args.service}"
    positive = 0
    for start in range(0, len(rows), args.batch):
        answer = post(f"{url}:predict", {"instances": rows[start : start + args.batch].tolist()})
        positive += sum(int(p) for p in answer["predictions"])
    kind = f"shifted by {args.shift} sd on {args.features} features" if args.shift else "unchanged"
    print(f"sent {len(rows)} rows ({kind}) to {args.service} at {record['url']}: {positive} predicted benign")
    if args.explain:
        explained = post(f"{url}:explain", {"instances": rows[:1].tolist()})
        print(json.dumps(explained, indent=2)[:2000])


if __name__ == "__main__":
    main()
