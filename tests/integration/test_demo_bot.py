"""The demo bot, served for real and driven by the orchestrator's own bot client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from contracts.requests import SimulationRequest
from services.common.bot_targets import OpenAIChatTarget
from services.demo_bot.app import create_app
from services.demo_bot.chat_completions import DEMO_TEACHER_MODEL
from services.demo_bot.settings import DemoBotSettings
from services.orchestrator.bots.openai_chat import OpenAIChatBot
from services.orchestrator.bots.robot_ai_lesson import RobotAiLessonBot
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.ports import unmetered
from tests.fakes.server import serve_in_thread


@pytest.fixture
async def bot() -> AsyncIterator[RobotAiLessonBot]:
    app = create_app(DemoBotSettings(reply_delay_s=0))
    with serve_in_thread(app, lifespan="on") as (url, _):
        async with httpx.AsyncClient(timeout=10) as http:
            yield RobotAiLessonBot(http, base_url=url, max_reply_bytes=100_000)


async def test_a_lesson_reacts_to_what_it_is_told(bot: RobotAiLessonBot) -> None:
    await bot.init_conversation(16, "c-animals", {})
    opening = await bot.send_message("c-animals", "sẵn sàng")
    assert "animal" in opening
    assert "ready" in opening
    assert "right" in await bot.send_message("c-animals", "It is a cat")
    wrong = await bot.send_message("c-animals", "banana")
    assert wrong.startswith("Almost!")
    assert "dog" in wrong


async def test_each_bot_id_teaches_its_own_lesson(bot: RobotAiLessonBot) -> None:
    await bot.init_conversation(17, "c-colours", {})
    assert "colour" in await bot.send_message("c-colours", "hello")


async def test_an_unknown_conversation_is_rejected(bot: RobotAiLessonBot) -> None:
    with pytest.raises(SimulationFailure) as caught:
        await bot.send_message("never-initialised", "hello")
    assert caught.value.code == "bot_rejected"


async def test_the_demo_teacher_answers_chat_completions_without_a_key() -> None:
    app = create_app(DemoBotSettings(reply_delay_s=0))
    with serve_in_thread(app, lifespan="on") as (url, _):
        async with httpx.AsyncClient(timeout=10) as http:
            bot = OpenAIChatBot(
                http,
                OpenAIChatTarget(),
                base_url=f"{url}/v1",
                model=DEMO_TEACHER_MODEL,
                api_key=None,
                max_reply_bytes=100_000,
            )
            request = SimulationRequest(
                simulation_id="two-prompts",
                user_prompt="ready",
                bot_prompt="You teach the colours lesson.",
            )
            opening, _ = unmetered(await bot.reply(request, "ready", []))
            assert "colour" in opening[0]
            assert "ready" in opening[0]
            again, _ = unmetered(await bot.reply(request, "ready", []))
            assert again == opening  # deterministic: same conversation, same reply
            nxt, _ = unmetered(
                await bot.reply(request, "blue", [("user", "ready"), ("bot", opening[0])])
            )
            assert nxt != opening
