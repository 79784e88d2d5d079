"""KServe's batcher, in process: what ``nb2pipe serve --max-batch-size N --max-latency-ms MS`` puts
in front of the model's ``predict``.

On a cluster KServe batches in its agent, a Go sidecar that merges the v1 ``instances`` of the
requests arriving within ``maxLatency`` ms into one call of at most ``maxBatchSize`` rows and
splits the answers back. KServe's Python ModelServer has no batcher, so a local replica would
serve the plan's batch sizes unbatched; :class:`MicroBatcher` does the agent's job on the
server's event loop, for v1 and v2 requests alike (both become the model's table first):

- a batch is sent when it holds ``max_batch_size`` rows or ``max_latency_ms`` after its first
  request arrived, whichever comes first; a request larger than a batch is sent alone, unsplit;
- batches run one at a time in a worker thread, so the event loop keeps reading requests (they
  form the next batch) while the model computes;
- a batch the model rejects (``reject``: the payload's fault) is retried request by request, so
  only the bad request fails; any other failure fails the whole batch (the model's fault);
- the queue is bounded (:class:`BatchQueueFull` when full) and no request waits longer than
  ``timeout_s`` (:class:`BatchTimeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nb2pipe.errors import Nb2PipeError

#: KServe's defaults for a ``batcher: {}`` without maxBatchSize / maxLatency
KSERVE_BATCH_SIZE, KSERVE_MAX_LATENCY_MS = 32, 5000
#: requests that may wait for a batch before new ones are refused
MAX_QUEUED_REQUESTS = 1024
#: seconds a request may wait for its batch's answer, queueing included
REQUEST_TIMEOUT_S = 60.0


class BatchQueueFull(Nb2PipeError):
    """Too many requests wait for a batch: the server is overloaded (answer 503, retry later)."""


class BatchTimeout(Nb2PipeError):
    """A request's batch did not answer within the batcher's timeout."""


@dataclass(frozen=True)
class BatchPolicy:
    #: most rows in one call of the model's predict (KServe's ``maxBatchSize``)
    max_batch_size: int
    #: most milliseconds the first request of a batch waits for it to fill (KServe's ``maxLatency``)
    max_latency_ms: int
    max_queued_requests: int = MAX_QUEUED_REQUESTS
    timeout_s: float = REQUEST_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise Nb2PipeError(f"the batch size must be at least 1, not {self.max_batch_size}")
        if self.max_latency_ms < 0:
            raise Nb2PipeError(f"the batch latency must be at least 0 ms, not {self.max_latency_ms}")


@dataclass
class _Waiting:
    table: Any
    rows: int
    answer: asyncio.Future[list[Any]]
    #: the loop's time when it arrived: its batch leaves at most max_latency_ms later
    arrived_at: float


def merge_tables(tables: Sequence[Any]) -> Any:
    """One table of the rows of ``tables`` (numpy matrices or pandas frames, as the predictor
    builds them), in order."""
    if len(tables) == 1:
        return tables[0]
    if hasattr(tables[0], "iloc"):
        import pandas as pd

        return pd.concat(list(tables), ignore_index=True)
    import numpy as np

    return np.concatenate(list(tables))


class MicroBatcher:
    """Merges concurrent ``submit`` calls into batched calls of ``predict`` (see the module)."""

    def __init__(
        self,
        policy: BatchPolicy,
        predict: Callable[[Any], list[Any]],
        *,
        reject: type[Exception] = ValueError,
        merge: Callable[[Sequence[Any]], Any] = merge_tables,
    ) -> None:
        self.policy = policy
        self._predict = predict
        self._reject = reject
        self._merge = merge
        self._waiting: deque[_Waiting] = deque()
        self._arrived: asyncio.Event | None = None
        self._collector: asyncio.Task[None] | None = None
        #: batches sent to the model, and the rows in them (what a test or a metric reads)
        self.batches = 0
        self.batched_rows = 0

    async def submit(self, table: Any) -> list[Any]:
        """The model's answers for ``table``'s rows, predicted in a batch with other requests'."""
        arrived = self._started()
        if len(self._waiting) >= self.policy.max_queued_requests:
            raise BatchQueueFull(f"{self.policy.max_queued_requests} requests already wait for a batch; retry later")
        loop = asyncio.get_running_loop()
        waiting = _Waiting(table, len(table), loop.create_future(), loop.time())
        self._waiting.append(waiting)
        arrived.set()
        try:
            return await asyncio.wait_for(asyncio.shield(waiting.answer), self.policy.timeout_s)
        except TimeoutError:
            waiting.answer.cancel()  # the collector skips it if it is still queued
            raise BatchTimeout(f"no answer within {self.policy.timeout_s:g} s") from None

    async def close(self) -> None:
        """Stop collecting; requests still queued fail with :class:`BatchTimeout`."""
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        while self._waiting:
            _settle(self._waiting.popleft(), BatchTimeout("the server stopped before the batch ran"))

    def _started(self) -> asyncio.Event:
        # created on the serving loop's first request: the event and task belong to that loop
        if self._arrived is None:
            self._arrived = asyncio.Event()
        if self._collector is None or self._collector.done():
            self._collector = asyncio.get_running_loop().create_task(self._collect(self._arrived))
        return self._arrived

    async def _collect(self, arrived: asyncio.Event) -> None:
        # a deque and an event rather than an asyncio.Queue: a get cancelled by a timeout can
        # lose its item on Python 3.11; here a request leaves the deque only into a batch
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                arrived.clear()
                await arrived.wait()
            batch: list[_Waiting] = []
            rows = 0
            deadline = self._waiting[0].arrived_at + self.policy.max_latency_ms / 1000
            while rows < self.policy.max_batch_size:
                if not self._waiting:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    arrived.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(arrived.wait(), left)
                    continue
                waiting = self._waiting[0]
                if waiting.answer.done():
                    self._waiting.popleft()  # timed out while queued
                    continue
                if batch and rows + waiting.rows > self.policy.max_batch_size:
                    break  # it starts the next batch
                batch.append(self._waiting.popleft())
                rows += waiting.rows
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[_Waiting]) -> None:
        self.batches += 1
        self.batched_rows += sum(waiting.rows for waiting in batch)
        try:
            predictions = await asyncio.to_thread(self._predict, self._merge([w.table for w in batch]))
        except self._reject as exc:
            if len(batch) == 1:
                _settle(batch[0], exc)
                return
            # one request's rows spoil the batch: find it, the others still get their answers
            for waiting in batch:
                try:
                    _settle(waiting, await asyncio.to_thread(self._predict, waiting.table))
                except Exception as single:  # delivered to that request's caller
                    _settle(waiting, single)
            return
        except Exception as exc:  # the model's failure is every batch-mate's answer
            for waiting in batch:
                _settle(waiting, exc)
            return
        if len(predictions) != sum(waiting.rows for waiting in batch):
            error = Nb2PipeError(f"the model answered {len(predictions)} predictions for {len(batch)} requests' rows")
            for waiting in batch:
                _settle(waiting, error)
            return
        start = 0
        for waiting in batch:
            _settle(waiting, predictions[start : start + waiting.rows])
            start += waiting.rows


def _settle(waiting: _Waiting, outcome: list[Any] | BaseException) -> None:
    if waiting.answer.done():
        return  # its caller stopped waiting
    if isinstance(outcome, BaseException):
        waiting.answer.set_exception(outcome)
    else:
        waiting.answer.set_result(outcome)
