"""``started`` repeats the idempotency headers of its request, and marks a keyed request with
the flag the request log's binding matches, so a key is logged even when ``queued`` was lost
(and whoever published the request straight to the broker need not know the flag)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from pamqp.commands import Basic

from contracts.events import StartedEvent, TurnEvent
from contracts.names import FINGERPRINT_HEADER, IDEMPOTENCY_KEY_HEADER, KEYED_HEADER, KEYED_VALUE
from services.orchestrator.event_publisher import DeliveryEventSink


class _Channel:
    is_closed = False

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def basic_publish(self, body: bytes, **options: Any) -> Basic.Ack:
        self.published.append((options["routing_key"], dict(options["properties"].headers)))
        return Basic.Ack()


class _Delivery:
    def __init__(self, headers: dict[str, Any]) -> None:
        self.headers = headers
        self.channel = _Channel()


async def _headers_of_started_and_turn(request_headers: dict[str, Any]) -> list[dict[str, Any]]:
    delivery = _Delivery(request_headers)
    sink = DeliveryEventSink(cast("Any", delivery), timeout_s=5, max_event_bytes=1_000_000)
    await sink.publish(
        StartedEvent(simulation_id="s", seq=2, conversation_id="c", user_simulator="scripted")
    )
    await sink.publish(
        TurnEvent(simulation_id="s", seq=3, index=0, role="user", content="hi", latency_ms=0)
    )
    return [headers for _, headers in delivery.channel.published]


async def test_a_keyed_request_has_started_repeat_its_key_and_carry_the_flag() -> None:
    key = {IDEMPOTENCY_KEY_HEADER: "anonymous:k", FINGERPRINT_HEADER: "f" * 64}
    started, turn = await _headers_of_started_and_turn(key)
    assert started == {"convsim-attempt": 1, **key, KEYED_HEADER: KEYED_VALUE}
    assert turn == {"convsim-attempt": 1}  # only started repeats them


@pytest.mark.parametrize(
    "request_headers",
    [{}, {IDEMPOTENCY_KEY_HEADER: "anonymous:k"}, {FINGERPRINT_HEADER: "f" * 64}],
)
async def test_a_request_without_both_headers_is_not_flagged(
    request_headers: dict[str, Any],
) -> None:
    started, _ = await _headers_of_started_and_turn(request_headers)
    assert KEYED_HEADER not in started
