"""Shared test configuration."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cluster tests run together (they share one local cluster); tests that restart the
    broker run after the rest, so nothing else runs across the outage; the log audit runs last
    of all, over the logs of everything before it.

    ``make test`` runs the other tests first in two pytest-xdist workers (``--dist loadfile``:
    a file's tests in one worker, since many share a stack started for the module), then in
    one process the tests that change a setting of the whole node (marker ``serial``), the
    cluster tests, the restarts and the audit, in this order."""

    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("audit_logs"):
            return 3
        if item.get_closest_marker("broker_restart"):
            return 2
        return 1 if item.get_closest_marker("cluster") else 0

    items.sort(key=order)
