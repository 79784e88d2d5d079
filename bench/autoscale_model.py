"""The autoscale bench's model: a fixed cost per call plus a cost per row, spent waiting rather than
computing, so that several replicas' worth of capacity fits this machine's 2 cores next to the load
generator, the router and Prometheus (a CPU-bound model saturates the cores at ~1.5 replicas and
the bench would measure the cores, not the policies). Batching helps it as it helps a real model
whose per-call overhead is large: a batch of n takes ``CALL_S + n * ROW_S``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

CALL_S = 0.02
ROW_S = 0.02


class SlowModel:
    def predict(self, rows: Any) -> np.ndarray:
        count = len(rows)
        time.sleep(CALL_S + ROW_S * count)
        return np.zeros(count, dtype=np.int64)
