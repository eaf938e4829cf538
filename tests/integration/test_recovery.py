"""Orchestrators that die, freeze, stop or hold a request too long: every simulation still
ends once, with every line exactly once, seq gapless, and its client sees it through."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import httpx
import pytest

from contracts.events import CompletedEvent, TurnEvent
from contracts.names import (
    EVENT_LOG_STREAM,
    REQUEST_ROUTING_KEY,
    REQUESTS_EXCHANGE,
    SIMULATIONS_QUEUE,
    event_routing_key,
)
from contracts.requests import SimulationRequest
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT, SLOW_BOT
from tests.integration.client import EventWatcher, create_simulation, read_events, request_body
from tests.integration.conftest import IsolatedStack
from tests.integration.log_tap import eventually, raw_logged_events
from tests.integration.processes import ServiceProcess, wait_until
from tests.integration.rabbitmqctl import rabbitmqctl
from tests.integration.stories import assert_whole_story, gated_waiting_on_second_reply

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(isolated: IsolatedStack) -> AsyncIterator[httpx.AsyncClient]:
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def test_an_orchestrator_killed_mid_simulation_is_resumed_by_another(
    isolated: IsolatedStack, gateway: httpx.AsyncClient
) -> None:
    first, simulation_id, watcher = await _held_by_one_of_two(isolated, gateway, "a")

    # The second orchestrator resumes: it repeats the one call in flight at the crash.
    await _killed_and_resumed(isolated, first, simulation_id)
    isolated.bot.open(simulation_id)

    events = await watcher.finished()
    turns = assert_whole_story(events, max_turns=3)
    assert {e.attempt for e in events[1:5]} == {1}  # started, user, bot, user
    assert {e.attempt for e in events[5:]} == {2}
    assert isolated.bot.init_calls(simulation_id) == 1  # same conversation, not reopened
    assert isolated.bot.webhook_calls(simulation_id) == 4  # 3 turns + the one repeated call
    assert turns[3].content.startswith("Bot reply 3 to: ")  # the repeat's answer, once
    assert await raw_logged_events(isolated.broker.amqp_url, simulation_id) == events


async def test_a_frozen_orchestrator_adds_nothing_once_another_took_over(
    isolated: IsolatedStack, gateway: httpx.AsyncClient
) -> None:
    frozen, simulation_id, watcher = await _held_by_one_of_two(isolated, gateway, "frozen")

    frozen.send(signal.SIGSTOP)
    try:
        # Missed heartbeats close its connection; the request goes to the other one.
        await eventually(
            lambda: isolated.bot.webhook_calls(simulation_id) == 3,
            timeout_s=30,
            what="the other orchestrator to take the simulation over",
        )
        isolated.bot.open(simulation_id)  # answers both the frozen run's call and the new one
        events = await watcher.finished()
    finally:
        frozen.send(signal.SIGCONT)
    # Thawed, the stale run holds a bot reply it wants to publish: the fence must stop it.
    wait_until(
        lambda: "lost its request" in frozen.log_text(),
        timeout_s=30,
        what="the thawed orchestrator to notice it lost the simulation",
    )
    assert_whole_story(events, max_turns=3)
    logged = await raw_logged_events(isolated.broker.amqp_url, simulation_id)
    assert logged == events, "the stale run added an event to the log"
    # It reconnects and serves again.
    wait_until(lambda: isolated.consumers() == 2, timeout_s=30, what="both to consume again")


async def test_an_older_attempts_event_that_reaches_the_log_late_loses_to_the_newer_one(
    isolated: IsolatedStack, gateway: httpx.AsyncClient
) -> None:
    """Under failover the stream can take a killed run's last event after the run that resumed
    it read the log: the log then holds both attempts' events at one seq, the older first.
    Read back anywhere, the newer attempt's wins: what the live client saw, what its end says."""
    first, simulation_id, watcher = await _held_by_one_of_two(isolated, gateway, "late")
    await _killed_and_resumed(isolated, first, simulation_id)  # it has read the log
    # Attempt 1's reply to that call lands in the event log only now (never on the topic's
    # live path), as a write the dying stream leader had taken.
    shown = watcher.events[-1]
    assert isinstance(shown, TurnEvent)
    late = TurnEvent(
        simulation_id=simulation_id,
        seq=shown.seq + 1,
        attempt=1,
        index=shown.index + 1,
        role="bot",
        content="attempt 1's reply, written as the stream leader died",
        latency_ms=20,
    )
    await _write_to_the_event_log_only(isolated.broker.amqp_url, late)
    isolated.bot.open(simulation_id)

    live = await watcher.finished()
    turns = assert_whole_story(live, max_turns=3)
    assert late.content not in {turn.content for turn in turns}
    logged = await raw_logged_events(isolated.broker.amqp_url, simulation_id)
    newer = next(e for e in logged if e.seq == late.seq and e.attempt == 2)
    assert logged.index(late) < logged.index(newer), "the test did not cause the race"

    # A gateway that never saw it reads it back from the log.
    _, other_url = isolated.start_gateway("gateway-reader")
    async with httpx.AsyncClient(base_url=other_url, timeout=30) as other:
        assert await read_events(other, simulation_id) == live
        state = (await other.get(f"/v1/simulations/{simulation_id}")).json()
    end = live[-1]
    assert isinstance(end, CompletedEvent)
    assert state["transcript"] == end.transcript
    assert [turn["content"] for turn in state["turns"]] == [turn.content for turn in turns]


async def _write_to_the_event_log_only(amqp_url: str, event: TurnEvent) -> None:
    """Publish ``event`` into the event-log stream alone, as the orchestrator would (same
    routing key and properties), through an exchange of the test's bound to the stream only."""
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            f"test.log-only.{uuid.uuid4().hex}", aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        stream = await channel.get_queue(EVENT_LOG_STREAM)
        await stream.bind(exchange, "#")
        await exchange.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                correlation_id=event.simulation_id,
                message_id=f"{event.simulation_id}.{event.seq}",
                type=event.type,
                timestamp=event.timestamp,
                headers={"convsim-attempt": event.attempt},
            ),
            routing_key=event_routing_key(event.simulation_id, event.type),
        )
        await exchange.delete()


async def test_sigterm_hands_back_what_it_holds_within_the_grace_period(
    isolated: IsolatedStack, gateway: httpx.AsyncClient
) -> None:
    stopping, simulation_id, watcher = await _held_by_one_of_two(
        isolated, gateway, "stopping", CONVSIM_GRACEFUL_TIMEOUT_S="2"
    )

    started = time.monotonic()
    stopping.send(signal.SIGTERM)
    try:
        exit_code = stopping.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the orchestrator did not exit after SIGTERM")
    assert exit_code == 0
    assert time.monotonic() - started < 2 + 5 + 5  # grace, hand-back wait, start-up margin
    assert "handed back" in stopping.log_text()

    await eventually(
        lambda: isolated.bot.webhook_calls(simulation_id) == 3,
        timeout_s=30,
        what="the other orchestrator to resume it",
    )
    isolated.bot.open(simulation_id)
    assert_whole_story(await watcher.finished(), max_turns=3)
    wait_until(
        lambda: _queue_settled(isolated),
        timeout_s=30,
        what="no request left in the queue, acknowledged or not",
    )


@pytest.fixture
def short_consumer_timeout(local_broker: None) -> Iterator[None]:
    """The broker closes a channel that holds a message over 5 s, checked every second."""
    _rabbitmq_eval("application:set_env(rabbit, consumer_timeout, 5000).")
    _rabbitmq_eval("application:set_env(rabbit, channel_tick_interval, 1000).")
    try:
        yield
    finally:
        _rabbitmq_eval("application:set_env(rabbit, consumer_timeout, 1800000).")
        _rabbitmq_eval("application:set_env(rabbit, channel_tick_interval, 60000).")


@pytest.mark.serial  # the consumer timeout is the whole node's
@pytest.mark.usefixtures("short_consumer_timeout")
async def test_a_simulation_longer_than_the_consumer_timeout_completes_without_restarting(
    isolated: IsolatedStack, gateway: httpx.AsyncClient
) -> None:
    orchestrator = isolated.start_orchestrator(
        "orchestrator-lease",
        CONVSIM_REQUEST_LEASE_S="2",
        CONVSIM_SIMULATION_DEADLINE_S="20",
    )
    max_turns = 16  # 16 bot replies of 0.5 s: over 8 s, past the 5 s consumer timeout
    simulation_id = await create_simulation(gateway, request_body(SLOW_BOT, max_turns=max_turns))
    events = await EventWatcher(gateway, simulation_id).finished(timeout_s=60)

    assert_whole_story(events, max_turns=max_turns)
    assert isolated.bot.webhook_calls(simulation_id) == max_turns  # nothing repeated
    assert isolated.bot.init_calls(simulation_id) == 1
    attempts = [e.attempt for e in events[1:]]
    assert attempts == sorted(attempts)
    assert attempts[-1] >= 3
    log = orchestrator.log_text()
    assert "acknowledgement timed out" not in log
    assert "PRECONDITION_FAILED" not in log


async def test_a_redelivered_request_of_a_finished_simulation_publishes_nothing(
    isolated: IsolatedStack, gateway: httpx.AsyncClient
) -> None:
    orchestrator = isolated.start_orchestrator("orchestrator-first")
    simulation_id = await create_simulation(gateway, request_body(NORMAL_BOT, max_turns=2))
    events = await EventWatcher(gateway, simulation_id).finished()
    orchestrator.stop()

    # The same request again, delivered and returned unacknowledged: a real redelivery.
    request = SimulationRequest.model_validate(
        {**request_body(NORMAL_BOT, max_turns=2), "simulation_id": simulation_id}
    )
    connection = await aio_pika.connect_robust(isolated.broker.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(REQUESTS_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(request.model_dump_json().encode(), delivery_mode=2),
            routing_key=REQUEST_ROUTING_KEY,
        )
        queue = await channel.get_queue(SIMULATIONS_QUEUE)
        taken = await queue.get(no_ack=False, timeout=10)
        assert taken is not None
        await channel.close()  # unacknowledged: the broker requeues it as redelivered

    calls_before = len(isolated.bot.calls_of(simulation_id))
    second = isolated.start_orchestrator("orchestrator-second")
    wait_until(
        lambda: "already ended (completed)" in second.log_text(),
        timeout_s=30,
        what="the redelivery to be recognised",
    )
    wait_until(lambda: _queue_settled(isolated), timeout_s=30, what="the duplicate to be acked")
    assert await raw_logged_events(isolated.broker.amqp_url, simulation_id) == events
    assert len(isolated.bot.calls_of(simulation_id)) == calls_before


async def _killed_and_resumed(
    isolated: IsolatedStack, first: ServiceProcess, simulation_id: str
) -> None:
    """SIGKILL the orchestrator holding the simulation mid-call (``_held_by_one_of_two``);
    return once the other one has resumed it and made that call again."""
    first.stop(signal.SIGKILL)
    await eventually(
        lambda: isolated.bot.webhook_calls(simulation_id) == 3,
        timeout_s=30,
        what="the resumed run to call the bot again",
    )


async def _held_by_one_of_two(
    isolated: IsolatedStack, gateway: httpx.AsyncClient, name: str, **env: str
) -> tuple[ServiceProcess, str, EventWatcher]:
    """A simulation held by the orchestrator ``name`` mid-call (the bot holds its second
    reply), with a second orchestrator standing by and a client on its SSE stream."""
    holder = isolated.start_orchestrator(f"orchestrator-{name}", **env)
    simulation_id = await create_simulation(gateway, request_body(GATED_BOT, max_turns=3))
    watcher = EventWatcher(gateway, simulation_id)
    await watcher.wait_for(gated_waiting_on_second_reply)
    isolated.start_orchestrator("orchestrator-standby")
    return holder, simulation_id, watcher


def _queue_settled(isolated: IsolatedStack) -> bool:
    queue = isolated.broker.admin.queue(isolated.broker.vhost, SIMULATIONS_QUEUE)
    return queue.get("messages", 1) == 0 and queue.get("messages_unacknowledged", 1) == 0


def _rabbitmq_eval(expression: str) -> None:
    rabbitmqctl("eval", expression)
