"""A stand-in for the judge, built the way any third-party service on the topic would be: its
own exclusive queue on ``convsim.events`` bound to ``simulation.*.completed`` and ``failed``,
and one ``judged`` event per simulation (persistent, confirmed) on ``simulation.<id>.judged``.

Its verdict: ``fail`` when the transcript holds ``FAIL_MARKER`` or the simulation failed,
``pass`` otherwise. It records what it judged, so a test can check nothing was judged twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from contracts.events import CompletedEvent, FailedEvent, parse_event
from contracts.judgement import JudgedEvent
from contracts.names import EVENTS_EXCHANGE, JUDGE_BINDINGS, event_routing_key

__all__ = ["FAIL_MARKER", "StandInJudge", "standin_judge"]

FAIL_MARKER = "FAILME"


class StandInJudge:
    def __init__(self) -> None:
        self.judged: Counter[str] = Counter()
        self.verdicts: dict[str, str] = {}


@asynccontextmanager
async def standin_judge(amqp_url: str) -> AsyncIterator[StandInJudge]:
    judge = StandInJudge()
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for binding in JUDGE_BINDINGS:
            await queue.bind(exchange, routing_key=binding)

        async def judge_one(message: AbstractIncomingMessage) -> None:
            event = parse_event(message.body)
            if isinstance(event, CompletedEvent):
                verdict = "fail" if FAIL_MARKER in event.transcript else "pass"
                status = "completed"
            elif isinstance(event, FailedEvent):
                verdict, status = "fail", "failed"
            else:
                await message.ack()
                return
            judged = JudgedEvent(
                simulation_id=event.simulation_id,
                verdict=verdict,  # type: ignore[arg-type]
                score=1.0 if verdict == "pass" else 0.0,
                simulation_status=status,  # type: ignore[arg-type]
            )
            await exchange.publish(
                aio_pika.Message(
                    judged.model_dump_json().encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    type="judged",
                ),
                routing_key=event_routing_key(event.simulation_id, "judged"),
            )
            judge.judged[event.simulation_id] += 1
            judge.verdicts[event.simulation_id] = verdict
            await message.ack()

        await queue.consume(judge_one)
        yield judge
    finally:
        await asyncio.shield(connection.close())
