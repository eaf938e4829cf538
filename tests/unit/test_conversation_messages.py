"""HeldRuns keeps each conversation's messages by index; HttpUser waits for message k."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from contracts.commands import CancelCommand, CloseCommand, MessageCommand, parse_command
from services.orchestrator.held_runs import HeldRuns
from services.orchestrator.http_user import HttpUser
from services.orchestrator.person import ConversationEnded
from services.orchestrator.simulation import HandBack, RunSignals


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class _Delivered:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.routing_key = "simulation.x.message"


def test_the_three_commands_parse_and_cancel_is_unchanged() -> None:
    cancel = CancelCommand(simulation_id="s")
    assert parse_command(cancel.model_dump_json()) == cancel
    assert set(cancel.model_dump()) == {
        "schema_version",
        "command",
        "simulation_id",
        "requested_at",
    }
    message = MessageCommand(simulation_id="s", index=2, content="hi")
    assert parse_command(message.model_dump_json()) == message
    close = CloseCommand(simulation_id="s")
    assert parse_command(close.model_dump_json()) == close


async def test_messages_are_kept_by_index_and_the_first_one_stands() -> None:
    held = HeldRuns(retention=timedelta(days=7))
    for command in (
        MessageCommand(simulation_id="c", index=1, content="one"),
        MessageCommand(simulation_id="c", index=2, content="two"),
        MessageCommand(simulation_id="c", index=2, content="two from another gateway"),
    ):
        await held.on_control_message(_Delivered(command.model_dump_json().encode()))  # type: ignore[arg-type]
    assert held.message("c", 1) == "one"
    assert held.message("c", 2) == "two"
    assert held.message("c", 3) is None
    assert held.message("other", 1) is None


def test_a_close_takes_no_later_message() -> None:
    held = HeldRuns(retention=timedelta(days=7))
    held.add_message("c", 1, "one")
    held.close("c")
    held.add_message("c", 2, "after the close")
    assert held.is_closed("c")
    assert held.message("c", 1) == "one"
    assert held.message("c", 2) is None


def test_messages_go_with_the_control_logs_retention() -> None:
    clock = Clock()
    held = HeldRuns(retention=timedelta(days=7), clock=clock)
    for day in range(10):
        held.add_message(f"c-{day}", 1, "hello", clock.now)
        clock.now += timedelta(days=1)
    assert held.conversation_count == 7
    assert held.message("c-2", 1) is None
    assert held.message("c-3", 1) == "hello"


def test_a_command_wakes_whoever_waits_for_that_conversation() -> None:
    held = HeldRuns(retention=timedelta(days=7))
    changed, other = held.changed("c"), held.changed("d")
    held.add_message("c", 1, "one")
    assert changed.is_set()
    assert not other.is_set()
    assert not held.changed("c").is_set()  # a fresh one for the next wait


def _user(held: HeldRuns, signals: RunSignals, idle_s: float = 60) -> HttpUser:
    return HttpUser("c", commands=held, signals=signals, idle_s=idle_s)


async def test_message_k_is_answered_as_soon_as_it_arrives() -> None:
    held = HeldRuns(retention=timedelta(days=7))
    user = _user(held, RunSignals())
    waiting = asyncio.create_task(user.message(1, datetime.now(UTC)))
    await asyncio.sleep(0)
    assert not waiting.done()
    held.add_message("c", 2, "two")  # not the one it waits for
    await asyncio.sleep(0)
    assert not waiting.done()
    held.add_message("c", 1, "one")
    assert await asyncio.wait_for(waiting, 5) == "one"
    assert await user.message(2, datetime.now(UTC)) == "two"  # already there: no wait


async def test_a_close_ends_the_wait_with_closed() -> None:
    held = HeldRuns(retention=timedelta(days=7))
    waiting = asyncio.create_task(_user(held, RunSignals()).message(1, datetime.now(UTC)))
    await asyncio.sleep(0)
    held.close("c")
    with pytest.raises(ConversationEnded) as ended:
        await asyncio.wait_for(waiting, 5)
    assert ended.value.reason == "closed"


async def test_idle_counts_from_the_last_activity() -> None:
    held = HeldRuns(retention=timedelta(days=7))
    user = _user(held, RunSignals(), idle_s=0.05)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(ConversationEnded) as ended:
        await asyncio.wait_for(user.message(1, long_ago), 5)  # idle already: no wait
    assert ended.value.reason == "idle"
    with pytest.raises(ConversationEnded):
        await asyncio.wait_for(user.message(1, datetime.now(UTC)), 5)


async def test_a_hand_back_request_stops_the_wait() -> None:
    held = HeldRuns(retention=timedelta(days=7))
    signals = RunSignals()
    waiting = asyncio.create_task(_user(held, signals).message(1, datetime.now(UTC)))
    await asyncio.sleep(0)
    signals.hand_back_soon()  # the lease ended, or the orchestrator shuts down
    with pytest.raises(HandBack):
        await asyncio.wait_for(waiting, 5)
