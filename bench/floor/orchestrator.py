"""``python -m bench.floor.orchestrator --amqp-url URL --bot-url URL --llm-url URL``: the floor
stack's orchestrator (see ``bench.floor``): runs each request's conversation against the bot
API and the simulated user's LLM, publishing every event, and acks the request at its end."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx
import openai
import uvloop
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from bench.floor.names import declare_floor_topology, publish_floor_event
from contracts.names import SIMULATIONS_QUEUE
from services.common.openai_client import build_openai_client
from services.orchestrator.bots.robot_ai_lesson import INIT_PATH, WEBHOOK_PATH
from services.orchestrator.bots.transport import build_bot_http_client

__all__ = ["FloorOrchestrator", "SimulationEvents", "main"]

TIMEOUT_S = 60.0
USER_MODEL = "floor-user"
PERSONA = "You are a learner."
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
                self._exchange, self._simulation_id, self._seq, kind, json.dumps(body).encode()
            )
        )

    async def confirmed(self) -> None:
        """Once every event emitted so far is confirmed (raises if one was not)."""
        if self._unconfirmed is not None:
            await self._unconfirmed


class FloorOrchestrator:
    def __init__(
        self,
        events: AbstractExchange,
        bot: httpx.AsyncClient,
        bot_url: str,
        llm: openai.AsyncOpenAI,
    ) -> None:
        self._events = events
        self._bot = bot
        self._bot_url = bot_url.rstrip("/")
        self._llm = llm

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

        async def turn(role: str, content: str, latency_ms: int) -> None:
            lines.append((role, content))
            await events.emit(
                "turn", index=len(lines) - 1, role=role, content=content, latency_ms=latency_ms
            )

        await events.emit("started")
        init = {"bot_id": request["bot_id"], "conversation_id": simulation_id, "input_slots": {}}
        (await self._bot.post(f"{self._bot_url}{INIT_PATH}", json=init)).raise_for_status()
        message = str(request["user_prompt"])
        await turn("user", message, 0)
        turns = int(request["max_turns"])
        for number in range(1, turns + 1):
            called = time.monotonic()
            answer = await self._bot.post(
                f"{self._bot_url}{WEBHOOK_PATH}",
                json={"conversation_id": simulation_id, "message": message},
            )
            answer.raise_for_status()
            await turn("bot", answer.json()["data"]["message"], _ms_since(called))
            if number < turns:
                called = time.monotonic()
                message = await self._next_user_message(lines)
                await turn("user", message, _ms_since(called))
        transcript = "\n".join(f"{'User' if r == 'user' else 'Bot'}: {c}" for r, c in lines)
        await events.emit(
            "completed",
            stop_reason="max_turns",
            transcript=transcript,
            turn_count=turns,
            duration_ms=_ms_since(began),
        )
        await events.confirmed()  # the request is acked only after its end is recorded

    async def _next_user_message(self, lines: list[tuple[str, str]]) -> str:
        """The simulated user's next line: the bot's lines are its interlocutor's (user)."""
        messages = [{"role": "system", "content": PERSONA}] + [
            {"role": "user" if role == "bot" else "assistant", "content": content}
            for role, content in lines
        ]
        answer = await self._llm.post(
            "/chat/completions",
            cast_to=object,
            body={"model": USER_MODEL, "messages": messages},
        )
        assert isinstance(answer, dict)
        return str(answer["choices"][0]["message"]["content"]).strip()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def serve(amqp_url: str, bot_url: str, llm_url: str, in_flight: int) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    bot = build_bot_http_client(
        read_timeout_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S, max_connections=in_flight
    )
    llm = build_openai_client(
        api_key="floor-not-a-key",
        base_url=llm_url,
        read_timeout_s=TIMEOUT_S,
        connect_timeout_s=TIMEOUT_S,
        max_connections=in_flight,
    )
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=in_flight)
        exchanges = await declare_floor_topology(channel)
        orchestrator = FloorOrchestrator(exchanges.events, bot, bot_url, llm)
        queue = await channel.get_queue(SIMULATIONS_QUEUE, ensure=False)
        await queue.consume(orchestrator.on_request)
        print(READY_LINE, flush=True)
        await asyncio.Future()  # until the bench stops this process
    finally:
        await bot.aclose()
        await llm.close()
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor.orchestrator", description=__doc__)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--bot-url", required=True)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--in-flight", type=int, default=1_000, help="requests at once")
    args = parser.parse_args()
    uvloop.run(serve(args.amqp_url, args.bot_url, args.llm_url, args.in_flight))


if __name__ == "__main__":
    main()
