"""KServe's batcher in ``nb2pipe serve``: concurrent requests merged into one predict call of at
most N rows, answers back to the right request, the latency bound kept, a bad request failing
alone."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import numpy as np
import pytest

from nb2pipe.errors import Nb2PipeError
from nb2pipe.lifecycle.batcher import BatchPolicy, BatchQueueFull, BatchTimeout, MicroBatcher, merge_tables
from tests.support.registered import RegisteredModel
from tests.support.served import Server, serving


class CountingModel:
    """Answers 10 x the first column of each row; a negative value is the payload's fault."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls: list[int] = []
        self.seconds = seconds

    def predict(self, table: Any) -> list[float]:
        self.calls.append(len(table))
        time.sleep(self.seconds)
        if (table[:, 0] < 0).any():
            raise ValueError("negative values are not accepted")
        return (table[:, 0] * 10).tolist()


def row(value: float, count: int = 1) -> np.ndarray:
    return np.full((count, 2), float(value))


async def submit_all(batcher: MicroBatcher, tables: list[np.ndarray]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit(table) for table in tables), return_exceptions=True)


def test_concurrent_requests_are_merged_and_answered_in_order():
    model = CountingModel()
    batcher = MicroBatcher(BatchPolicy(4, 200), model.predict)
    answers = asyncio.run(submit_all(batcher, [row(i) for i in range(10)]))
    assert answers == [[i * 10.0] for i in range(10)]
    assert model.calls == [4, 4, 2]  # not 10 calls of one row
    assert (batcher.batches, batcher.batched_rows) == (3, 10)


def test_rows_of_many_row_requests_map_back():
    model = CountingModel()
    batcher = MicroBatcher(BatchPolicy(8, 100), model.predict)
    tables = [
        np.arange(start, start + size, dtype=float).repeat(2).reshape(size, 2)
        for start, size in [(0, 3), (3, 2), (5, 3)]
    ]
    answers = asyncio.run(submit_all(batcher, tables))
    assert answers == [[0.0, 10.0, 20.0], [30.0, 40.0], [50.0, 60.0, 70.0]]
    assert model.calls == [8]


def test_a_request_larger_than_a_batch_runs_alone_and_whole():
    model = CountingModel()
    batcher = MicroBatcher(BatchPolicy(2, 50), model.predict)
    answers = asyncio.run(submit_all(batcher, [row(1), row(2, count=5), row(3)]))
    assert answers == [[10.0], [20.0] * 5, [30.0]]
    assert model.calls == [1, 5, 1]  # the big one neither split nor joined


def test_a_lone_request_waits_at_most_the_latency_bound():
    async def timed(policy: BatchPolicy) -> float:
        batcher = MicroBatcher(policy, CountingModel().predict)
        start = time.monotonic()
        await batcher.submit(row(1))
        return time.monotonic() - start

    waited = asyncio.run(timed(BatchPolicy(100, 150)))
    assert 0.14 <= waited < 0.6  # the batch never filled: sent when the bound passed
    assert asyncio.run(timed(BatchPolicy(1, 5000))) < 0.5  # full at once: sent without waiting


def test_the_bound_counts_from_the_first_requests_arrival():
    async def scenario() -> tuple[float, list[int]]:
        model = CountingModel(seconds=0.3)
        batcher = MicroBatcher(BatchPolicy(10, 200), model.predict)
        first = asyncio.ensure_future(batcher.submit(row(1)))
        await asyncio.sleep(0.25)  # the first batch runs for 0.3 s; the next request queues meanwhile
        start = time.monotonic()
        await batcher.submit(row(2))
        await first
        return time.monotonic() - start, model.calls

    waited, calls = asyncio.run(scenario())
    assert calls == [1, 1]
    assert waited < 0.3 + 0.2 + 0.25  # the rest of the running batch + at most the bound, with slack


def test_a_bad_request_fails_alone():
    model = CountingModel()
    batcher = MicroBatcher(BatchPolicy(8, 100), model.predict, reject=ValueError)
    answers = asyncio.run(submit_all(batcher, [row(1), row(-1), row(3)]))
    assert answers[0] == [10.0] and answers[2] == [30.0]
    assert isinstance(answers[1], ValueError) and "negative" in str(answers[1])
    assert model.calls == [3, 1, 1, 1]  # the batch, then each request alone


def test_a_model_failure_fails_every_batch_mate():
    def broken(table: Any) -> list[float]:
        raise RuntimeError("out of memory")

    batcher = MicroBatcher(BatchPolicy(8, 50), broken, reject=ValueError)
    answers = asyncio.run(submit_all(batcher, [row(1), row(2)]))
    assert all(isinstance(answer, RuntimeError) for answer in answers)


def test_a_model_answering_too_few_rows_is_an_error_for_all():
    batcher = MicroBatcher(BatchPolicy(8, 50), lambda table: [1.0])
    answers = asyncio.run(submit_all(batcher, [row(1), row(2)]))
    assert all(isinstance(answer, Nb2PipeError) and "1 predictions" in str(answer) for answer in answers)


def test_the_queue_is_bounded_and_no_request_waits_for_ever():
    async def scenario() -> list[Any]:
        model = CountingModel(seconds=0.5)
        policy = BatchPolicy(1, 0, max_queued_requests=2, timeout_s=0.2)
        batcher = MicroBatcher(policy, model.predict)
        running = asyncio.ensure_future(batcher.submit(row(1)))
        await asyncio.sleep(0.05)  # its batch runs: it no longer queues
        later = await submit_all(batcher, [row(2), row(3), row(4)])
        return [*(await asyncio.gather(running, return_exceptions=True)), *later]

    answers = asyncio.run(scenario())
    assert isinstance(answers[3], BatchQueueFull)  # two wait already
    assert all(isinstance(answer, BatchTimeout) for answer in answers[:3])  # 0.2 s, not the 0.5 s batch


def test_policy_is_checked():
    with pytest.raises(Nb2PipeError, match="batch size"):
        BatchPolicy(0, 10)
    with pytest.raises(Nb2PipeError, match="latency"):
        BatchPolicy(4, -1)


def test_frames_merge_in_order():
    import pandas as pd

    merged = merge_tables([pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [3]})])
    assert merged["a"].tolist() == [1, 2, 3] and merged.index.tolist() == [0, 1, 2]


# -- the real server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def batched_server(registered_model: RegisteredModel) -> Any:
    with serving(
        "models:/cancer@champion",
        "cancer",
        registered_model.tracking_uri,
        registered_model.folder,
        "--max-batch-size",
        "8",
        "--max-latency-ms",
        "300",
    ) as running:
        yield running


def concurrently(server: Server, bodies: list[tuple[str, Any]]) -> list[tuple[int, Any]]:
    answers: list[tuple[int, Any]] = [(0, None)] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def send(index: int, path: str, body: Any) -> None:
        barrier.wait(timeout=10)
        answers[index] = server.post_json(path, body)

    threads = [threading.Thread(target=send, args=(i, *item)) for i, item in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.mark.slow
def test_served_batches_answer_each_request_its_own_rows(batched_server: Server, registered_model: RegisteredModel):
    labels = registered_model.model.predict(registered_model.features).tolist()
    # the classes alternate from request to request: a mix-up between requests would show
    zeros, ones = ([i for i, label in enumerate(labels) if label == wanted][:6] for wanted in (0, 1))
    features = registered_model.features.iloc[[i for pair in zip(zeros, ones, strict=True) for i in pair]]
    expected = registered_model.model.predict(features).tolist()
    assert expected == [0, 1] * 6
    bodies: list[tuple[str, Any]] = []
    for index in range(12):
        values = features.iloc[index].tolist()
        if index % 3 == 0:  # v2 requests share batches with v1 ones
            tensor = {"name": "input-0", "shape": [1, len(values)], "datatype": "FP64", "data": values}
            bodies.append(("/v2/models/cancer/infer", {"inputs": [tensor]}))
        else:
            bodies.append(("/v1/models/cancer:predict", {"instances": [values]}))
    bodies.append(("/v1/models/cancer:predict", {"instances": [[1.0, 2.0]]}))  # the wrong width
    start = time.monotonic()
    answers = concurrently(batched_server, bodies)
    elapsed = time.monotonic() - start
    for index, (status, body) in enumerate(answers[:12]):
        assert status == 200, (index, body)
        got = body["outputs"][0]["data"][0] if index % 3 == 0 else body["predictions"][0]
        assert got == expected[index], index
    status, body = answers[12]
    assert status == 400 and "values" in json.dumps(body)
    assert elapsed < 10  # 13 requests, batches of 8 sent within 300 ms of their first request


@pytest.mark.slow
def test_served_lone_request_is_sent_when_the_bound_passes(batched_server: Server, registered_model: RegisteredModel):
    values = registered_model.features.iloc[0].tolist()
    start = time.monotonic()
    status, body = batched_server.post_json("/v1/models/cancer:predict", {"instances": [values]})
    elapsed = time.monotonic() - start
    assert (
        status == 200
        and body["predictions"] == registered_model.model.predict(registered_model.features.iloc[:1]).tolist()
    )
    assert 0.29 <= elapsed < 3.0


@pytest.mark.slow
def test_the_served_model_sends_concurrent_requests_as_batches(
    registered_model: RegisteredModel, monkeypatch: pytest.MonkeyPatch
):
    from kserve.errors import InvalidInput

    from nb2pipe.lifecycle.served_model import model_class

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered_model.tracking_uri)
    model = model_class()("cancer", "models:/cancer@champion", batching=BatchPolicy(8, 200))
    model.load()
    rows = registered_model.features.iloc[:12].values.tolist()

    async def send() -> list[Any]:
        bodies = [{"instances": [values]} for values in rows] + [{"instances": [[1.0, 2.0]]}]
        return await asyncio.gather(*(model.predict(body) for body in bodies), return_exceptions=True)

    answers = asyncio.run(send())
    expected = registered_model.model.predict(registered_model.features.iloc[:12]).tolist()
    assert [answer["predictions"][0] for answer in answers[:12]] == expected
    assert isinstance(answers[12], InvalidInput)  # the wrong width fails before it joins a batch
    assert (model.batcher.batches, model.batcher.batched_rows) == (2, 12)  # 8 + 4, not 12 calls
