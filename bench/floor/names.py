"""What the floor services do the same way: declare the contract's topology on a confirmed
channel, publish an event, and build the LLM client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aio_pika
import openai
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, ExchangeType

from contracts.names import (
    ALL_SIMULATION_EVENTS,
    EVENT_LOG_STREAM,
    EVENTS_EXCHANGE,
    REQUEST_ROUTING_KEY,
    REQUESTS_EXCHANGE,
    SIMULATIONS_QUEUE,
    event_routing_key,
)
from services.common.openai_client import build_openai_client

__all__ = [
    "CALL_TIMEOUT_S",
    "PUBLISH_TIMEOUT_S",
    "FloorExchanges",
    "Usage",
    "confirmed_floor_channel",
    "declare_floor_topology",
    "floor_chat",
    "floor_llm_client",
    "joined_topology",
    "publish_floor_event",
    "ready_until_stopped",
]

PUBLISH_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 60.0
"""Every HTTP call of the floor services (bot, LLM)."""


@dataclass(frozen=True)
class FloorExchanges:
    requests: AbstractExchange
    events: AbstractExchange


async def ready_until_stopped(ready_line: str) -> None:
    """Say the process is ready (the bench waits for ``ready_line``), then serve until the
    bench stops the process."""
    print(ready_line, flush=True)
    await asyncio.Future()


async def declare_floor_topology(channel: AbstractChannel) -> FloorExchanges:
    """The requests' direct exchange and quorum queue, the events' topic exchange and the
    event-log stream bound to every simulation event: what the contract requires."""
    requests = await channel.declare_exchange(REQUESTS_EXCHANGE, ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(
        SIMULATIONS_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await queue.bind(requests, routing_key=REQUEST_ROUTING_KEY)
    events = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    log = await channel.declare_queue(
        EVENT_LOG_STREAM, durable=True, arguments={"x-queue-type": "stream"}
    )
    await log.bind(events, routing_key=ALL_SIMULATION_EVENTS)
    return FloorExchanges(requests, events)


async def joined_topology(channel: AbstractChannel) -> FloorExchanges:
    """The two exchanges as convsim's services declared them (with their own queue arguments,
    which the floor's declarations would contradict): raises if they are not there yet."""
    requests = await channel.get_exchange(REQUESTS_EXCHANGE, ensure=True)
    events = await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)
    return FloorExchanges(requests, events)


async def publish_floor_event(
    events: AbstractExchange, simulation_id: str, message_id: str, kind: str, body: bytes
) -> None:
    """One event on the topic exchange: persistent, mandatory, confirmed; its seq (a verdict:
    ``<simulation id>.judged``) as the message id and its type as the message type (what the
    floor gateway's relay reads instead of the body)."""
    message = aio_pika.Message(
        body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message_id, type=kind
    )
    await events.publish(
        message,
        routing_key=event_routing_key(simulation_id, kind),
        mandatory=True,
        timeout=PUBLISH_TIMEOUT_S,
    )


async def confirmed_floor_channel(
    connection: AbstractConnection, prefetch: int
) -> tuple[AbstractChannel, FloorExchanges]:
    """A channel with publisher confirms and ``prefetch`` deliveries at once, on the declared
    topology."""
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=prefetch)
    return channel, await declare_floor_topology(channel)


def floor_llm_client(llm_url: str, max_connections: int) -> openai.AsyncOpenAI:
    """The OpenAI client of a floor service, as convsim builds its own."""
    return build_openai_client(
        api_key="floor-not-a-key",
        base_url=llm_url,
        read_timeout_s=CALL_TIMEOUT_S,
        connect_timeout_s=CALL_TIMEOUT_S,
        max_connections=max_connections,
    )


Usage = dict[str, int]
"""``prompt_tokens`` and ``completion_tokens`` of an LLM call."""


async def floor_chat(
    llm: openai.AsyncOpenAI, model: str, messages: list[dict[str, str]]
) -> tuple[str, Usage]:
    """One chat completion, its answer read as a dict (no SDK models): its text and usage."""
    answer = await llm.post(
        "/chat/completions", cast_to=object, body={"model": model, "messages": messages}
    )
    assert isinstance(answer, dict)
    usage = answer.get("usage") or {}
    return str(answer["choices"][0]["message"]["content"]).strip(), {
        "prompt_tokens": int(usage.get("prompt_tokens", 0)),
        "completion_tokens": int(usage.get("completion_tokens", 0)),
    }
