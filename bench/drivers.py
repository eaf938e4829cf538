"""The two ways the bench follows a simulation (``--client``).

- ``bench``: the bench's own driver, ``POST /simulate`` with ``Accept: text/event-stream`` on a
  bare aiohttp session and a minimal SSE parser (the driver shares the machine with what it
  measures, so its own cost per event is kept as small as it can be). Every event counts.
- ``typical``: what the README tells users to do, with httpx: ``POST /v1/simulations``, then
  ``GET /v1/simulations/{id}/events`` (httpx-sse). Only the events published after that
  client's stream opened (its response headers arrived) count: the earlier ones are a replay.
- ``typical-aiohttp``: the same client with httpx's aiohttp transport (httpx-aiohttp), the
  one convsim's orchestrator uses: httpx's own pool (httpcore) looks at every open connection
  each time a request starts or ends, which costs a client with hundreds of streams open
  more than everything it measures.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_sse import aconnect_sse

from bench.outcome import SimOutcome, event_time, kind_of

__all__ = ["ClientKind", "Driver", "open_driver"]

ClientKind = Literal["bench", "typical", "typical-aiohttp"]


class Driver(Protocol):
    async def follow(self, body: dict[str, Any]) -> SimOutcome:
        """Start one simulation and read its events to the end."""
        ...


class _BenchDriver:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def follow(self, body: dict[str, Any]) -> SimOutcome:
        outcome = SimOutcome()
        async with self._session.post(
            "/simulate", json=body, headers={"Accept": "text/event-stream"}
        ) as response:
            if response.status != 200:
                outcome.problem = f"HTTP {response.status}"
                return outcome
            data: list[bytes] = []
            async for line in response.content:
                if line.startswith(b"data:"):
                    data.append(line[5:].strip())
                elif not line.strip() and data:
                    arrived = time.time()
                    event = json.loads(b"\n".join(data))
                    data = []
                    outcome.live.append((kind_of(event), arrived - event_time(event)))
                    outcome.events.append(event)
        return outcome


class _TypicalDriver:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def follow(self, body: dict[str, Any]) -> SimOutcome:
        outcome = SimOutcome()
        created = await self._client.post("/v1/simulations", json=body)
        if created.status_code != 202:
            outcome.problem = f"POST /v1/simulations: HTTP {created.status_code}"
            return outcome
        simulation_id = created.json()["simulation_id"]
        url = f"/v1/simulations/{simulation_id}/events"
        async with aconnect_sse(self._client, "GET", url) as source:
            opened = time.time()
            if source.response.status_code != 200:
                outcome.problem = f"GET events: HTTP {source.response.status_code}"
                return outcome
            async for message in source.aiter_sse():
                if not message.data:
                    continue  # a keep-alive (httpx-sse 0.4 yields one once an id was seen)
                arrived = time.time()
                event = message.json()
                published = event_time(event)
                if published >= opened:
                    outcome.live.append((kind_of(event), arrived - published))
                outcome.events.append(event)
        return outcome


@asynccontextmanager
async def open_driver(kind: ClientKind, gateway_url: str, n: int) -> AsyncIterator[Driver]:
    """The driver's client, with room for all ``n`` streams at once."""
    if kind == "bench":
        async with aiohttp.ClientSession(
            base_url=gateway_url,
            connector=aiohttp.TCPConnector(limit=n + 10),
            timeout=aiohttp.ClientTimeout(total=600, connect=60),
        ) as session:
            yield _BenchDriver(session)
        return
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(
        base_url=gateway_url,
        limits=limits,
        timeout=httpx.Timeout(600, connect=60),
        transport=AiohttpTransport(limits=limits) if kind == "typical-aiohttp" else None,
    ) as client:
        yield _TypicalDriver(client)
