"""A scripted conversation that ends with the stop phrase, across an orchestrator kill: the
resumed run takes the next script item, asks the simulated user for no line it recorded, and
ends with ``user_ended``."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from contracts.events import CompletedEvent, SimulationEvent, TurnEvent
from tests.fakes.bot_api import GATED_BOT
from tests.fakes.openai_api import STOP_PHRASE, FakeOpenAI
from tests.integration.client import EventWatcher, create_simulation, request_body
from tests.integration.conftest import IsolatedStack
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(isolated: IsolatedStack) -> AsyncIterator[httpx.AsyncClient]:
    _, url = isolated.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


def _turns(events: list[SimulationEvent]) -> list[TurnEvent]:
    return [e for e in events if isinstance(e, TurnEvent)]


async def test_a_resumed_scripted_run_takes_the_next_item_and_ends_with_user_ended(
    isolated: IsolatedStack,
    gateway: httpx.AsyncClient,
    fake_llm: tuple[FakeOpenAI, str],
) -> None:
    llm, _ = fake_llm
    holder = isolated.start_orchestrator("orchestrator-holder")
    body = request_body(
        GATED_BOT,
        max_turns=6,
        persona="Marker r1.",
        script=["fixed one", None, f"bye {STOP_PHRASE}"],
    )
    simulation_id = await create_simulation(gateway, body)
    watcher = EventWatcher(gateway, simulation_id)
    await watcher.wait_for(lambda events: len(_turns(events)) == 3)  # ..., user "fixed one"
    isolated.bot.release(simulation_id)  # bot reply 2; then the simulated line
    await watcher.wait_for(lambda events: len(_turns(events)) == 5)
    await eventually(
        lambda: isolated.bot.webhook_calls(simulation_id) == 3,
        timeout_s=30,
        what="the holder to wait on bot reply 3",
    )
    isolated.start_orchestrator("orchestrator-standby")
    holder.stop(signal.SIGKILL)
    await eventually(
        lambda: isolated.bot.webhook_calls(simulation_id) == 4,
        timeout_s=30,
        what="the resumed run to call the bot again",
    )
    isolated.bot.open(simulation_id)

    events = await watcher.finished()
    completed = events[-1]
    assert isinstance(completed, CompletedEvent)
    assert (completed.stop_reason, completed.turn_count) == ("user_ended", 4)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    users = [t for t in _turns(events) if t.role == "user"]
    assert [u.content for u in users][:2] == ["sẵn sàng", "fixed one"]
    assert users[2].content.startswith("Learner line 2 after: Bot reply 2 to: fixed one")
    assert (users[3].content, users[3].ends_conversation) == ("bye", True)
    assert users[3].attempt == 2  # written by the resumed run: the next script item
    assert len(llm.requests_with("Marker r1.")) == 1  # the recorded line was not asked again
