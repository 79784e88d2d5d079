"""Golden files of the compiled IR for every example notebook.

Run ``pytest tests/test_golden.py --update-golden`` after an intended change to the output,
then review the diff of ``tests/golden/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nb2pipe.compiler import compile_source
from tests.support.nbtools import EXAMPLES

GOLDEN = Path(__file__).parent / "golden"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_compiled_output_matches_golden(notebook: Path, update_golden: bool):
    produced = compile_source(notebook.read_text(encoding="utf-8"), notebook.name).yaml
    golden = GOLDEN / f"{notebook.stem}.pipeline.yaml"
    if update_golden:
        golden.write_text(produced, encoding="utf-8")
    assert golden.exists(), f"no golden for {notebook.name}: run pytest --update-golden"
    assert produced == golden.read_text(encoding="utf-8"), f"{golden.name} is stale: run pytest --update-golden"


def test_every_golden_has_an_example():
    assert sorted(p.name for p in GOLDEN.glob("*.pipeline.yaml")) == sorted(
        f"{p.stem}.pipeline.yaml" for p in NOTEBOOKS
    )
