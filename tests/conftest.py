"""Shared test configuration."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cluster tests run together (they share one local cluster); tests that restart the
    broker run after the rest, so nothing else runs across the outage; the log audit runs last
    of all, over the logs of everything before it."""

    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("audit_logs"):
            return 3
        if item.get_closest_marker("broker_restart"):
            return 2
        return 1 if item.get_closest_marker("cluster") else 0

    items.sort(key=order)
