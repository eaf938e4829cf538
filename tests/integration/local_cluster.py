"""A local RabbitMQ cluster for the cluster tests: scripts/cluster.sh with ports, node names and a
data directory of the test's own, torn down whatever happens."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

__all__ = ["LocalCluster", "local_cluster"]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster.sh"
SIZE = 3
RESTARTED = "starting it once more"
"""What cluster.sh prints when a node's server ended while starting and it starts it again."""
REQUIRE_CLUSTER_VARIABLE = "CONVSIM_TEST_REQUIRE_CLUSTER"
"""Set (``make test`` does): three nodes that cannot start fail the cluster tests instead of
skipping them."""


def _free_block(start: int, stop: int, size: int = SIZE) -> int:
    """The first port of `size` consecutive free loopback ports in [start, stop) (below the
    ephemeral range, so that nothing takes them by chance while the nodes start)."""
    for first in range(start, stop, size):
        if all(_free(port) for port in range(first, first + size)):
            return first
    raise RuntimeError(f"no {size} consecutive free ports in {start}..{stop}")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ScriptFailed(subprocess.CalledProcessError):
    """scripts/cluster.sh failed: what it said is the diagnosis, so the message keeps it."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@dataclass(frozen=True)
class LocalCluster:
    """Three nodes <prefix>1..3@localhost on loopback, driven through scripts/cluster.sh."""

    prefix: str
    base: Path
    amqp_port: int
    management_port: int
    dist_port: int

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONVSIM_CLUSTER_SIZE": str(SIZE),
            "CONVSIM_CLUSTER_NODE_PREFIX": self.prefix,
            "CONVSIM_CLUSTER_DIR": str(self.base),
            "CONVSIM_CLUSTER_AMQP_PORT": str(self.amqp_port),
            "CONVSIM_CLUSTER_MANAGEMENT_PORT": str(self.management_port),
            "CONVSIM_CLUSTER_DIST_PORT": str(self.dist_port),
        }

    def node(self, index: int) -> str:
        return f"{self.prefix}{index}@localhost"

    @property
    def nodes(self) -> list[str]:
        return [self.node(index) for index in range(1, SIZE + 1)]

    def amqp_url(self, index: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port + index - 1}/"

    def management_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.management_port + index - 1}"

    def script(self, *args: str, timeout_s: float = 240) -> str:
        result = subprocess.run(
            ["bash", str(SCRIPT), *args],
            check=False,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout_s,
            cwd=REPO,
        )
        if result.returncode != 0:
            raise ScriptFailed(result.returncode, result.args, result.stdout, result.stderr)
        if RESTARTED in result.stderr:  # passed, but CI's summary says so (see pyproject.toml)
            warnings.warn(
                f"cluster.sh started a node once more ({' '.join(args)}): {result.stderr[-1500:]}",
                stacklevel=2,
            )
        return result.stdout

    def kill(self, index: int) -> None:
        self.script("kill", str(index), timeout_s=30)

    def start(self, index: int) -> None:
        self.script("start", str(index))

    def running_nodes(self, seen_from: int) -> set[str]:
        """The running nodes of the cluster, as node `seen_from` sees them."""
        status = json.loads(
            self.script("ctl", str(seen_from), "-q", "cluster_status", "--formatter", "json")
        )
        return set(status["running_nodes"])

    def management_node(self, index: int) -> str:
        """The node that node `index`'s management API says it is (it answers, or this raises)."""
        response = httpx.get(
            f"{self.management_url(index)}/api/overview", auth=("guest", "guest"), timeout=10
        )
        response.raise_for_status()
        return str(response.json()["node"])


@contextmanager
def local_cluster(base: Path) -> Iterator[LocalCluster]:
    """Bring a three-node cluster up under `base`; ALWAYS tear it down (stop, remove its state),
    whether the test passes, fails or times out. Skips, saying why, only where three nodes
    cannot start (fails instead with CONVSIM_TEST_REQUIRE_CLUSTER set, as under make test)."""
    cluster = LocalCluster(
        prefix=f"cvt{uuid.uuid4().hex[:6]}",
        base=base / "cluster",
        amqp_port=_free_block(5700, 5900),
        management_port=_free_block(15700, 15900),
        dist_port=_free_block(26000, 26300),
    )
    try:
        try:
            cluster.script("up")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = (exc.stderr or "") if isinstance(exc.stderr, str) else ""
            why = f"three RabbitMQ nodes cannot start here: {output.strip()[-1500:]}"
            if os.environ.get(REQUIRE_CLUSTER_VARIABLE):  # make test: never a silent skip
                pytest.fail(why)
            pytest.skip(why)
        yield cluster
    finally:
        _keep_node_logs(cluster.base, base / "cluster-node-logs")
        cluster.script("down", timeout_s=120)


def _keep_node_logs(cluster_dir: Path, kept: Path) -> None:
    """Copy the nodes' logs (and what each printed while starting, ``server.log``, and on its
    start before, ``server.log.1``) beside the test's logs: ``down`` removes the cluster's
    directory."""
    for log in [*cluster_dir.glob("*/log/*.log"), *cluster_dir.glob("*/server.log*")]:
        node = log.parent.parent if log.parent.name == "log" else log.parent
        target = kept / node.name / log.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, target)
