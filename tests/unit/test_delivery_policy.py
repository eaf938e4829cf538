"""The ack / requeue / dead-letter decision on a request delivery (delivery_policy.settle)."""

from __future__ import annotations

import aiormq.exceptions
import pytest

from contracts.topology import REQUEST_DELIVERY_LIMIT
from services.orchestrator.delivery_policy import (
    REQUEUE_PAUSE_MAX_S,
    InvalidRequest,
    Settlement,
    settle,
)
from services.orchestrator.event_publisher import OwnershipLost
from services.orchestrator.simulation import EventPublishError, HandBack

DELIVERIES = range(1, REQUEST_DELIVERY_LIMIT + 1)


def test_a_run_that_ended_is_acked() -> None:
    assert settle(None, delivery=1).settlement is Settlement.ACK


def test_only_an_invalid_body_is_dead_lettered() -> None:
    verdict = settle(InvalidRequest("not json"), delivery=1)
    assert verdict.settlement is Settlement.DEAD_LETTER
    assert verdict.pause_s == 0


@pytest.mark.parametrize(
    "error",
    [HandBack(), OwnershipLost("channel closed"), EventPublishError("turn seq 4")],
    ids=["hand-back", "ownership-lost", "publish-unknown"],
)
def test_planned_stops_are_requeued_at_once(error: Exception) -> None:
    for delivery in DELIVERIES:
        verdict = settle(error, delivery=delivery)
        assert verdict.settlement is Settlement.REQUEUE
        assert verdict.pause_s == 0
        assert verdict.expected


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError("reading the event log timed out"),
        aiormq.exceptions.ChannelAccessRefused("ACCESS_REFUSED"),
        aiormq.exceptions.AMQPConnectionError("connection reset"),
        ConnectionError("broker gone"),
        RuntimeError("a bug"),
        ValueError("a validation error inside the run is a bug, not poison"),
    ],
    ids=["log-timeout", "amqp-channel", "amqp-connection", "connection", "bug", "value"],
)
def test_any_other_error_after_the_body_decoded_is_requeued_never_dead_lettered(
    error: Exception,
) -> None:
    pauses = []
    for delivery in DELIVERIES:
        verdict = settle(error, delivery=delivery)
        assert verdict.settlement is Settlement.REQUEUE, delivery
        assert not verdict.expected
        pauses.append(verdict.pause_s)
    assert pauses[0] > 0, "a persistent fault must not spin through the delivery limit"
    assert pauses == sorted(pauses)
    assert max(pauses) == REQUEUE_PAUSE_MAX_S
    # The delivery limit is spent in under two minutes, so give_up still comes soon enough.
    assert sum(pauses) < 120
