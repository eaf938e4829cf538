"""Shared test configuration."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the broker run last, so nothing else runs across the outage."""
    items.sort(key=lambda item: item.get_closest_marker("broker_restart") is not None)
