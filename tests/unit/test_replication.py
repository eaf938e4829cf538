"""Replication arguments: every quorum queue and stream convsim declares carries the replication
settings, and every service declares them identically (RabbitMQ's equivalence check compares
them: PRECONDITION_FAILED otherwise)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts.names import JUDGE_QUEUE, SIMULATIONS_QUEUE, SUITES_QUEUE
from contracts.topology import (
    Replication,
    activity_log_arguments,
    dead_letter_queue_arguments,
    event_log_arguments,
    judge_queue_arguments,
    request_log_arguments,
    simulations_queue_arguments,
    suite_log_arguments,
    suites_queue_arguments,
)
from services.common.settings import SharedSettings
from services.common.topology import declare_topology
from services.gateway.settings import GatewaySettings
from services.judge.app import judge_queue
from services.judge.settings import JudgeSettings
from services.orchestrator.permits.filling import marker_arguments, permits_arguments
from services.orchestrator.settings import OrchestratorSettings
from services.orchestrator.topology import simulations_queue

QUORUM_SIZE = "x-quorum-initial-group-size"
STREAM_SIZE = "x-initial-cluster-size"


class _Bindable:
    async def bind(self, *_: Any, **__: Any) -> None:
        return None

    async def unbind(self, *_: Any, **__: Any) -> None:
        return None


class RecordingChannel:
    """Records what declare_topology declares."""

    def __init__(self) -> None:
        self.queues: dict[str, dict[str, Any]] = {}

    async def declare_exchange(self, *_: Any, **__: Any) -> _Bindable:
        return _Bindable()

    async def declare_queue(
        self, name: str, *, arguments: dict[str, Any] | None = None, **_: Any
    ) -> _Bindable:
        self.queues[name] = dict(arguments or {})
        return _Bindable()


async def _declared(replication: Replication) -> dict[str, dict[str, Any]]:
    channel = RecordingChannel()
    await declare_topology(channel, "7D", 10_000, replication)  # type: ignore[arg-type]
    return channel.queues


def test_the_defaults_are_three_replicas_which_also_fits_one_node() -> None:
    settings = SharedSettings()
    assert settings.quorum_initial_group_size == 3
    assert settings.stream_initial_cluster_size == 3
    assert settings.replication() == Replication(3, 3)


def test_every_service_reads_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSIM_QUORUM_INITIAL_GROUP_SIZE", "5")
    monkeypatch.setenv("CONVSIM_STREAM_INITIAL_CLUSTER_SIZE", "2")
    services = [
        GatewaySettings(),
        OrchestratorSettings(user_simulator="scripted"),
        JudgeSettings(judge="offline"),
    ]
    assert {settings.replication() for settings in services} == {Replication(5, 2)}


@pytest.mark.parametrize("value", ["-1", "100", "three"])
def test_a_bad_size_fails_at_start_up(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CONVSIM_QUORUM_INITIAL_GROUP_SIZE", value)
    with pytest.raises(ValidationError, match="quorum_initial_group_size"):
        GatewaySettings()


def test_a_negative_size_is_no_replication() -> None:
    with pytest.raises(ValueError, match="replication size"):
        Replication(-1, 3)


async def test_every_quorum_queue_and_stream_of_the_topology_carries_its_size() -> None:
    queues = await _declared(Replication(5, 7))
    types = {name: arguments["x-queue-type"] for name, arguments in queues.items()}
    assert "quorum" in types.values()
    assert "stream" in types.values()
    for name, arguments in queues.items():
        if arguments["x-queue-type"] == "quorum":
            assert arguments[QUORUM_SIZE] == 5, name
            assert STREAM_SIZE not in arguments, name
        else:
            assert arguments["x-queue-type"] == "stream", name
            assert arguments[STREAM_SIZE] == 7, name
            assert QUORUM_SIZE not in arguments, name


async def test_zero_leaves_the_arguments_out_as_before_these_settings() -> None:
    queues = await _declared(Replication(0, 0))
    for name, arguments in queues.items():
        assert QUORUM_SIZE not in arguments, name
        assert STREAM_SIZE not in arguments, name
    assert queues[SIMULATIONS_QUEUE]["x-queue-type"] == "quorum"


@pytest.mark.parametrize(
    ("builder", "key"),
    [
        (lambda r: simulations_queue_arguments(10, r), QUORUM_SIZE),
        (dead_letter_queue_arguments, QUORUM_SIZE),
        (suites_queue_arguments, QUORUM_SIZE),
        (judge_queue_arguments, QUORUM_SIZE),
        (permits_arguments, QUORUM_SIZE),
        (marker_arguments, QUORUM_SIZE),
        (lambda r: event_log_arguments("1D", r), STREAM_SIZE),
        (request_log_arguments, STREAM_SIZE),
        (activity_log_arguments, STREAM_SIZE),
        (suite_log_arguments, STREAM_SIZE),
        (lambda r: r.stream(), STREAM_SIZE),  # the owner-secret stream
    ],
)
def test_every_builder_takes_the_setting(builder: Any, key: str) -> None:
    assert builder(Replication(4, 4))[key] == 4
    assert key not in builder(Replication(0, 0))


async def test_faststream_subscriber_queues_match_declare_topology_exactly() -> None:
    """The orchestrator's and the judge's FastStream queues are declared with the arguments
    declare_topology gives them (FastStream adds x-queue-type from queue_type)."""
    replication = Replication(5, 7)
    queues = await _declared(replication)
    assert simulations_queue(10_000, replication).arguments == queues[SIMULATIONS_QUEUE]
    assert judge_queue(replication).arguments == queues[JUDGE_QUEUE]
    assert suites_queue_arguments(replication) == queues[SUITES_QUEUE]
