"""The orchestrator's Prometheus metrics, read off the events its runs publish (served on their
own port, CONVSIM_METRICS_PORT, by services.common.metrics_server)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from contracts.events import (
    TERMINAL_EVENT_TYPES,
    FailedEvent,
    RetryingEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
    WaitingEvent,
)
from services.orchestrator.simulation import EventSink

__all__ = ["MeteredEventSink", "OrchestratorMetrics"]

logger = logging.getLogger(__name__)

CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class OrchestratorMetrics:
    def __init__(self, registry: CollectorRegistry, in_flight: Callable[[], int]) -> None:
        self.registry = registry
        self.started = Counter(
            "convsim_simulations_started",
            "Simulations started (their bot conversation opened).",
            registry=registry,
        )
        self.finished = Counter(
            "convsim_simulations_finished",
            "Simulations ended, by outcome (completed, failed, cancelled) and error code.",
            ["outcome", "error_code"],
            registry=registry,
        )
        self.calls = Histogram(
            "convsim_call_duration_seconds",
            "Duration of each call that produced a transcript line, by target (bot, llm).",
            ["target"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "convsim_call_retries",
            "Calls retried, by target and the error that caused the retry.",
            ["target", "error_code"],
            registry=registry,
        )
        self.events = Counter(
            "convsim_events_published",
            "Events published, by type.",
            ["type"],
            registry=registry,
        )
        self.tokens = Counter(
            "convsim_llm_tokens",
            "LLM tokens the turns used, by side (user: the simulated user, bot: an LLM bot) "
            "and kind (prompt, completion).",
            ["side", "kind"],
            registry=registry,
        )
        in_flight_gauge = Gauge(
            "convsim_simulations_in_flight",
            "Simulations this orchestrator holds right now.",
            registry=registry,
        )
        in_flight_gauge.set_function(lambda: float(in_flight()))

    def record(self, event: SimulationEvent) -> None:
        self.events.labels(type=event.type).inc()
        match event:
            case StartedEvent():
                self.started.inc()
            case TurnEvent(from_history=False, latency_ms=latency):
                if latency > 0:
                    target = "bot" if event.role == "bot" else "llm"
                    self.calls.labels(target=target).observe(latency / 1000)
                if event.usage is not None:
                    tokens = self.tokens.labels(side=event.role, kind="prompt")
                    tokens.inc(event.usage.prompt_tokens)
                    tokens = self.tokens.labels(side=event.role, kind="completion")
                    tokens.inc(event.usage.completion_tokens)
            case RetryingEvent():
                target = "llm" if event.step.startswith("user") else "bot"
                self.retries.labels(target=target, error_code=event.error.code).inc()
            case _ if event.type in TERMINAL_EVENT_TYPES:
                code = event.error.code if isinstance(event, FailedEvent) else ""
                self.finished.labels(outcome=event.type, error_code=code).inc()


class MeteredEventSink:
    """An EventSink that counts what it publishes and logs one line per event: at INFO, except
    turns, which are most of a simulation's events, at DEBUG (``convsim_events_published``
    counts them at any level)."""

    def __init__(self, inner: EventSink, metrics: OrchestratorMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def publish(self, event: SimulationEvent) -> None:
        await self._inner.publish(event)
        self._metrics.record(event)
        level = logging.DEBUG if isinstance(event, TurnEvent) else logging.INFO
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "simulation %s: %s seq %d",
                event.simulation_id,
                event.type,
                event.seq,
                extra=_fields_of(event),
            )


def _fields_of(event: SimulationEvent) -> dict[str, object]:
    """The structured fields of an event's log line (never its content)."""
    fields: dict[str, object] = {
        "simulation_id": event.simulation_id,
        "seq": event.seq,
        "event": event.type,
        "attempt": event.attempt,
    }
    if isinstance(event, TurnEvent | RetryingEvent | WaitingEvent):
        fields["turn_index"] = event.index
    if isinstance(event, FailedEvent):
        fields["error_code"] = event.error.code
    return fields
