"""Idempotency, cancellation and the two logs they rest on (convsim.requests.log: the keys;
convsim.control.log: the commands) keep working on a three-node cluster when a node is
SIGKILLed: the one leading the request log, or the one leading the control log.

- A key used before the loss answers the same simulation after it, on the same gateway and on
  one started after the loss, and the bot sees one run per key.
- A running simulation cancelled after the loss ends with exactly one ``cancelled`` and the bot
  is not called again.
- Processes started after the loss read both logs back: a new orchestrator does not run a
  simulation cancelled while it was queued (before or after the loss), a new gateway knows the
  keys accepted before and after it; and the records written after the loss are in the logs.

A client retries a 503 (the broker did not confirm in time) and a 409 "in progress" (the key's
lock), as the API asks; every test bounds and logs how long that took."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage

from contracts.events import RetryingEvent, SimulationEvent, TurnEvent
from contracts.names import (
    CONTROL_LOG_STREAM,
    IDEMPOTENCY_KEY_HEADER,
    REQUEST_LOG_STREAM,
    simulation_id_from_routing_key,
)
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.client import request_body
from tests.integration.cluster_stack import WITHIN_S, ClusterStack, ResumingWatcher, answered
from tests.integration.log_tap import eventually, raw_logged_events, read_log
from tests.integration.processes import ServiceProcess
from tests.integration.stories import gated_waiting_on_second_reply

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

logger = logging.getLogger(__name__)


CLIENT_TIMEOUT_S = 45
"""The test client's bound on one answer: above the gateway's own 30 s bound on a look-up."""


async def post(
    client: httpx.AsyncClient, body: dict[str, Any], key: str, *, what: str
) -> httpx.Response:
    response, _ = await answered(
        lambda: client.post("/v1/simulations", json=body, headers={"Idempotency-Key": key}),
        what=what,
    )
    return response


def simulation_of(response: httpx.Response, *, replayed: bool) -> str:
    assert response.status_code == 202, response.text
    assert (response.headers.get("Idempotent-Replayed") == "true") is replayed, response.headers
    simulation_id: str = response.json()["simulation_id"]
    return simulation_id


async def keyed_simulations(amqp_url: str, key: str) -> set[str]:
    """The simulations the request log records under an Idempotency-Key (``<owner>:<key>``)."""
    found: set[str] = set()

    def visit(message: AbstractIncomingMessage) -> None:
        logged = (message.headers or {}).get(IDEMPOTENCY_KEY_HEADER)
        simulation_id = simulation_id_from_routing_key(message.routing_key or "")
        if isinstance(logged, str) and logged.split(":")[-1] == key and simulation_id:
            found.add(simulation_id)

    await read_log(amqp_url, REQUEST_LOG_STREAM, visit)
    return found


async def logged_commands(amqp_url: str, simulation_id: str) -> list[str]:
    """The commands to a simulation in the control log (``cancel``, ...), in log order."""
    found: list[str] = []
    prefix = f"simulation.{simulation_id}."

    def visit(message: AbstractIncomingMessage) -> None:
        if (message.routing_key or "").startswith(prefix):
            found.append(str(message.routing_key).removeprefix(prefix))

    await read_log(amqp_url, CONTROL_LOG_STREAM, visit)
    return found


def types(events: list[SimulationEvent]) -> list[str]:
    return [e.type for e in events]


def bot_replies_retried(events: list[SimulationEvent]) -> int:
    return sum(isinstance(e, RetryingEvent) and e.step.startswith("bot reply") for e in events)


def webhook_calls_allowed(
    orchestrator: ServiceProcess, simulation_id: str, retried: int = 0
) -> set[int]:
    """The webhook calls of a simulation whose second call was held at the gated bot when the
    node died: 2, or 3 when its delivery was lost (the orchestrator's connection went with the
    node) and a later attempt asked again for the reply that was never recorded; plus the bot
    replies the run ``retried`` (a call held at the gate past the bot's timeout)."""
    resumed = re.search(
        rf"simulation {simulation_id}: attempt \d+ resumes", orchestrator.log_text()
    )
    logger.warning(
        "%s resumed by a later attempt: %s; bot replies retried: %d",
        simulation_id,
        resumed is not None,
        retried,
    )
    return {calls + retried for calls in ({2, 3} if resumed else {2})}


def bot_conversations_since(clustered: ClusterStack, calls_before: int) -> set[str]:
    return {str(body.get("conversation_id")) for _, body in clustered.bot.calls[calls_before:]}


async def watched_until_gated(gateway: str, simulation_id: str) -> ResumingWatcher:
    """A live watcher of the simulation, once it waits at the gated bot for its second reply
    (the caller closes it)."""
    watcher = ResumingWatcher(lambda: gateway, simulation_id)
    try:
        await eventually(
            lambda: gated_waiting_on_second_reply(watcher.events),
            timeout_s=30,
            what=f"{simulation_id} to wait on its second reply",
        )
    except BaseException:
        watcher.close()
        raise
    return watcher


async def kill_leader_of(clustered: ClusterStack, stream: str) -> float:
    """SIGKILL the node leading ``stream``; the time of the kill. Logs which logs it led."""
    leaders = {
        log: await asyncio.to_thread(clustered.leader, log)
        for log in (REQUEST_LOG_STREAM, CONTROL_LOG_STREAM)
    }
    leader = leaders[stream]
    led = [log for log, node in leaders.items() if node == leader]
    await asyncio.to_thread(clustered.kill, leader)
    logger.warning("killed node %d, the leader of %s", leader, ", ".join(led))
    return time.monotonic()


@pytest.mark.timeout(240)
async def test_an_idempotency_key_answers_the_same_simulation_across_the_loss_of_the_request_log_leader(  # noqa: E501
    clustered: ClusterStack,
) -> None:
    orchestrator = clustered.start_orchestrator("orchestrator-1")
    _, gateway = clustered.start_gateway("gateway-1")
    calls_before = len(clustered.bot.calls)
    key, later_key = f"before-{uuid.uuid4().hex}", f"after-{uuid.uuid4().hex}"
    body = request_body(GATED_BOT, max_turns=2, user_prompt="keyed before the loss")
    later_body = request_body(GATED_BOT, max_turns=2, user_prompt="keyed after the loss")

    # Longer than the gateway's wait for its key index (CONVSIM_LOG_READ_TIMEOUT_S, 30 s): a
    # 503 from a slow look-up is seen and retried, not cut off by the client at the same time.
    async with httpx.AsyncClient(base_url=gateway, timeout=CLIENT_TIMEOUT_S) as client:
        first = simulation_of(await post(client, body, key, what="first POST"), replayed=False)
        watcher = await watched_until_gated(gateway, first)
        try:
            killed_at = await kill_leader_of(clustered, REQUEST_LOG_STREAM)

            replay = await post(client, body, key, what="the same POST after the loss")
            assert simulation_of(replay, replayed=True) == first
            logger.warning("key answered again %.2f s after the kill", time.monotonic() - killed_at)
            other_body = await post(client, later_body, key, what="the key with another body")
            assert other_body.status_code == 409, other_body.text
            assert "another body" in other_body.text

            # A key first used after the loss is recorded as well.
            later = simulation_of(
                await post(client, later_body, later_key, what="a new key after the loss"),
                replayed=False,
            )
            assert later != first
            again = await post(client, later_body, later_key, what="the new key again")
            assert simulation_of(again, replayed=True) == later

            # A gateway started after the loss reads both keys back from the request log.
            _, fresh = await asyncio.to_thread(clustered.start_gateway, "gateway-2")
            async with httpx.AsyncClient(base_url=fresh, timeout=CLIENT_TIMEOUT_S) as fresh_client:
                for sent, sent_key, expected in (
                    (body, key, first),
                    (later_body, later_key, later),
                ):
                    response = await post(fresh_client, sent, sent_key, what="POST on gateway-2")
                    assert simulation_of(response, replayed=True) == expected

            later_watcher = ResumingWatcher(lambda: gateway, later)
            for simulation_id in (first, later):
                clustered.bot.open(simulation_id)
            finished: dict[ResumingWatcher, list[SimulationEvent]] = {}
            for each in (watcher, later_watcher):
                events = finished[each] = await each.finished(timeout_s=WITHIN_S)
                assert events[-1].type == "completed", types(events)
                assert [e.seq for e in events] == list(range(1, len(events) + 1))
                transcript = [(e.role, e.content) for e in events if isinstance(e, TurnEvent)]
                assert [role for role, _ in transcript] == ["user", "bot"] * 2, transcript
                assert len(set(transcript)) == len(transcript)  # no line twice
            logger.warning(
                "both ran to the end %.2f s after the kill", time.monotonic() - killed_at
            )
        finally:
            watcher.close()

    # One run per key: the bot met exactly these two conversations, each initialised once.
    assert bot_conversations_since(clustered, calls_before) == {first, later}
    for simulation_id in (first, later):
        assert clustered.bot.init_calls(simulation_id) == 1
    # The key's look-up may hold the test for the gateway's log-read timeout (30 s) while the
    # held call times out and is retried: each retry is one more call, announced by an event.
    assert clustered.bot.webhook_calls(first) in webhook_calls_allowed(
        orchestrator, first, bot_replies_retried(finished[watcher])
    )
    assert clustered.bot.webhook_calls(later) == 2
    url = clustered.live_amqp_url()
    assert await keyed_simulations(url, key) == {first}
    assert await keyed_simulations(url, later_key) == {later}


@pytest.mark.timeout(240)
async def test_a_simulation_cancelled_after_the_loss_of_the_control_log_leader_ends_cancelled_once(
    clustered: ClusterStack,
) -> None:
    orchestrator = clustered.start_orchestrator("orchestrator-1")
    _, gateway = clustered.start_gateway("gateway-1")
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        response = await client.post("/v1/simulations", json=request_body(GATED_BOT, max_turns=3))
        assert response.status_code == 202, response.text
        simulation_id: str = response.json()["simulation_id"]
        watcher = await watched_until_gated(gateway, simulation_id)
        try:
            killed_at = await kill_leader_of(clustered, CONTROL_LOG_STREAM)

            cancel, retried = await answered(
                lambda: client.delete(f"/v1/simulations/{simulation_id}"),
                what="DELETE after the loss",
            )
            if cancel.status_code == 409:
                # An attempt answered 503 (its confirm did not come in time) yet its command
                # landed: the retry finds the simulation cancelled already.
                assert 503 in retried, (retried, cancel.text)
                assert "(cancelled)" in cancel.json()["detail"]
            else:
                assert cancel.status_code == 202, cancel.text
            cancelled_at = time.monotonic()
            events = await watcher.finished(timeout_s=WITHIN_S)
            calls_at_cancel = clustered.bot.webhook_calls(simulation_id)
            logger.warning(
                "cancelled %.2f s after the DELETE, %.2f s after the kill (watcher reconnects: %d)",
                time.monotonic() - cancelled_at,
                time.monotonic() - killed_at,
                watcher.reconnects,
            )
        finally:
            watcher.close()

        assert types(events).count("cancelled") == 1, types(events)
        assert events[-1].type == "cancelled"
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert sum(isinstance(e, TurnEvent) for e in events) == 3
        clustered.bot.open(simulation_id)  # the call the run abandoned returns now
        again = await client.delete(f"/v1/simulations/{simulation_id}")
        assert again.status_code == 409, again.text
        assert "cancelled" in again.json()["detail"]

    url = clustered.live_amqp_url()
    logged = await raw_logged_events(url, simulation_id)
    assert types(logged).count("cancelled") == 1, types(logged)
    assert logged[-1].type == "cancelled"
    assert "cancel" in await logged_commands(url, simulation_id)  # the command landed
    # Nothing called the bot after the cancel (the gate opened before the logs were read).
    assert calls_at_cancel in webhook_calls_allowed(orchestrator, simulation_id)
    assert clustered.bot.webhook_calls(simulation_id) == calls_at_cancel


@pytest.mark.timeout(240)
async def test_processes_started_after_the_loss_of_the_control_log_leader_read_both_logs_back(
    clustered: ClusterStack,
) -> None:
    _, gateway = clustered.start_gateway("gateway-1")  # no orchestrator yet: requests wait
    calls_before = len(clustered.bot.calls)
    key, later_key = f"before-{uuid.uuid4().hex}", f"after-{uuid.uuid4().hex}"
    body = request_body(NORMAL_BOT, max_turns=1, user_prompt="cancelled before the loss")
    later_body = request_body(NORMAL_BOT, max_turns=1, user_prompt="cancelled after the loss")
    ran_body = request_body(NORMAL_BOT, max_turns=1, user_prompt="not cancelled")

    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        before = simulation_of(await post(client, body, key, what="POST before"), replayed=False)
        cancel = await client.delete(f"/v1/simulations/{before}")
        assert cancel.status_code == 202, cancel.text
        assert cancel.json()["status"] == "queued"

        killed_at = await kill_leader_of(clustered, CONTROL_LOG_STREAM)

        after = simulation_of(
            await post(client, later_body, later_key, what="POST after the loss"), replayed=False
        )
        cancel_after, _ = await answered(
            lambda: client.delete(f"/v1/simulations/{after}"), what="DELETE after the loss"
        )
        assert cancel_after.status_code == 202, cancel_after.text
        assert cancel_after.json()["status"] == "queued"
        ran = simulation_of(
            await post(client, ran_body, f"ran-{uuid.uuid4().hex}", what="POST to run"),
            replayed=False,
        )
        # The gateway that lived through the loss still knows the key from before it.
        replay = await post(client, body, key, what="gateway-1 replays the key from before")
        assert simulation_of(replay, replayed=True) == before
        logger.warning("writes done %.2f s after the kill", time.monotonic() - killed_at)

    # Started after the loss: they know what the logs hold only by reading them back.
    _, fresh = await asyncio.to_thread(clustered.start_gateway, "gateway-2")
    started = time.monotonic()
    await asyncio.to_thread(clustered.start_orchestrator, "orchestrator-late")
    logger.warning("orchestrator started in %.2f s", time.monotonic() - started)
    async with httpx.AsyncClient(base_url=fresh, timeout=30) as fresh_client:
        for sent, sent_key, expected in ((body, key, before), (later_body, later_key, after)):
            response = await post(fresh_client, sent, sent_key, what="gateway-2 replays a key")
            assert simulation_of(response, replayed=True) == expected
        watchers = {s: ResumingWatcher(lambda: fresh, s) for s in (before, after, ran)}
        try:
            endings = {s: await w.finished(timeout_s=WITHIN_S) for s, w in watchers.items()}
        finally:
            for watcher in watchers.values():
                watcher.close()
    logger.warning("all three ended %.2f s after the kill", time.monotonic() - killed_at)

    assert types(endings[before]) == ["queued", "cancelled"]
    assert types(endings[after]) == ["queued", "cancelled"]
    assert endings[ran][-1].type == "completed", types(endings[ran])
    # The cancelled ones never reached the bot; the other one did, once.
    assert bot_conversations_since(clustered, calls_before) == {ran}
    assert clustered.bot.init_calls(ran) == 1
    url = clustered.live_amqp_url()
    for simulation_id in (before, after):
        assert "cancel" in await logged_commands(url, simulation_id)
    assert await keyed_simulations(url, key) == {before}
    assert await keyed_simulations(url, later_key) == {after}
