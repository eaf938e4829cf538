"""Shared test configuration."""

from __future__ import annotations

import pytest

CLUSTER_GROUP = "cluster"


# First, so that pytest-xdist's scheduler (registered after this file) sees the groups.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cluster tests run together (they share one local cluster); tests that restart the
    broker run after the rest, so nothing else runs across the outage; the log audit runs last
    of all, over the logs of everything before it.

    Under pytest-xdist (``make test``'s parallel pass, ``--dist loadgroup``) each file runs
    in one worker, since many share a module's stack, and the cluster tests in one worker
    between them. The tests that restart the broker or change a setting of the whole node
    (markers ``broker_restart``, ``serial``) and the audit are left to the serial pass."""

    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("audit_logs"):
            return 3
        if item.get_closest_marker("broker_restart"):
            return 2
        return 1 if item.get_closest_marker("cluster") else 0

    for item in items:
        is_cluster = item.get_closest_marker("cluster") is not None
        group = CLUSTER_GROUP if is_cluster else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=order)
