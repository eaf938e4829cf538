"""The local broker's Erlang schedulers: one on a machine of 2 CPUs or fewer (where it shares
its cores with the services), CONVSIM_BROKER_SCHEDULERS otherwise chosen, a bad value refused."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.integration.rabbitmqctl import broker_script, can_control_broker, rabbitmqctl

pytestmark = pytest.mark.integration


def _flags(schedulers: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONVSIM_BROKER_SCHEDULERS"}
    if schedulers is not None:
        env["CONVSIM_BROKER_SCHEDULERS"] = schedulers
    return broker_script("scheduler-flags", env)


def _default_schedulers() -> int | None:
    return 1 if len(os.sched_getaffinity(0)) <= 2 else None


def test_the_scheduler_flags_follow_the_setting_and_the_machine() -> None:
    assert _flags("3").stdout.strip() == "+S 3:3 +SDcpu 3:3"
    default = _default_schedulers()
    expected = "" if default is None else f"+S {default}:{default} +SDcpu {default}:{default}"
    assert _flags(None).stdout.strip() == expected
    for bad in ("0", "two", "-1"):
        refused = _flags(bad)
        assert refused.returncode == 2, bad
        assert "CONVSIM_BROKER_SCHEDULERS" in refused.stderr


@pytest.mark.usefixtures("local_broker")
def test_the_broker_the_script_started_runs_with_those_schedulers() -> None:
    if not can_control_broker():
        pytest.skip("rabbitmqctl cannot reach the local broker")
    configured = os.environ.get("CONVSIM_BROKER_SCHEDULERS")
    expected = int(configured) if configured else _default_schedulers()
    online = int(rabbitmqctl("-q", "eval", "erlang:system_info(schedulers_online).").strip())
    assert online == (expected or os.cpu_count())
