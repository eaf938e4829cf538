"""``python -m bench.floor.orchestrator --amqp-url URL --bot-url URL --llm-url URL``: the floor
stack's orchestrator (see ``bench.floor``): runs each request's conversation against the bot
(the bot API, or with ``--bot llm`` an OpenAI-compatible model) and the simulated user's LLM,
publishing every event, and acks the request at its end. With ``--cap N`` every bot call holds
one of N permits on the broker (convsim's permit pool), and a wait for one is announced with
``waiting`` as the contract asks."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
import httpx
import openai
import uvloop
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from bench.fakes import BOT_MODEL
from bench.floor.names import (
    CALL_TIMEOUT_S,
    Usage,
    confirmed_floor_channel,
    floor_chat,
    floor_llm_client,
    publish_floor_event,
    ready_until_stopped,
)
from contracts.names import SIMULATIONS_QUEUE
from contracts.topology import Replication
from services.orchestrator.bots.robot_ai_lesson import INIT_PATH, WEBHOOK_PATH
from services.orchestrator.bots.transport import build_bot_http_client
from services.orchestrator.permits import ConcurrencyLimits, PermitPool
from services.orchestrator.simulation import PERMIT_GRACE_S

__all__ = ["FloorOrchestrator", "SimulationEvents", "main"]

USER_MODEL = "floor-user"
PERSONA = "You are a learner."
BOT_RESOURCE = "floor-bot"
"""The limited resource of the bot's calls with ``--cap``."""
READY_LINE = "floor orchestrator: app started successfully"
"""What the bench waits for in this process's log (as for convsim's orchestrator)."""


class SimulationEvents:
    """One simulation's events, published in order on the orchestrator's confirmed channel.
    A publish is not awaited where it is made: the conversation goes on (its next call) while
    the broker confirms it, and the next event waits for that confirm first, so an event is
    only published once every earlier one is safely recorded."""

    def __init__(self, exchange: AbstractExchange, simulation_id: str) -> None:
        self._exchange = exchange
        self._simulation_id = simulation_id
        self._seq = 1  # ``queued`` is the gateway's
        self._unconfirmed: asyncio.Task[object] | None = None

    async def emit(self, kind: str, **fields: Any) -> None:
        await self.confirmed()
        self._seq += 1
        body = {
            "schema_version": 1,
            "simulation_id": self._simulation_id,
            "seq": self._seq,
            "type": kind,
            "timestamp": datetime.now(UTC).isoformat(),
            **fields,
        }
        self._unconfirmed = asyncio.create_task(
            publish_floor_event(
                self._exchange,
                self._simulation_id,
                str(self._seq),
                kind,
                json.dumps(body).encode(),
            )
        )

    async def confirmed(self) -> None:
        """Once every event emitted so far is confirmed (raises if one was not)."""
        if self._unconfirmed is not None:
            await self._unconfirmed


T = TypeVar("T")


class FloorOrchestrator:
    def __init__(
        self,
        events: AbstractExchange,
        bot: httpx.AsyncClient,
        bot_url: str,
        llm: openai.AsyncOpenAI,
        *,
        llm_bot: bool = False,
        permits: PermitPool | None = None,
    ) -> None:
        self._events = events
        self._bot = bot
        self._bot_url = bot_url.rstrip("/")
        self._llm = llm
        self._llm_bot = llm_bot
        self._permits = permits

    async def on_request(self, message: AbstractIncomingMessage) -> None:
        request = json.loads(message.body)
        await self._converse(request)
        await message.ack()

    async def _converse(self, request: dict[str, Any]) -> None:
        """The conversation the fakes expect: the request's opening line, then the bot's
        reply and the simulated user's next line, ``max_turns`` bot replies in all."""
        simulation_id = str(request["simulation_id"])
        began = time.monotonic()
        events = SimulationEvents(self._events, simulation_id)
        lines: list[tuple[str, str]] = []
        used: dict[str, Usage] = {"user": _no_usage(), "bot": _no_usage()}

        async def turn(role: str, content: str, latency_ms: int, usage: Usage | None) -> None:
            lines.append((role, content))
            fields: dict[str, Any] = {"usage": usage} if usage is not None else {}
            await events.emit(
                "turn",
                index=len(lines) - 1,
                role=role,
                content=content,
                latency_ms=latency_ms,
                **fields,
            )
            if usage is not None:
                _add(used[role], usage)

        await events.emit("started")
        if not self._llm_bot:
            init = {
                "bot_id": request["bot_id"],
                "conversation_id": simulation_id,
                "input_slots": {},
            }
            await self._limited(events, len(lines), "init", lambda: self._init(init))
        message = str(request["user_prompt"])
        await turn("user", message, 0, None)
        turns = int(request["max_turns"])
        for number in range(1, turns + 1):
            called = time.monotonic()
            reply, usage = await self._limited(
                events,
                len(lines),
                f"bot reply {number}",
                functools.partial(self._bot_reply, request, simulation_id, message, lines),
            )
            await turn("bot", reply, _ms_since(called), usage)
            if number < turns:
                called = time.monotonic()
                message, usage = await self._next_user_message(lines)
                await turn("user", message, _ms_since(called), usage)
        transcript = "\n".join(f"{'User' if r == 'user' else 'Bot'}: {c}" for r, c in lines)
        total = _no_usage()
        for part in used.values():
            _add(total, part)
        await events.emit(
            "completed",
            stop_reason="max_turns",
            transcript=transcript,
            turn_count=turns,
            duration_ms=_ms_since(began),
            usage={**used, "total": total},
        )
        await events.confirmed()  # the request is acked only after its end is recorded

    async def _limited(
        self,
        events: SimulationEvents,
        index: int,
        step: str,
        call: Callable[[], Awaitable[T]],
    ) -> T:
        """A bot call, holding one of the bot's permits with ``--cap`` (a wait past the grace
        is announced with ``waiting``, once)."""
        if self._permits is None:
            return await call()
        taking = asyncio.ensure_future(self._permits.acquire(BOT_RESOURCE))
        done, _ = await asyncio.wait({taking}, timeout=PERMIT_GRACE_S)
        if not done:
            await events.emit(
                "waiting", reason="target_busy", target=BOT_RESOURCE, index=index, step=step
            )
        permit = await taking
        try:
            return await call()
        finally:
            await permit.release()

    async def _init(self, init: dict[str, Any]) -> None:
        (await self._bot.post(f"{self._bot_url}{INIT_PATH}", json=init)).raise_for_status()

    async def _bot_reply(
        self,
        request: dict[str, Any],
        simulation_id: str,
        message: str,
        lines: list[tuple[str, str]],
    ) -> tuple[str, Usage | None]:
        if not self._llm_bot:
            answer = await self._bot.post(
                f"{self._bot_url}{WEBHOOK_PATH}",
                json={"conversation_id": simulation_id, "message": message},
            )
            answer.raise_for_status()
            return str(answer.json()["data"]["message"]), None
        # The bot's own view: the simulated user's lines are its user's.
        messages = [{"role": "system", "content": str(request.get("bot_prompt") or "")}] + [
            {"role": "user" if role == "user" else "assistant", "content": content}
            for role, content in lines
        ]
        return await floor_chat(self._llm, BOT_MODEL, messages)

    async def _next_user_message(self, lines: list[tuple[str, str]]) -> tuple[str, Usage]:
        """The simulated user's next line: the bot's lines are its interlocutor's (user)."""
        messages = [{"role": "system", "content": PERSONA}] + [
            {"role": "user" if role == "bot" else "assistant", "content": content}
            for role, content in lines
        ]
        return await floor_chat(self._llm, USER_MODEL, messages)


def _no_usage() -> Usage:
    return {"prompt_tokens": 0, "completion_tokens": 0}


def _add(total: Usage, usage: Usage) -> None:
    for key, tokens in usage.items():
        total[key] = total.get(key, 0) + tokens


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def serve(
    amqp_url: str, bot_url: str, llm_url: str, in_flight: int, *, llm_bot: bool, cap: int | None
) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    # The permits on a connection of their own, as convsim's orchestrator holds them.
    permits_connection = None if cap is None else await aio_pika.connect_robust(amqp_url)
    permits = (
        None
        if permits_connection is None or cap is None
        else PermitPool(
            permits_connection, ConcurrencyLimits(targets={BOT_RESOURCE: cap}), Replication()
        )
    )
    bot = build_bot_http_client(
        read_timeout_s=CALL_TIMEOUT_S, connect_timeout_s=CALL_TIMEOUT_S, max_connections=in_flight
    )
    llm = floor_llm_client(llm_url, in_flight)
    try:
        channel, exchanges = await confirmed_floor_channel(connection, in_flight)
        orchestrator = FloorOrchestrator(
            exchanges.events, bot, bot_url, llm, llm_bot=llm_bot, permits=permits
        )
        queue = await channel.get_queue(SIMULATIONS_QUEUE, ensure=False)
        await queue.consume(orchestrator.on_request)
        await ready_until_stopped(READY_LINE)
    finally:
        if permits is not None:
            await permits.close()
        if permits_connection is not None:
            await permits_connection.close()
        await bot.aclose()
        await llm.close()
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor.orchestrator", description=__doc__)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--bot-url", required=True)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--in-flight", type=int, default=1_000, help="requests at once")
    parser.add_argument("--bot", choices=["api", "llm"], default="api")
    parser.add_argument("--cap", type=int, help="the bot's calls in flight, every replica")
    args = parser.parse_args()
    uvloop.run(
        serve(
            args.amqp_url,
            args.bot_url,
            args.llm_url,
            args.in_flight,
            llm_bot=args.bot == "llm",
            cap=args.cap,
        )
    )


if __name__ == "__main__":
    main()
