"""Drift between two kept tables: the glue ``nb2pipe drift`` calls."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from nb2pipe.monitoring.drift import check_drift
from nb2pipe.store.payloads import PayloadCounts
from nb2pipe.store.tables import load_reference_table, load_table, named_like

if TYPE_CHECKING:
    import pandas

    from nb2pipe.monitoring.drift import DriftResult, DriftSettings


def drift_of_files(
    reference: str | Path, current: str | Path, settings: DriftSettings, store: str | Path | None = None
) -> tuple[DriftResult, pandas.DataFrame, pandas.DataFrame]:
    """Load both tables (the reference may be a registered model's training data), give a
    table of generic column names the other's names, and test for drift. When ``current`` is a
    payload log, the result counts the requests the model rejected (left out of the test)."""

    reference_table = load_reference_table(reference, store)
    counts = PayloadCounts()
    current_table = named_like(load_table(current, counts), reference_table)
    reference_table = named_like(reference_table, current_table)
    result = replace(check_drift(reference_table, current_table, settings), rejected_requests=counts.rejected)
    return result, reference_table, current_table
