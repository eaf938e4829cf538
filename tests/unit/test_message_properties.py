"""convsim's message properties, built directly, are what ``aio_pika.Message`` gave (which the
gateway and the orchestrator published with before): the same bytes on the wire."""

from __future__ import annotations

from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import FieldValue
from pamqp.header import ContentHeader

from services.common.message_properties import json_properties


@pytest.mark.parametrize("headers", [None, {"convsim-attempt": 2, "convsim-keyed": "yes"}])
def test_the_properties_are_those_of_an_aio_pika_message(
    headers: dict[str, FieldValue] | None,
) -> None:
    timestamp = datetime(2026, 12, 1, 5, 30, 1, 250_000, tzinfo=UTC)
    fields = {"correlation_id": "sim-1", "message_id": "sim-1.3", "app_id": "convsim-gateway"}
    direct = json_properties(message_type="turn", timestamp=timestamp, headers=headers, **fields)
    message = aio_pika.Message(
        b"{}",
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        type="turn",
        timestamp=timestamp,
        headers=headers,
        **fields,
    )
    assert (
        ContentHeader(0, 2, direct).marshal() == ContentHeader(0, 2, message.properties).marshal()
    )
