"""scripts/cluster.sh starts a node once more when its server ends while starting, and only then.

A stand-in for the RabbitMQ binaries (CONVSIM_RABBITMQ_BIN_DIR) exercises the real script's
waiting without a broker: its server ends at once on its first FAILURES starts and listens on the
node's AMQP port on the next; its rabbitmqctl says "not ready" on its first NOT_READY calls.
"""

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster.sh"

# The stand-in server: each start is a line in $HOME/attempts and one in the node's log (appended
# to across starts, as RabbitMQ's is); the first FAILURES starts end at once, printing why, a
# later one holds the AMQP port.
SERVER = """#!/usr/bin/env bash
echo x >>"$HOME/attempts"; attempt="$(wc -l <"$HOME/attempts")"
node_log="$RABBITMQ_LOG_BASE/$RABBITMQ_NODENAME.log"
mkdir -p "$RABBITMQ_LOG_BASE"; echo "node log of start $attempt" >>"$node_log"
if [ "$attempt" -le "$FAILURES" ]; then echo "pretend boot failure $attempt"; exit 1; fi
echo $$ >"$HOME/server.pid"
exec python3 -c 'import socket, sys, time
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
time.sleep(60)' "$RABBITMQ_NODE_PORT"
"""

# The stand-in rabbitmqctl (await_startup): not ready on its first NOT_READY calls, then ready.
CTL = """#!/usr/bin/env bash
echo x >>"$HOME/ctl_calls"
[ "$(wc -l <"$HOME/ctl_calls")" -gt "$NOT_READY" ]
"""


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (checked, not reserved), below the
    ephemeral range and apart from the ranges the integration tests' brokers and clusters use."""
    for first in range(31000, 32700, 13):
        try:
            for port in range(first, first + count):
                with socket.create_server(("127.0.0.1", port)):
                    pass
        except OSError:
            continue
        return first
    raise AssertionError("no free ports")


def _start_node_2(
    tmp_path: Path, failures: int, not_ready: int = 0
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "rabbitmq-server").write_text(SERVER)
    (bin_dir / "rabbitmqctl").write_text(CTL)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    base = tmp_path / "cluster"
    (base / "cvt2" / "mnesia").mkdir(parents=True)
    first = _free_ports(6)  # nodes 1 and 2: AMQP, management, distribution
    amqp, management, dist = first, first + 2, first + 4
    env = {
        "PATH": "/usr/bin:/bin",
        "FAILURES": str(failures),
        "NOT_READY": str(not_ready),
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
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(server.read_text()), signal.SIGKILL)


def _starts(tmp_path: Path) -> int:
    return len((tmp_path / "cluster" / "attempts").read_text().splitlines())


def test_a_node_that_ends_while_starting_is_started_once_more(tmp_path: Path) -> None:
    result = _start_node_2(tmp_path, failures=1)
    assert result.returncode == 0, result.stderr
    assert "ended while starting; starting it once more" in result.stderr
    assert "pretend boot failure 1" in result.stderr  # what it printed is shown
    assert "runs again" in result.stderr
    assert _starts(tmp_path) == 2
    node_dir = tmp_path / "cluster" / "cvt2"
    assert "pretend boot failure 1" in (node_dir / "server.log.1").read_text()  # kept for later


def test_a_node_that_ends_while_starting_twice_fails_with_what_it_printed(tmp_path: Path) -> None:
    result = _start_node_2(tmp_path, failures=2)
    assert result.returncode == 1, result.stderr
    assert "pretend boot failure 1" in result.stderr
    assert "ended while starting, twice" in result.stderr
    assert "pretend boot failure 2" in result.stderr
    assert _starts(tmp_path) == 2
    # each start's node log lines once: the second start's output does not repeat the first's
    assert result.stderr.count("node log of start 1") == 1
    assert result.stderr.count("node log of start 2") == 1


def test_a_node_slow_to_start_is_waited_for_not_started_again(tmp_path: Path) -> None:
    result = _start_node_2(tmp_path, failures=0, not_ready=3)
    assert result.returncode == 0, result.stderr
    assert "ended while starting" not in result.stderr
    assert "runs again" in result.stderr
    assert _starts(tmp_path) == 1
    assert len((tmp_path / "cluster" / "ctl_calls").read_text().splitlines()) == 4
