"""``python -m bench.floor.judge --amqp-url URL --llm-url URL``: the floor stack's judge (see
``bench.floor``): grades each completed simulation that has criteria with one LLM call and
publishes ``judged``. It learns a simulation's criteria from its ``queued`` event (which
carries the request) on the same queue, and keeps nothing else: no log reads, no memory
bounds, no retries, no resuming after a restart."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

import aio_pika
import openai
import uvloop
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from bench.fakes import JUDGE_MODEL
from bench.floor.names import (
    confirmed_floor_channel,
    floor_chat,
    floor_llm_client,
    publish_floor_event,
    ready_until_stopped,
)
from contracts.names import JUDGE_QUEUE, QUEUED_EVENTS

__all__ = ["FloorJudge", "main"]

READY_LINE = "floor judge: app started successfully"
"""What the bench waits for in this process's log (as for convsim's judge)."""
BINDINGS = (QUEUED_EVENTS, "simulation.*.completed")


class FloorJudge:
    def __init__(self, events: AbstractExchange, llm: openai.AsyncOpenAI) -> None:
        self._events = events
        self._llm = llm
        self._criteria: dict[str, list[str]] = {}

    async def on_event(self, message: AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        simulation_id = str(event["simulation_id"])
        if event["type"] == "queued":
            criteria = event.get("request", {}).get("criteria") or []
            if criteria:
                self._criteria[simulation_id] = [str(c) for c in criteria]
        elif (criteria := self._criteria.pop(simulation_id, None)) is not None:
            await self._judge(simulation_id, str(event["transcript"]), criteria)
        await message.ack()

    async def _judge(self, simulation_id: str, transcript: str, criteria: list[str]) -> None:
        listed = "\n".join(f"{number}. {c}" for number, c in enumerate(criteria, 1))
        content, usage = await floor_chat(
            self._llm,
            JUDGE_MODEL,
            [
                {"role": "system", "content": "Judge the conversation. Answer in JSON."},
                {"role": "user", "content": f"{transcript}\n\nThe criteria:\n{listed}"},
            ],
        )
        results = json.loads(content)["criteria"]
        passed = sum(1 for r in results if r.get("passed") is True)
        judged: dict[str, Any] = {
            "schema_version": 1,
            "simulation_id": simulation_id,
            "type": "judged",
            "timestamp": datetime.now(UTC).isoformat(),
            "verdict": "pass" if passed == len(criteria) else "fail",
            "score": passed / len(criteria),
            "criteria": results,
            "assertions": [],
            "judge_model": JUDGE_MODEL,
            "usage": usage,
        }
        await publish_floor_event(
            self._events,
            simulation_id,
            f"{simulation_id}.judged",
            "judged",
            json.dumps(judged).encode(),
        )


async def serve(amqp_url: str, llm_url: str, concurrency: int) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    llm = floor_llm_client(llm_url, concurrency)
    try:
        channel, exchanges = await confirmed_floor_channel(connection, concurrency)
        queue = await channel.declare_queue(
            JUDGE_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for binding in BINDINGS:
            await queue.bind(exchanges.events, routing_key=binding)
        await queue.consume(FloorJudge(exchanges.events, llm).on_event)
        await ready_until_stopped(READY_LINE)
    finally:
        await llm.close()
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor.judge", description=__doc__)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--concurrency", type=int, default=1_000, help="verdicts at once")
    args = parser.parse_args()
    uvloop.run(serve(args.amqp_url, args.llm_url, args.concurrency))


if __name__ == "__main__":
    main()
