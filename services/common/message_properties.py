"""The AMQP properties of convsim's own messages (requests, events, commands), built directly.

aio-pika's ``Message`` is made to be published through an ``Exchange``; building one only to
take its ``properties`` for a channel's ``basic_publish`` costs far more than building the
properties (``docs/benchmarks.md``). The properties are the same, byte for byte.
"""

from __future__ import annotations

from datetime import datetime

from aio_pika.abc import FieldValue
from pamqp.commands import Basic

__all__ = ["PERSISTENT", "json_properties"]

PERSISTENT = 2
"""``delivery_mode`` of a message the broker writes to disk."""


def json_properties(
    *,
    correlation_id: str,
    message_id: str,
    message_type: str,
    timestamp: datetime,
    app_id: str,
    headers: dict[str, FieldValue] | None = None,
) -> Basic.Properties:
    """Persistent JSON, as ``aio_pika.Message`` gives them for the values convsim sends
    (priority 0 included; ``Message`` would also drop an empty string, which none of these
    ever is)."""
    return Basic.Properties(
        content_type="application/json",
        delivery_mode=PERSISTENT,
        priority=0,
        correlation_id=correlation_id,
        message_id=message_id,
        message_type=message_type,
        timestamp=timestamp,
        app_id=app_id,
        headers=headers or {},
    )
