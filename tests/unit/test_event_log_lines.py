"""The orchestrator's line per published event: INFO for a simulation's few lifecycle events,
DEBUG for its turns (most of its events); every event counted whatever the level."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from contracts.events import CompletedEvent, SimulationEvent, StartedEvent, TurnEvent
from services.orchestrator.metrics import MeteredEventSink, OrchestratorMetrics

SIMULATION = "0190a000-0000-7000-8000-000000000001"


class _Published:
    def __init__(self) -> None:
        self.events: list[SimulationEvent] = []

    async def publish(self, event: SimulationEvent) -> None:
        self.events.append(event)


def _simulation() -> list[SimulationEvent]:
    return [
        StartedEvent(simulation_id=SIMULATION, seq=2, conversation_id="c", user_simulator="llm"),
        TurnEvent(
            simulation_id=SIMULATION, seq=3, index=0, role="user", content="hi", latency_ms=5
        ),
        TurnEvent(
            simulation_id=SIMULATION, seq=4, index=0, role="bot", content="hello", latency_ms=5
        ),
        CompletedEvent(
            simulation_id=SIMULATION,
            seq=5,
            stop_reason="max_turns",
            transcript="User: hi\nBot: hello",
            turn_count=1,
            duration_ms=10,
        ),
    ]


async def _publish_all(level: int, caplog: pytest.LogCaptureFixture) -> CollectorRegistry:
    registry = CollectorRegistry()
    published = _Published()
    sink = MeteredEventSink(published, OrchestratorMetrics(registry, lambda: 0))
    with caplog.at_level(level, logger="services.orchestrator.metrics"):
        for event in _simulation():
            await sink.publish(event)
    assert [e.seq for e in published.events] == [2, 3, 4, 5]
    return registry


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, int | None]]:
    return [
        (r.levelno, getattr(r, "event"), getattr(r, "turn_index", None))  # noqa: B009
        for r in caplog.records
        if r.name == "services.orchestrator.metrics"
    ]


async def test_at_info_a_simulation_logs_its_start_and_end_and_counts_its_turns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = await _publish_all(logging.INFO, caplog)
    assert _logged(caplog) == [(logging.INFO, "started", None), (logging.INFO, "completed", None)]
    turns = registry.get_sample_value("convsim_events_published_total", {"type": "turn"})
    assert turns == 2


async def test_at_debug_every_turn_has_its_line_with_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _publish_all(logging.DEBUG, caplog)
    assert _logged(caplog) == [
        (logging.INFO, "started", None),
        (logging.DEBUG, "turn", 0),
        (logging.DEBUG, "turn", 0),
        (logging.INFO, "completed", None),
    ]
