"""HTTP helpers of the integration tests: create simulations, read SSE streams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from contracts.events import SimulationEvent, parse_event

__all__ = ["EventWatcher", "create_simulation", "create_suite", "read_events", "request_body"]


def request_body(bot_id: int, **fields: Any) -> dict[str, Any]:
    return {"bot_id": bot_id, "user_prompt": "sẵn sàng", "max_turns": 2, **fields}


async def create_simulation(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/v1/simulations", json=body)
    assert response.status_code == 202, response.text
    simulation_id: str = response.json()["simulation_id"]
    assert response.headers["location"] == f"/v1/simulations/{simulation_id}"
    return simulation_id


async def create_suite(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """POST /v1/suites: its id, once the answer is a 202 with its location and links."""
    response = await client.post("/v1/suites", json=body)
    assert response.status_code == 202, response.text
    suite_id: str = response.json()["suite_id"]
    assert response.headers["location"] == f"/v1/suites/{suite_id}"
    assert response.json()["links"]["events"] == f"/v1/suites/{suite_id}/events"
    return suite_id


async def read_events(
    client: httpx.AsyncClient,
    simulation_id: str,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> list[SimulationEvent]:
    """Every SSE event of a simulation until the server closes the stream; checks id and type."""
    events: list[SimulationEvent] = []
    async with aconnect_sse(
        client,
        "GET",
        f"/v1/simulations/{simulation_id}/events",
        headers=dict(headers or {}),
        params=params or {},
    ) as source:
        assert source.response.status_code == 200
        assert source.response.headers["x-accel-buffering"] == "no"
        async for sse in source.aiter_sse():
            if not sse.data:
                continue  # a keep-alive comment (httpx-sse reports it; browsers do not)
            event = parse_event(sse.data)
            assert sse.id == str(event.seq)
            assert sse.event == event.type
            events.append(event)
    return events


class EventWatcher:
    """An SSE client that stays connected in the background; tests wait on what it has seen."""

    def __init__(self, client: httpx.AsyncClient, simulation_id: str, after_seq: int = 0) -> None:
        self.events: list[SimulationEvent] = []
        self._changed = asyncio.Condition()
        headers = {"Last-Event-ID": str(after_seq)} if after_seq else {}
        self._task = asyncio.create_task(self._read(client, simulation_id, headers))

    async def _read(
        self, client: httpx.AsyncClient, simulation_id: str, headers: dict[str, str]
    ) -> None:
        async with aconnect_sse(
            client, "GET", f"/v1/simulations/{simulation_id}/events", headers=headers
        ) as source:
            assert source.response.status_code == 200
            async for sse in source.aiter_sse():
                if not sse.data:
                    continue  # a keep-alive comment
                event = parse_event(sse.data)
                assert sse.id == str(event.seq)
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()

    async def wait_for(
        self, condition: Callable[[list[SimulationEvent]], bool], timeout_s: float = 30
    ) -> list[SimulationEvent]:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: condition(self.events) or self._task.done())
        if not condition(self.events):
            self._task.result()  # raises what ended the stream early
            raise AssertionError(f"the stream ended without that: {self.events}")
        return self.events

    async def finished(self, timeout_s: float = 30) -> list[SimulationEvent]:
        """Every event, once the server closed the stream after the terminal event."""
        async with asyncio.timeout(timeout_s):
            await self._task
        return self.events

    def close(self) -> None:
        self._task.cancel()
