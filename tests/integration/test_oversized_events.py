"""A transcript too big for the broker ends its simulation with ``transcript_too_large``; it
never reaches the broker, whose refusal would close the channel every held request shares."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from contracts.events import FailedEvent, TurnEvent
from contracts.transcript import format_transcript
from tests.fakes.bot_api import GATED_BOT, LONG_REPLY_CHARS, LONG_WINDED_BOT
from tests.integration.client import EventWatcher, create_simulation, request_body
from tests.integration.conftest import IsolatedStack
from tests.integration.rabbitmqctl import rabbitmqctl
from tests.integration.stories import assert_whole_story, gated_waiting_on_second_reply

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # lowers the node's max_message_size

BROKER_MAX_MESSAGE_BYTES = 300_000
"""Ten replies of the long-winded bot (400 kB) do not fit in one message."""
MAX_TRANSCRIPT_BYTES = 100_000


@pytest.fixture
def small_broker_messages(local_broker: None) -> Iterator[None]:
    """The broker refuses messages over BROKER_MAX_MESSAGE_BYTES (channels opened from now)."""
    before = rabbitmqctl("eval", "application:get_env(rabbit, max_message_size).")
    match = re.search(r"\{ok,(\d+)\}", before)
    rabbitmqctl(
        "eval", f"application:set_env(rabbit, max_message_size, {BROKER_MAX_MESSAGE_BYTES})."
    )
    try:
        yield
    finally:
        if match is None:
            rabbitmqctl("eval", "application:unset_env(rabbit, max_message_size).")
        else:
            rabbitmqctl("eval", f"application:set_env(rabbit, max_message_size, {match[1]}).")


@pytest.fixture
async def gateway(isolated: IsolatedStack) -> AsyncIterator[httpx.AsyncClient]:
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


@pytest.mark.usefixtures("small_broker_messages")
async def test_an_over_long_transcript_fails_alone_and_the_others_carry_on(
    isolated: IsolatedStack, gateway: httpx.AsyncClient
) -> None:
    isolated.start_orchestrator(
        "orchestrator", CONVSIM_MAX_TRANSCRIPT_BYTES=str(MAX_TRANSCRIPT_BYTES)
    )
    # A neighbour held by the same orchestrator mid-way, on the same request channel.
    neighbour_id = await create_simulation(gateway, request_body(GATED_BOT, max_turns=3))
    neighbour = EventWatcher(gateway, neighbour_id)
    await neighbour.wait_for(gated_waiting_on_second_reply)

    big_id = await create_simulation(gateway, request_body(LONG_WINDED_BOT, max_turns=10))
    events = await EventWatcher(gateway, big_id).finished(timeout_s=60)
    failed = events[-1]
    assert isinstance(failed, FailedEvent), [e.type for e in events]
    assert failed.error.code == "transcript_too_large"
    assert "CONVSIM_MAX_TRANSCRIPT_BYTES" in failed.error.message
    assert len(failed.transcript.encode()) <= MAX_TRANSCRIPT_BYTES
    turns = [e for e in events if isinstance(e, TurnEvent)]
    assert failed.transcript == format_transcript((t.role, t.content) for t in turns)
    assert any(len(t.content) > LONG_REPLY_CHARS for t in turns)  # the bot was long-winded
    assert {e.attempt for e in events[1:]} == {1}  # the first delivery ended it

    isolated.bot.open(neighbour_id)
    neighbour_events = await neighbour.finished()
    assert_whole_story(neighbour_events, max_turns=3)
    assert {e.attempt for e in neighbour_events[1:]} == {1}, "the neighbour was requeued"
