"""The idempotency index: a key older than the window never answers, however it arrived; a
sync that cannot finish is a 503 with Retry-After, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from contracts.names import event_routing_key
from services.gateway.active import ActiveIndex
from services.gateway.app import create_app
from services.gateway.broker import BrokerUnavailable
from services.gateway.idempotency import (
    FINGERPRINT_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    IdempotencyIndex,
    IndexUnavailable,
    KeyRecord,
)
from services.gateway.settings import GatewaySettings
from tests.unit.amqp_fakes import FakeConnection, stream_message

WINDOW = timedelta(days=1)
SIMULATION_ID = "019ad1a2-0000-7000-8000-000000000001"


def _index(connection: FakeConnection | None = None, sync_timeout_s: float = 1) -> IdempotencyIndex:
    return IdempotencyIndex(
        cast("Any", connection or FakeConnection()), window=WINDOW, sync_timeout_s=sync_timeout_s
    )


def test_an_expired_key_behind_a_fresh_one_does_not_answer() -> None:
    index = _index()
    now = datetime.now(UTC)
    index.remember("fresh", KeyRecord("a", "f", now))
    index.remember("old", KeyRecord("b", "f", now - WINDOW - timedelta(minutes=1)))
    assert index.lookup("old") is None
    assert index.lookup("fresh") == KeyRecord("a", "f", now)


async def test_a_key_read_again_after_a_reconnect_does_not_answer_once_expired() -> None:
    connection = FakeConnection()
    index = _index(connection)
    await index.start()
    channel = connection.channels[0]
    index.remember("fresh", KeyRecord("a", "f", datetime.now(UTC)))  # accepted here since
    expired = datetime.now(UTC) - WINDOW - timedelta(seconds=1)
    await channel.deliver(
        stream_message(
            0,
            routing_key=event_routing_key(SIMULATION_ID, "queued"),
            headers={IDEMPOTENCY_KEY_HEADER: "k", FINGERPRINT_HEADER: "f"},
            timestamp=expired,
        )
    )
    assert index.lookup("k") is None


async def test_a_sync_that_times_out_is_a_broker_unavailable() -> None:
    connection = FakeConnection()
    index = _index(connection, sync_timeout_s=0.05)
    await index.start()
    connection.channels[0].deliver_published = False
    with pytest.raises(BrokerUnavailable) as raised:  # the gateway answers it with 503
        await index.sync()
    assert isinstance(raised.value, IndexUnavailable)


class _Broker:
    @asynccontextmanager
    async def exclusive_lock(self, name: str) -> AsyncIterator[None]:
        yield


async def test_a_sync_timeout_answers_503_with_retry_after() -> None:
    connection = FakeConnection()
    index = _index(connection, sync_timeout_s=0.05)
    await index.start()
    connection.channels[0].deliver_published = False
    app = create_app(GatewaySettings())
    app.state.settings = GatewaySettings()
    app.state.broker, app.state.relay, app.state.idempotency = _Broker(), None, index
    app.state.active = SimpleNamespace(index=ActiveIndex(window=timedelta(hours=1)))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            "/v1/simulations",
            json={"bot_id": 1, "user_prompt": "hi"},
            headers={"Idempotency-Key": "k-1"},
        )
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert "idempotency" in response.json()["detail"]
