"""The broker the scripts start listens on loopback only: AMQP, management, Erlang
distribution and epmd (the last two bind to every interface by default)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.integration

BROKER_PORTS = {5672: "AMQP", 15672: "management", 25672: "Erlang distribution", 4369: "epmd"}
LOOPBACK = ("127.0.0.1", "[::1]", "::1", "localhost")


@pytest.mark.usefixtures("local_broker")
def test_the_broker_listens_on_loopback_only() -> None:
    if shutil.which("ss") is None:
        pytest.skip("no `ss` here to list listening sockets")
    listening = subprocess.run(
        ["ss", "-ltnH"], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    seen: dict[int, list[str]] = {}
    for line in listening:
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        if port.isdigit() and int(port) in BROKER_PORTS:
            seen.setdefault(int(port), []).append(address)
    assert 5672 in seen, seen
    assert 15672 in seen, seen
    for port, addresses in seen.items():
        exposed = [a for a in addresses if a not in LOOPBACK]
        assert not exposed, f"{BROKER_PORTS[port]} ({port}) listens on {exposed}"
