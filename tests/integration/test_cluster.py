"""The local three-node cluster of scripts/cluster.sh: it forms, every node serves its management
API, and a node that is killed comes back and rejoins."""

from __future__ import annotations

import pytest

from tests.integration.local_cluster import LocalCluster
from tests.integration.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.mark.timeout(300)
def test_three_nodes_form_a_cluster_and_a_killed_node_rejoins(cluster: LocalCluster) -> None:
    everyone = set(cluster.nodes)
    assert cluster.running_nodes(seen_from=1) == everyone
    for index, node in enumerate(cluster.nodes, start=1):
        assert cluster.management_node(index) == node

    cluster.kill(1)  # the node the others joined
    survivors = everyone - {cluster.node(1)}
    wait_until(
        lambda: cluster.running_nodes(seen_from=2) == survivors,
        timeout_s=30,
        what="the cluster to see 2 running nodes",
    )
    assert cluster.running_nodes(seen_from=3) == survivors
    assert cluster.management_node(2) == cluster.node(2)  # not blinded by the loss of node 1

    cluster.start(1)
    wait_until(
        lambda: cluster.running_nodes(seen_from=2) == everyone,
        timeout_s=60,
        what="the restarted node to rejoin",
    )
    assert cluster.running_nodes(seen_from=1) == everyone
    assert cluster.management_node(1) == cluster.node(1)
