"""The broker the scripts start listens on loopback only: AMQP, management, Erlang
distribution and epmd (the last two bind to every interface by default)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fakes.server import free_port
from tests.integration.processes import wait_until
from tests.integration.rabbitmqctl import broker_script

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


def _listening_addresses(port: int) -> list[str]:
    lines = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    return [line.split()[3].rpartition(":")[0] for line in lines]


def _epmd_listens(port: int, *, on_all: bool) -> bool:
    addresses = _listening_addresses(port)
    return bool(addresses) and (any(a not in LOOPBACK for a in addresses) == on_all)


def _secure_epmd(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return broker_script("secure-epmd", env)


def test_an_epmd_left_on_every_interface_by_the_package_is_stopped(tmp_path: Path) -> None:
    """The Debian package's postinst starts an epmd on 0.0.0.0 and [::]; broker.sh must not
    leave it there (it would serve our node too). Here: a stray epmd on a free port."""
    if shutil.which("ss") is None or shutil.which("epmd") is None:
        pytest.skip("needs `ss` and Erlang's `epmd` (installed with rabbitmq-server)")
    port = free_port()
    env = {**os.environ, "ERL_EPMD_PORT": str(port)}
    subprocess.run(["epmd", "-daemon"], env=env, check=True)
    try:
        wait_until(lambda: _epmd_listens(port, on_all=True), timeout_s=10, what="a stray epmd")
        done = _secure_epmd(env)
        assert done.returncode == 0, done.stderr
        assert "stopping an epmd" in done.stderr
        assert not _epmd_listens(port, on_all=True), _listening_addresses(port)
    finally:
        subprocess.run(["epmd", "-kill"], env=env, capture_output=True)


def test_a_loopback_epmd_is_left_alone() -> None:
    if shutil.which("ss") is None or shutil.which("epmd") is None:
        pytest.skip("needs `ss` and Erlang's `epmd` (installed with rabbitmq-server)")
    port = free_port()
    env = {**os.environ, "ERL_EPMD_PORT": str(port), "ERL_EPMD_ADDRESS": "127.0.0.1"}
    subprocess.run(["epmd", "-daemon"], env=env, check=True)
    try:
        wait_until(lambda: _epmd_listens(port, on_all=False), timeout_s=10, what="epmd")
        done = _secure_epmd(env)
        assert done.returncode == 0, done.stderr
        assert _epmd_listens(port, on_all=False), _listening_addresses(port)
    finally:
        subprocess.run(["epmd", "-kill"], env=env, capture_output=True)
