"""pytest switches shared by the suite."""

from __future__ import annotations

import pytest
from registered import registered_model  # noqa: F401  (a session fixture)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
