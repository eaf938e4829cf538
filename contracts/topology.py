"""Arguments of the durable queues, in one place, so every service declares them identically.

RabbitMQ refuses a declaration whose arguments differ from the existing queue's
(PRECONDITION_FAILED), so these are part of the contract, not per-service settings; the two
that are settings (``Replication``, from CONVSIM_QUORUM_INITIAL_GROUP_SIZE and
CONVSIM_STREAM_INITIAL_CLUSTER_SIZE) must be the same in every service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from contracts.names import DEAD_LETTER_QUEUE, IDEMPOTENCY_KEY_HEADER, KEYED_HEADER, KEYED_VALUE

__all__ = [
    "ACTIVITY_LOG_MAX_AGE",
    "DEFAULT_EVENT_LOG_MAX_AGE",
    "DEFAULT_MAX_QUEUED_SIMULATIONS",
    "DEFAULT_QUORUM_INITIAL_GROUP_SIZE",
    "DEFAULT_STREAM_INITIAL_CLUSTER_SIZE",
    "REQUEST_DELIVERY_LIMIT",
    "REQUEST_LOG_MAX_AGE",
    "SUITE_LOG_MAX_AGE",
    "Replication",
    "activity_log_arguments",
    "dead_letter_queue_arguments",
    "event_log_arguments",
    "judge_queue_arguments",
    "max_age_of",
    "request_log_arguments",
    "request_log_match",
    "simulations_queue_arguments",
    "suite_log_arguments",
    "suites_queue_arguments",
]

REQUEST_DELIVERY_LIMIT = 20
"""Deliveries of one request before the quorum queue dead-letters it. Every return counts on
RabbitMQ 3.x (crashes, restarts, hand-backs at shutdown or lease end), so this bounds crash
loops, not normal operation; the orchestrator gives up with ``failed`` on the last delivery."""

DEFAULT_EVENT_LOG_MAX_AGE = "7D"

DEFAULT_MAX_QUEUED_SIMULATIONS = 10_000

REQUEST_LOG_MAX_AGE = "2D"
"""Idempotency keys are honoured for 24 hours; the request log keeps them longer than that."""

DEFAULT_QUORUM_INITIAL_GROUP_SIZE = 3
DEFAULT_STREAM_INITIAL_CLUSTER_SIZE = 3


@dataclass(frozen=True)
class Replication:
    """How many replicas a new quorum queue (``x-quorum-initial-group-size``) and a new stream
    (``x-initial-cluster-size``) get. RabbitMQ places min(size, nodes in the cluster) replicas,
    so 3 works on one node (one replica) and on three (three). Only a queue's creation uses
    them, but they are part of its arguments: RabbitMQ's equivalence check compares them on
    every declaration (PRECONDITION_FAILED when they differ, or when one side has none), so
    every service must have the same. 0 leaves the argument out (the broker's default), as
    queues declared before these settings existed were."""

    quorum_group_size: int = DEFAULT_QUORUM_INITIAL_GROUP_SIZE
    stream_cluster_size: int = DEFAULT_STREAM_INITIAL_CLUSTER_SIZE

    def __post_init__(self) -> None:
        if self.quorum_group_size < 0 or self.stream_cluster_size < 0:
            raise ValueError(f"a replication size is 0 (the broker's default) or more: {self}")

    def quorum(self) -> dict[str, Any]:
        """The arguments every quorum queue starts with."""
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if self.quorum_group_size:
            arguments["x-quorum-initial-group-size"] = self.quorum_group_size
        return arguments

    def stream(self) -> dict[str, Any]:
        """The arguments every stream starts with."""
        arguments: dict[str, Any] = {"x-queue-type": "stream"}
        if self.stream_cluster_size:
            arguments["x-initial-cluster-size"] = self.stream_cluster_size
        return arguments


def simulations_queue_arguments(max_queued: int, replication: Replication) -> dict[str, Any]:
    """Quorum queue of requests; poison messages go to DEAD_LETTER_QUEUE; when it holds
    ``max_queued`` requests the broker refuses (nacks) new ones."""
    return {
        **replication.quorum(),
        "x-delivery-limit": REQUEST_DELIVERY_LIMIT,
        "x-max-length": max_queued,
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": DEAD_LETTER_QUEUE,
    }


def dead_letter_queue_arguments(replication: Replication) -> dict[str, Any]:
    return replication.quorum()


def event_log_arguments(max_age: str, replication: Replication) -> dict[str, Any]:
    """Stream queue retained by age (e.g. '7D', '12h'): the event log and the control log."""
    return {**replication.stream(), "x-max-age": max_age}


_AGE_UNITS = {
    "Y": timedelta(days=365),
    "M": timedelta(days=30),
    "D": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}


def max_age_of(max_age: str) -> timedelta:
    """An ``x-max-age`` ('7D', '12h', one unit of Y M D h m s) as a duration (a year 365 days,
    a month 30: at least as long as RabbitMQ keeps it)."""
    number, unit = max_age[:-1], max_age[-1:]
    if not number.isdigit() or unit not in _AGE_UNITS:
        raise ValueError(f"not an x-max-age: {max_age!r}")
    return int(number) * _AGE_UNITS[unit]


def request_log_arguments(replication: Replication) -> dict[str, Any]:
    """Stream queue of the keyed requests' ``queued`` and ``started`` (the keys live in their
    headers)."""
    return {**replication.stream(), "x-max-age": REQUEST_LOG_MAX_AGE}


def request_log_match() -> dict[str, Any]:
    """The request log's binding to REQUEST_LOG_EXCHANGE: the keyed flag, or the idempotency
    key header with any value (a binding header with a void value matches any value: what
    versions before the flag sent; pinned by tests/integration/test_request_log_routing.py)."""
    return {"x-match": "any", KEYED_HEADER: KEYED_VALUE, IDEMPOTENCY_KEY_HEADER: None}


ACTIVITY_LOG_MAX_AGE = "1D"
"""The activity log is read from ``now - CONVSIM_ACTIVE_WINDOW_S`` (at most a day) back."""


def activity_log_arguments(replication: Replication) -> dict[str, Any]:
    """Stream queue of every ``queued`` and terminal event (the per-key active count)."""
    return {**replication.stream(), "x-max-age": ACTIVITY_LOG_MAX_AGE}


SUITE_LOG_MAX_AGE = "30D"
"""Suite events are few: a suite's result stays readable for a month."""


def suite_log_arguments(replication: Replication) -> dict[str, Any]:
    """Stream queue of every suite event."""
    return {**replication.stream(), "x-max-age": SUITE_LOG_MAX_AGE}


def suites_queue_arguments(replication: Replication) -> dict[str, Any]:
    """The suite conductor's inbox: quorum, one active consumer at a time (the others stand
    by and take over when it goes away), so suite decisions are taken in one place."""
    return {**replication.quorum(), "x-single-active-consumer": True}


JUDGE_QUEUE_MAX_LENGTH = 100_000
"""Declared by every service, so no simulation that ends before a judge starts goes unjudged;
bounded, so a deployment that never runs a judge does not grow it forever (the oldest go)."""


def judge_queue_arguments(replication: Replication) -> dict[str, Any]:
    """The judge's queue: quorum; any number of judges share it."""
    return {
        **replication.quorum(),
        "x-delivery-limit": REQUEST_DELIVERY_LIMIT,
        "x-max-length": JUDGE_QUEUE_MAX_LENGTH,
        "x-overflow": "drop-head",
    }
