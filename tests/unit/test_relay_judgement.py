"""The relay and the judge's verdict: the first ``judged`` of a simulation is kept (from the
topic or the log), it is in its state's view, and never sent to its event followers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from contracts.events import CompletedEvent, QueuedEvent, SimulationEvent, StartedEvent
from contracts.ids import new_simulation_id
from contracts.judgement import JudgedEvent
from contracts.requests import SimulationRequest
from services.gateway.relay import EventRelay
from services.gateway.schemas import SimulationPublic


class LogWithVerdicts:
    def __init__(self) -> None:
        self.entries: list[SimulationEvent | JudgedEvent] = []

    async def read(
        self, simulation_id: str, created_at: datetime
    ) -> Sequence[SimulationEvent | JudgedEvent]:
        return [e for e in self.entries if e.simulation_id == simulation_id]


def _relay(log: LogWithVerdicts) -> EventRelay:
    return EventRelay(
        log,
        max_cached=100,
        max_cached_bytes=10_000_000,
        max_concurrent_reads=4,
        read_wait_s=5,
        miss_ttl_s=10,
    )


def _events(sim: str) -> list[SimulationEvent]:
    request = SimulationRequest.model_validate(
        {"simulation_id": sim, "bot_id": 1, "user_prompt": "hi", "criteria": ["greets"]}
    )
    return [
        QueuedEvent(simulation_id=sim, seq=1, request=request),
        StartedEvent(simulation_id=sim, seq=2, conversation_id="c", user_simulator="scripted"),
        CompletedEvent(
            simulation_id=sim,
            seq=3,
            stop_reason="max_turns",
            transcript="",
            turn_count=0,
            duration_ms=1,
        ),
    ]


def _verdict(sim: str, verdict: str) -> JudgedEvent:
    return JudgedEvent.model_validate({"simulation_id": sim, "verdict": verdict, "score": None})


async def test_the_first_verdict_from_the_topic_is_kept_and_not_followed() -> None:
    sim = new_simulation_id()
    relay = _relay(LogWithVerdicts())
    events = _events(sim)
    relay.accept(events[0])
    followed = await relay.follow(sim)
    received: list[SimulationEvent] = []

    async def follow() -> None:
        async for event in followed:
            received.append(event)

    task = asyncio.create_task(follow())
    relay.accept_judgement(_verdict(sim, "pass"))
    for event in events[1:]:
        relay.accept(event)
    relay.accept_judgement(_verdict(sim, "fail"))  # a second one: ignored
    await asyncio.wait_for(task, 2)
    assert [e.type for e in received] == ["queued", "started", "completed"]
    state = await relay.state(sim)
    judgement = relay.judgement(sim)
    assert judgement is not None
    assert judgement.verdict == "pass"
    public = SimulationPublic.from_state(state, judgement)
    assert (public.verdict, public.judgement) == ("pass", judgement)


async def test_a_verdict_read_from_the_log_is_kept() -> None:
    sim = new_simulation_id()
    log = LogWithVerdicts()
    log.entries = [*_events(sim), _verdict(sim, "unjudged"), _verdict(sim, "pass")]
    relay = _relay(log)
    state = await relay.state(sim)
    assert state.status == "completed"
    judgement = relay.judgement(sim)
    assert judgement is not None
    assert judgement.verdict == "unjudged"
    assert SimulationPublic.from_state(state).verdict is None  # no judgement given: null
