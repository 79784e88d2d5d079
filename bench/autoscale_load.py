"""The autoscale bench's load generator: open-loop Poisson arrivals at each second's rate, one
row a request, every answer's latency and status kept (the figures come from what clients got)."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np

#: a client gives up on a request after this long (it counts as a violation)
TIMEOUT_S = 30.0


def replay(url: str, service: str, rates: np.ndarray, seed: int = 0) -> list[tuple[float, float, int]]:
    """(sent at, latency s, status) of every request of ``rates`` (requests/s, one a second), sent
    in real time through ``url``; a request that failed has status 0."""
    return asyncio.run(_replay(url, service, rates, seed))


async def _replay(url: str, service: str, rates: np.ndarray, seed: int) -> list[tuple[float, float, int]]:
    import httpx
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer().data.tolist()
    generator = np.random.default_rng(seed)
    results: list[tuple[float, float, int]] = []
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
    async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=limits) as client:

        async def one(row: list[float]) -> None:
            sent = time.time()
            began = time.perf_counter()
            try:
                answer = await client.post(
                    f"{url}/v1/models/{service}:predict",
                    content=json.dumps({"instances": [row]}),
                    headers={"Content-Type": "application/json"},
                )
                status = answer.status_code
            except httpx.HTTPError:
                status = 0
            results.append((sent, time.perf_counter() - began, status))

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for second, rate in enumerate(rates):
            count = generator.poisson(float(rate))
            offsets = np.sort(generator.uniform(0.0, 1.0, count))
            for offset in offsets:
                delay = start + second + offset - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(rows[len(tasks) % len(rows)])))
        await asyncio.gather(*tasks)
    return results
