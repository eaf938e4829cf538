"""scripts/cluster.sh starts a node once more when its server ends while starting.

A stand-in for the RabbitMQ binaries (CONVSIM_RABBITMQ_BIN_DIR) ends at once on its first start
and listens on the node's AMQP port on the next, so the real script's waiting is exercised
without a broker.
"""

import os
import signal
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster.sh"

# The stand-in server: fails while the marker is absent (and leaves it), then holds the port.
SERVER = """#!/usr/bin/env bash
echo x >>"$HOME/attempts"; attempt="$(wc -l <"$HOME/attempts")"
if [ "$attempt" -le "$FAILURES" ]; then echo "pretend boot failure $attempt"; exit 1; fi
echo $$ >"$HOME/server.pid"
exec python3 -c 'import socket, sys, time
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
time.sleep(60)' "$RABBITMQ_NODE_PORT"
"""


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (checked, not reserved)."""
    for first in range(41000, 60000, 97):
        try:
            for port in range(first, first + count):
                with socket.create_server(("127.0.0.1", port)):
                    pass
        except OSError:
            continue
        return first
    raise AssertionError("no free ports")


def _start_node_2(tmp_path: Path, failures: int) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "rabbitmq-server").write_text(SERVER)
    (bin_dir / "rabbitmqctl").write_text("#!/bin/sh\nexit 0\n")  # await_startup: ready
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    base = tmp_path / "cluster"
    (base / "cvt2" / "mnesia").mkdir(parents=True)
    first = _free_ports(6)  # nodes 1 and 2: AMQP, management, distribution
    amqp, management, dist = first, first + 2, first + 4
    env = {
        "PATH": "/usr/bin:/bin",
        "FAILURES": str(failures),
        "CONVSIM_RABBITMQ_BIN_DIR": str(bin_dir),
        "CONVSIM_CLUSTER_NODE_PREFIX": "cvt",
        "CONVSIM_CLUSTER_DIR": str(base),
        "CONVSIM_CLUSTER_AMQP_PORT": str(amqp),
        "CONVSIM_CLUSTER_MANAGEMENT_PORT": str(management),
        "CONVSIM_CLUSTER_DIST_PORT": str(dist),
        "CONVSIM_CLUSTER_START_TIMEOUT_S": "20",
    }
    try:
        return subprocess.run(
            ["bash", str(SCRIPT), "start", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server = base / "server.pid"
        if server.exists():
            os.kill(int(server.read_text()), signal.SIGKILL)


def test_a_node_that_ends_while_starting_is_started_once_more(tmp_path: Path) -> None:
    result = _start_node_2(tmp_path, failures=1)
    assert result.returncode == 0, result.stderr
    assert "ended while starting; starting it once more" in result.stderr
    assert "pretend boot failure 1" in result.stderr  # what it printed is shown
    assert "runs again" in result.stderr


def test_a_node_that_ends_while_starting_twice_fails_with_what_it_printed(tmp_path: Path) -> None:
    result = _start_node_2(tmp_path, failures=2)
    assert result.returncode == 1
    assert "ended while starting, twice" in result.stderr
    assert "pretend boot failure 2" in result.stderr
