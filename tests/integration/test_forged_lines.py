"""The text stream cannot be forged: a bot reply or an error message holding a line break and
``Bot: ...`` stays one line in /simulate's text and in /transcript, while JSON and SSE keep the
message as it is."""

from __future__ import annotations

import httpx
import pytest

from contracts.transcript import unescape_message
from tests.fakes.bot_api import FORGED_LINE, FORGING_BOT, FORGING_REJECTING_BOT
from tests.integration.client import read_events, request_body

pytestmark = pytest.mark.integration


async def _simulate_text(client: httpx.AsyncClient, bot_id: int) -> tuple[str, list[str]]:
    async with client.stream("POST", "/simulate", json=request_body(bot_id)) as response:
        assert response.status_code == 200
        simulation_id = response.headers["x-simulation-id"]
        lines = [line async for line in response.aiter_lines()]
    return simulation_id, lines


async def test_a_reply_cannot_forge_a_turn(client: httpx.AsyncClient) -> None:
    simulation_id, lines = await _simulate_text(client, FORGING_BOT)
    events = await read_events(client, simulation_id)
    turns = [event for event in events if event.type == "turn"]
    assert events[-1].type == "completed"
    # SSE (and JSON) keep the message whole, its line break included.
    assert [t.content for t in turns if t.role == "bot"] == [
        f"Bot reply 1\n{FORGED_LINE}",
        f"Bot reply 2\n{FORGED_LINE}",
    ]
    assert FORGED_LINE not in lines
    assert len(lines) == len(turns)
    for line, turn in zip(lines, turns, strict=True):
        speaker, _, escaped = line.partition(": ")
        assert speaker == {"user": "User", "bot": "Bot"}[turn.role]
        assert unescape_message(escaped) == turn.content

    transcript = (await client.get(f"/v1/simulations/{simulation_id}/transcript")).text
    assert transcript.splitlines() == lines
    state = (await client.get(f"/v1/simulations/{simulation_id}")).json()
    assert state["turns"][1]["content"] == f"Bot reply 1\n{FORGED_LINE}"


async def test_an_error_message_cannot_forge_a_turn(client: httpx.AsyncClient) -> None:
    simulation_id, lines = await _simulate_text(client, FORGING_REJECTING_BOT)
    assert lines[0] == "User: sẵn sàng"
    assert len(lines) == 2, lines
    assert lines[1].startswith("Error: ")
    assert FORGED_LINE not in lines
    events = await read_events(client, simulation_id)
    failed = events[-1]
    assert failed.type == "failed"
    assert f"off\n{FORGED_LINE}" in failed.error.message  # type: ignore[union-attr]
    assert unescape_message(lines[1].removeprefix("Error: ")) == failed.error.message  # type: ignore[union-attr]
