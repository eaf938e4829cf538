"""No secret reaches a log: stream tokens stay out of access logs, a settings error at startup
echoes no value, the AMQP password is never written; and after every other test, the logs of
every process the suite ran are searched for the secrets it handed out."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.fakes.bot_api import NORMAL_BOT
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import (
    AMQP_TEST_PASSWORD,
    API_KEY_ALPHA,
    SECRETS,
    IsolatedStack,
    Stack,
)
from tests.integration.log_tap import eventually
from tests.integration.processes import ServiceProcess

pytestmark = pytest.mark.integration

ALPHA = {"Authorization": f"Bearer {API_KEY_ALPHA}"}


LOG_ROOT_VARIABLE = "CONVSIM_TEST_LOG_ROOT"
"""Where every log of the run is, when the run is more than this pytest process (``make test``
runs a parallel pass, then a serial one): the folder holding both passes' ``--basetemp``."""


def logs_of_the_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get(LOG_ROOT_VARIABLE)
    return Path(root) if root else tmp_path_factory.getbasetemp()


def _assert_free_of(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        assert secret[:12] not in text


async def test_a_stream_token_is_not_in_the_access_log(isolated: IsolatedStack) -> None:
    gateway, url = isolated.start_gateway("gateway-token-log", CONVSIM_API_KEYS=API_KEY_ALPHA)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        created = await client.post("/v1/simulations", json=request_body(NORMAL_BOT), headers=ALPHA)
        simulation_id = created.json()["simulation_id"]
        token = (
            await client.post(f"/v1/simulations/{simulation_id}/stream-token", headers=ALPHA)
        ).json()["token"]
        async with aconnect_sse(
            client, "GET", f"/v1/simulations/{simulation_id}/events", params={"access_token": token}
        ) as source:
            assert source.response.status_code == 200
            async for sse in source.aiter_sse():
                if sse.data:
                    break  # queued: no orchestrator runs here
    events_path = f"/v1/simulations/{simulation_id}/events"
    await eventually(
        lambda: f"GET {events_path} HTTP" in gateway.log_text(),
        timeout_s=10,
        what="the access log line of the event stream",
    )
    log = gateway.log_text()
    assert token not in log
    assert token[:16] not in log
    assert "access_token" not in log


async def test_settings_errors_at_startup_show_no_value(isolated: IsolatedStack) -> None:
    secret_url = f"amqp://convsim:{AMQP_TEST_PASSWORD}@127.0.0.1:5672/x"
    gateway = ServiceProcess(
        "gateway-bad-keys",
        "services.gateway",
        {
            **isolated.env,
            "CONVSIM_API_KEYS": f"{API_KEY_ALPHA},short",
            "CONVSIM_AMQP_URL": secret_url,
        },
        isolated.logs,
    )
    orchestrator = ServiceProcess(
        "orchestrator-bad-lease",
        "services.orchestrator",
        {
            **isolated.env,
            "CONVSIM_AMQP_URL": secret_url,
            "CONVSIM_SIMULATION_DEADLINE_S": "3600",
            "CONVSIM_REQUEST_LEASE_S": "60",
        },
        isolated.logs,
    )
    for process, named in (
        (gateway, "CONVSIM_API_KEYS"),
        (orchestrator, "CONVSIM_REQUEST_LEASE_S"),
    ):
        assert process.process.wait(timeout=60) != 0
        process.stop()
        text = process.log_text()
        assert named in text  # it says what is wrong ...
        assert "input_value" not in text  # ... and never what was given
        _assert_free_of(text, *SECRETS)


async def test_the_amqp_password_is_never_logged(stack: Stack, isolated: IsolatedStack) -> None:
    user = f"convsim-test-{uuid.uuid4().hex[:8]}"
    amqp_url = isolated.broker.admin.create_user(user, AMQP_TEST_PASSWORD, isolated.broker.vhost)
    try:
        isolated.start_orchestrator("orchestrator-password", CONVSIM_AMQP_URL=amqp_url)
        gateway, url = isolated.start_gateway("gateway-password", CONVSIM_AMQP_URL=amqp_url)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            simulation_id = await create_simulation(client, request_body(NORMAL_BOT))
            assert (await read_events(client, simulation_id))[-1].type == "completed"
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        unreachable = ServiceProcess(
            "gateway-password-refused",
            "services.gateway",
            {**isolated.env, "CONVSIM_AMQP_URL": amqp_url.replace(":5672/", f":{port}/")},
            isolated.logs,
        )
        assert unreachable.process.wait(timeout=60) != 0
        unreachable.stop()
        for process in (*isolated.processes, unreachable):
            _assert_free_of(process.log_text(), AMQP_TEST_PASSWORD)
        assert "gateway ready" in gateway.log_text()
    finally:
        isolated.broker.admin.delete_user(user)


@pytest.mark.audit_logs
def test_no_log_line_of_the_whole_run_holds_a_secret(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = tmp_path_factory.getbasetemp()
    logs = sorted(logs_of_the_run(tmp_path_factory).rglob("*.log"))
    assert len(logs) >= 5, logs  # the session's processes and the fault tests' at least
    if os.environ.get(LOG_ROOT_VARIABLE):  # the other pass's logs are read too
        assert len([path for path in logs if not path.is_relative_to(own)]) >= 5, logs
    assert sum(path.stat().st_size for path in logs) > 10_000
    for path in logs:
        text = path.read_text(errors="replace")
        for secret in SECRETS:
            assert secret not in text, f"{path.name} holds a secret"
            assert secret[:12] not in text, f"{path.name} holds the start of a secret"
