"""Ask a local endpoint that `nb2pipe run` started for predictions, over both protocols.

    python examples/tools/ask_endpoint.py WORKDIR SERVICE

WORKDIR is the run's --workdir (default .nb2pipe/ beside the notebook); its
endpoints/SERVICE.json says where the server listens. Sends five rows of the breast-cancer data as a KServe v1 and a v2 request.
"""

import json
import sys
import urllib.request
from pathlib import Path

from sklearn.datasets import load_breast_cancer


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main(workdir: str, service: str) -> None:
    record = json.loads((Path(workdir) / "endpoints" / f"{service}.json").read_text())
    rows = load_breast_cancer().data[:5].tolist()
    v1 = post(f"{record['url']}/v1/models/{service}:predict", {"instances": rows})
    tensor = {"name": "x", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": sum(rows, [])}
    v2 = post(f"{record['url']}/v2/models/{service}/infer", {"inputs": [tensor]})
    print(f"{service} ({record['model_uri']}) at {record['url']}")
    print(f"  v1 predictions: {v1['predictions']}")
    print(f"  v2 predictions: {v2['outputs'][0]['data']}")
    if v1["predictions"] != v2["outputs"][0]["data"]:
        sys.exit("v1 and v2 disagree")


if __name__ == "__main__":
    main(*sys.argv[1:3])
