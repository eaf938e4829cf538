"""Driving the local broker node itself (settings, restarts) for the fault tests."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.integration.processes import REPO

__all__ = ["NODE", "broker_script", "can_control_broker", "rabbitmqctl"]

NODE = os.environ.get("CONVSIM_TEST_RABBITMQ_NODE", "rabbit@localhost")


def rabbitmqctl(*args: str, timeout_s: float = 120) -> str:
    result = subprocess.run(
        ["rabbitmqctl", *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "RABBITMQ_NODENAME": NODE},
        timeout=timeout_s,
    )
    return result.stdout


def can_control_broker() -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    try:
        rabbitmqctl("-q", "status", timeout_s=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


def broker_script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``scripts/broker.sh COMMAND`` with exactly ``env``; its exit code is the caller's to read."""
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "broker.sh"), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
