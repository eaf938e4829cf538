"""The owner secret: the key under which API keys become owner ids (see access.py).

``CONVSIM_OWNER_SECRET`` keeps it outside the broker. Without it, the gateways of a vhost share
one they generate: the first message of the stream ``OWNER_SECRET_STREAM``. Each gateway reads
that stream's first message at start; if there is none it appends a random secret and reads
again, so gateways that start together still agree (the earliest append wins).
"""

from __future__ import annotations

import secrets

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import SecretStr

from contracts.names import OWNER_SECRET_STREAM
from contracts.topology import Replication
from services.common.stream_reader import read_stream

__all__ = ["shared_owner_secret"]

SECRET_TYPE = "convsim.owner-secret"


async def shared_owner_secret(
    connection: AbstractRobustConnection, replication: Replication, *, timeout_s: float
) -> SecretStr:
    """The secret every gateway of this vhost uses, created by the first one to need it."""
    async with connection.channel() as channel:
        await channel.declare_queue(
            OWNER_SECRET_STREAM, durable=True, arguments=replication.stream()
        )
    secret = await _first_secret(connection, timeout_s)
    if secret is None:
        async with connection.channel(publisher_confirms=True, on_return_raises=True) as channel:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    secrets.token_hex(32).encode(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    type=SECRET_TYPE,
                ),
                routing_key=OWNER_SECRET_STREAM,
                mandatory=True,
                timeout=timeout_s,
            )
        secret = await _first_secret(connection, timeout_s)
    if secret is None:
        raise RuntimeError(f"the owner secret could not be read back from {OWNER_SECRET_STREAM}")
    return SecretStr(secret)


async def _first_secret(connection: AbstractRobustConnection, timeout_s: float) -> str | None:
    found: list[str] = []

    def visit(message: AbstractIncomingMessage) -> bool:
        if message.type == SECRET_TYPE and len(message.body) >= 32:
            found.append(message.body.decode())
            return False
        return True

    if not await read_stream(
        connection, OWNER_SECRET_STREAM, "first", visit, prefetch=100, timeout_s=timeout_s
    ):
        raise TimeoutError(f"reading {OWNER_SECRET_STREAM} did not finish in {timeout_s} s")
    return found[0] if found else None
