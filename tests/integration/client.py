"""HTTP helpers of the integration tests: create simulations, read SSE streams."""

from __future__ import annotations

from typing import Any

import httpx
from httpx_sse import aconnect_sse

from contracts.events import SimulationEvent, parse_event

__all__ = ["create_simulation", "read_events", "request_body"]


def request_body(bot_id: int, **fields: Any) -> dict[str, Any]:
    return {"bot_id": bot_id, "user_prompt": "sẵn sàng", "max_turns": 2, **fields}


async def create_simulation(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/v1/simulations", json=body)
    assert response.status_code == 202, response.text
    simulation_id: str = response.json()["simulation_id"]
    assert response.headers["location"] == f"/v1/simulations/{simulation_id}"
    return simulation_id


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
            event = parse_event(sse.data)
            assert sse.id == str(event.seq)
            assert sse.event == event.type
            events.append(event)
    return events
