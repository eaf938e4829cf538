"""The gateway's Prometheus metrics (``GET /metrics``), in a registry of the app's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Gauge

from contracts.events import SimulationEvent

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "convsim_simulations_accepted",
            "Simulations queued through this gateway, by route.",
            ["route"],
            registry=self.registry,
        )
        self.relayed = Counter(
            "convsim_events_relayed",
            "Events this gateway received from the topic, by type.",
            ["type"],
            registry=self.registry,
        )
        self.stream_clients = Gauge(
            "convsim_stream_clients",
            "HTTP clients following a simulation right now (SSE or the streamed text).",
            registry=self.registry,
        )

    async def counted_stream(
        self, events: AsyncIterator[SimulationEvent]
    ) -> AsyncIterator[SimulationEvent]:
        """The same events, with the client counted while it is connected."""
        self.stream_clients.inc()
        try:
            async for event in events:
                yield event
        finally:
            self.stream_clients.dec()
