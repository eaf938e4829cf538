"""A bot API where nothing listens ends the simulation with ``bot_unreachable`` (retried, as a
connection error), not ``bot_timeout``: the user can tell "the bot is down" from "slow"."""

from __future__ import annotations

import socket

import httpx
import pytest

from contracts.events import FailedEvent, RetryingEvent
from tests.fakes.bot_api import NORMAL_BOT
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import IsolatedStack

pytestmark = pytest.mark.integration


def _refused_url() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: a connect is refused
    return f"http://127.0.0.1:{port}"


async def test_a_bot_nobody_listens_for_is_unreachable(isolated: IsolatedStack) -> None:
    isolated.start_orchestrator(
        "orchestrator-refused-bot",
        CONVSIM_BOT_API_URL=_refused_url(),
        CONVSIM_RETRY_BASE_DELAY_S="0.05",
        CONVSIM_RETRY_MAX_DELAY_S="0.2",
    )
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        simulation_id = await create_simulation(client, request_body(NORMAL_BOT))
        events = await read_events(client, simulation_id)
    failed = events[-1]
    assert isinstance(failed, FailedEvent)
    assert failed.error.code == "bot_unreachable", failed.error.message
    assert failed.error.message == (
        "initConversation (after 3 attempts): initConversation could not reach the bot API "
        "(connection refused)"
    )
    retries = [event for event in events if isinstance(event, RetryingEvent)]
    assert [retry.error.code for retry in retries] == ["bot_unreachable", "bot_unreachable"]
