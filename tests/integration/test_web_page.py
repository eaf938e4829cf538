"""The live web page at ``/`` in a real headless Chromium: start a simulation from the form, see
the bubbles arrive one by one, reload, resume after the gateway restarts, cancel, use it with
API keys on and on a phone."""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, expect

from contracts.events import (
    CancelledEvent,
    QueuedEvent,
    SimulationEvent,
    StartedEvent,
    TurnEvent,
)
from contracts.ids import new_simulation_id
from contracts.requests import SimulationRequest
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.fakes.json_bot import GOODBYE_AT, FakeJsonBot
from tests.fakes.server import free_port, serve_in_thread
from tests.integration.browser import chromium, open_page
from tests.integration.client import create_simulation, read_events, request_body
from tests.integration.conftest import API_KEY_ALPHA, IsolatedStack, Stack
from tests.integration.log_tap import eventually

pytestmark = pytest.mark.integration

__all__ = ["chromium"]  # the fixture, imported for pytest

WAIT_MS = 30_000
LATENCY = re.compile(r"^(\d+\.\d\d s|opening message)$")


async def start_from_form(page: Page, *, bot_id: int, prompt: str, max_turns: int) -> str:
    """Fill the form by its labels, submit it with the keyboard; the simulation's id."""
    await page.get_by_label("Bot id").fill(str(bot_id))
    await page.get_by_label("Opening message").fill(prompt)
    await page.get_by_label("Max turns").fill(str(max_turns))
    await page.get_by_label("Max turns").press("Enter")
    await expect(page).to_have_url(re.compile(r"#/simulations/[A-Za-z0-9_-]+$"), timeout=WAIT_MS)
    return page.url.rsplit("/", 1)[-1]


async def bubble_texts(page: Page) -> list[tuple[str, str]]:
    """(speaker, text) of every bubble, in order."""
    items = page.locator("#bubbles .bubble")
    speakers = await items.locator(".speaker").all_inner_texts()
    texts = await items.locator(".text").all_inner_texts()
    return list(zip(speakers, texts, strict=True))


async def expect_status(page: Page, text: str) -> None:
    await expect(page.get_by_role("status")).to_have_text(text, timeout=WAIT_MS)


async def test_bubbles_arrive_one_by_one_and_a_reload_shows_the_same_transcript(
    stack: Stack, chromium: Browser, client: httpx.AsyncClient
) -> None:
    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    simulation_id = await start_from_form(page, bot_id=GATED_BOT, prompt="hello", max_turns=3)
    items = page.locator("#bubbles .bubble")

    # The bot's second reply is held: the page shows the three lines before it, and waits.
    await expect(items).to_have_count(3, timeout=WAIT_MS)
    await expect_status(page, "Running")
    await expect(page.locator("#waiting")).to_have_text("The bot is replying…")
    await eventually(
        lambda: stack.bot.webhook_calls(simulation_id) == 2,
        timeout_s=10,
        what="the second bot call to be in flight",
    )
    await expect(items).to_have_count(3)

    stack.bot.release(simulation_id)  # bot reply 2, then the simulated user's line
    await expect(items).to_have_count(5, timeout=WAIT_MS)
    await expect_status(page, "Running")
    stack.bot.release(simulation_id)  # the last bot reply
    await expect(items).to_have_count(6, timeout=WAIT_MS)
    await expect_status(page, "Completed")
    await expect(page.locator("#outcome")).to_contain_text("Completed: 3 bot replies")
    await expect(page.get_by_role("button", name="Cancel simulation")).to_be_disabled()

    shown = await bubble_texts(page)
    state = (await client.get(f"/v1/simulations/{simulation_id}")).json()
    assert shown == [
        ("Bot" if turn["role"] == "bot" else "Simulated user", turn["content"])
        for turn in state["turns"]
    ]
    assert shown[0] == ("Simulated user", "hello")
    for latency in await items.locator(".latency").all_inner_texts():
        assert LATENCY.match(latency), latency

    await page.reload()
    await expect_status(page, "Completed")
    await expect(items).to_have_count(6)
    assert await bubble_texts(page) == shown

    # The recent list keeps it across reloads; opening it again from there shows it again.
    recent = page.get_by_role("link", name=re.compile("hello"))
    await expect(recent).to_contain_text("completed")
    await page.goto(stack.gateway_url + "/")
    await expect(page.get_by_role("status")).to_have_text("No simulation open")
    await recent.click()
    await expect_status(page, "Completed")
    assert await bubble_texts(page) == shown
    watched.assert_no_errors()


async def test_cancel_from_the_page(
    stack: Stack, chromium: Browser, client: httpx.AsyncClient
) -> None:
    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    simulation_id = await start_from_form(page, bot_id=GATED_BOT, prompt="cancel me", max_turns=3)
    await expect(page.locator("#bubbles .bubble")).to_have_count(3, timeout=WAIT_MS)

    await page.get_by_role("button", name="Cancel simulation").click()
    await expect_status(page, "Cancelled")
    await expect(page.locator("#outcome")).to_contain_text("Cancelled")
    await expect(page.get_by_role("button", name="Cancel simulation")).to_be_disabled()
    await expect(page.locator("#bubbles .bubble")).to_have_count(3)
    assert (await client.get(f"/v1/simulations/{simulation_id}")).json()["status"] == "cancelled"
    watched.assert_no_errors()


async def test_the_page_resumes_where_it_left_off_after_the_gateway_restarts(
    isolated: IsolatedStack, chromium: Browser
) -> None:
    isolated.start_orchestrator("orchestrator-web")
    port = free_port()
    gateway, url = isolated.start_gateway("gateway-web-1", port=port)
    watched = await open_page(chromium, url)
    page = watched.page
    simulation_id = await start_from_form(page, bot_id=GATED_BOT, prompt="resume", max_turns=3)
    items = page.locator("#bubbles .bubble")
    await expect(items).to_have_count(3, timeout=WAIT_MS)

    gateway.stop(signal.SIGKILL)
    await expect(page.locator("#connection")).to_contain_text("reconnecting", timeout=WAIT_MS)
    isolated.bot.release(simulation_id)  # two lines happen while no gateway runs
    await eventually(
        lambda: isolated.bot.webhook_calls(simulation_id) == 3,
        timeout_s=10,
        what="the third bot call (both missed lines are in the log)",
    )
    isolated.start_gateway("gateway-web-2", port=port)

    await expect(items).to_have_count(5, timeout=WAIT_MS)
    await expect(page.locator("#connection")).to_have_text("live")
    isolated.bot.release(simulation_id)
    await expect_status(page, "Completed")
    indexes = await items.evaluate_all("items => items.map(item => Number(item.dataset.index))")
    assert indexes == [0, 1, 2, 3, 4, 5]
    # The browser itself resumed: its reconnect named the last event it had seen (queued,
    # started and three turns: seq 5).
    resumed = [sent for sent in await watched.last_event_ids() if sent is not None]
    assert resumed, watched.event_streams
    assert resumed[0] == "5"
    assert watched.script_errors == []


async def test_with_api_keys_the_page_asks_for_one_and_never_puts_it_in_a_url(
    isolated: IsolatedStack, chromium: Browser
) -> None:
    keyed = {"CONVSIM_API_KEYS": API_KEY_ALPHA}
    isolated.start_orchestrator("orchestrator-web-keyed", **keyed)
    _, url = isolated.start_gateway("gateway-web-keyed", **keyed)
    watched = await open_page(chromium, url)
    page = watched.page
    key_field = page.get_by_label("API key")
    await expect(key_field).to_be_hidden()

    await page.get_by_label("Bot id").fill(str(NORMAL_BOT))
    await page.get_by_role("button", name="Start simulation").click()
    await expect(page.get_by_role("alert")).to_contain_text("needs an API key")
    await expect(key_field).to_be_focused()
    await key_field.fill(API_KEY_ALPHA)
    await key_field.press("Enter")
    await expect_status(page, "Completed")
    assert len(await bubble_texts(page)) == 6

    event_urls = [u for u in watched.urls if u.endswith("/events") or "/events?" in u]
    assert event_urls
    assert all(parse_qs(urlsplit(u).query).get("access_token") for u in event_urls)
    assert not any(API_KEY_ALPHA in u for u in watched.urls)
    assert API_KEY_ALPHA not in await page.evaluate("JSON.stringify(localStorage)")
    assert watched.script_errors == []


async def test_on_a_phone_everything_fits_and_every_control_has_a_label(
    stack: Stack, chromium: Browser, client: httpx.AsyncClient
) -> None:
    simulation_id = await create_simulation(client, request_body(NORMAL_BOT, max_turns=2))
    await read_events(client, simulation_id)
    watched = await open_page(
        chromium,
        f"{stack.gateway_url}/#/simulations/{simulation_id}",
        width=390,
        height=844,
        phone=True,
    )
    page = watched.page
    await expect_status(page, "Completed")
    await expect(page.locator("#bubbles .bubble")).to_have_count(4)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    unlabelled = await page.evaluate(
        "[...document.querySelectorAll('input, textarea, select')]"
        ".filter(control => control.labels.length === 0).map(control => control.id)"
    )
    assert unlabelled == []
    start = page.get_by_role("button", name="Start simulation")
    box = await start.bounding_box()
    assert box is not None
    assert box["height"] >= 44  # a finger-sized target
    if shots := os.environ.get("CONVSIM_SCREENSHOTS"):
        await page.screenshot(path=Path(shots) / "phone.png", full_page=True)
    watched.assert_no_errors()


async def test_bad_input_is_named_next_to_its_field_and_an_unknown_id_says_so(
    stack: Stack, chromium: Browser
) -> None:
    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    await page.get_by_label("Max turns").fill("99")
    await page.get_by_role("button", name="Start simulation").click()
    max_turns = page.get_by_label("Max turns")
    await expect(page.locator("#max-turns-error")).to_contain_text("50", timeout=WAIT_MS)
    await expect(max_turns).to_have_attribute("aria-invalid", "true")
    await expect(max_turns).to_be_focused()
    assert "#/simulations/" not in page.url  # nothing was started

    await page.goto(f"{stack.gateway_url}/#/simulations/no-such-simulation")
    await expect_status(page, "Not found")
    await expect(page.locator("#outcome")).to_contain_text("No such simulation")
    assert watched.script_errors == []


async def test_the_page_is_served_without_a_key_and_allows_only_its_own_scripts(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/ui/app.js", "/ui/style.css", "/ui/favicon.svg"):
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["cache-control"] == "no-cache"


async def test_two_prompts_against_each_other_from_the_page(
    stack: Stack, chromium: Browser, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The built-in `llm` target: the page shows the bot's prompt beside the simulated user's,
    runs them against each other, and says why the conversation stopped."""
    bot_prompt = "You are Teacher Bee, a kind English teacher. Page bot prompt 5e1d."
    persona = "You are Minh, ten, learning English. Answer briefly. [stop-at 2]"
    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    target = page.get_by_label("Bot target")
    await expect(target.locator("option[value='llm']")).to_have_text("llm (openai_chat)")
    await expect(page.get_by_label("Bot id")).to_be_visible()
    await target.select_option("llm")
    await expect(page.get_by_label("Bot id")).to_be_hidden()
    await page.get_by_label("Bot's prompt").fill(bot_prompt)
    await page.get_by_label("Persona").fill(persona)
    await page.get_by_label("Goal").fill("Learn two colours")
    await page.get_by_label("Opening message").fill("Hello! I am ready.")
    await page.get_by_label("Max turns").fill("4")
    await page.get_by_role("button", name="Start simulation").click()
    await expect(page).to_have_url(re.compile(r"#/simulations/[A-Za-z0-9_-]+$"), timeout=WAIT_MS)
    simulation_id = page.url.rsplit("/", 1)[-1]

    await expect_status(page, "Completed")
    # The simulated user said goodbye after the bot's second reply; the bot answered it.
    await expect(page.locator("#stop-reason")).to_have_text(
        "Stop reason: user_ended (the simulated user ended it)"
    )
    await expect(page.locator("#outcome")).to_contain_text("Completed: 3 bot replies")
    await expect(page.locator("#prompts")).to_be_visible()
    await expect(page.locator("#prompt-bot")).to_have_text(bot_prompt)
    await expect(page.locator("#prompt-user")).to_have_text(persona)
    await expect(page.locator("#prompt-goal")).to_have_text("Goal: Learn two colours")
    await expect(page.locator("#fact-bot")).to_have_text("llm")  # no bot_id: null

    shown = await bubble_texts(page)
    state = (await client.get(f"/v1/simulations/{simulation_id}")).json()
    assert state["request"]["bot_id"] is None
    assert shown == [
        ("Bot" if turn["role"] == "bot" else "Simulated user", turn["content"])
        for turn in state["turns"]
    ]
    assert [speaker for speaker, _ in shown] == ["Simulated user", "Bot"] * 3
    assert shown[0] == ("Simulated user", "Hello! I am ready.")
    assert shown[4][1].startswith("Thank you, bye!")

    # The bot is the prompt: its every call has the prompt as the system message, its own
    # lines as `assistant`, the simulated user's as `user`.
    bot_calls = stack.llm.requests_with("Page bot prompt 5e1d")
    assert len(bot_calls) == 3
    assert bot_calls[0]["messages"] == [
        {"role": "system", "content": bot_prompt},
        {"role": "user", "content": "Hello! I am ready."},
    ]
    assert [m["role"] for m in bot_calls[-1]["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    # CONVSIM_SCREENSHOTS: a directory to keep the picture in, to look at.
    shots = Path(os.environ.get("CONVSIM_SCREENSHOTS") or tmp_path)
    await page.screenshot(path=shots / "two-prompts.png", full_page=True)

    # Reloaded, the page shows the same: prompts, bubbles and stop reason from the events.
    await page.reload()
    await expect_status(page, "Completed")
    await expect(page.locator("#prompt-bot")).to_have_text(bot_prompt)
    await expect(page.locator("#stop-reason")).to_contain_text("user_ended")
    assert await bubble_texts(page) == shown
    recent = page.get_by_role("link", name=re.compile("Hello! I am ready."))
    await expect(recent).to_contain_text("llm · completed")
    watched.assert_no_errors()


async def test_a_reply_of_several_messages_is_consecutive_bubbles_and_the_bot_may_end_it(
    isolated: IsolatedStack, chromium: Browser
) -> None:
    """An http_json target (nothing to fill in): each message of a reply is its own bubble,
    numbered; the bot's "Goodbye!" matches its end_pattern, and the page says so."""
    json_bot = FakeJsonBot()
    with serve_in_thread(json_bot.app()) as (bot_url, loop):
        json_bot.bind(loop)
        ender = {
            "kind": "http_json",
            "url": f"{bot_url}/chat",
            "body": {"session": "{conversation_id}", "messages": "{history}"},
            "reply_path": "result.messages",
            "end_pattern": "(?i)goodbye",
        }
        targets = {"CONVSIM_BOT_TARGETS": json.dumps({"ender": ender})}
        isolated.start_orchestrator("orchestrator-web-parts", **targets)
        _, url = isolated.start_gateway("gateway-web-parts", **targets)
        watched = await open_page(chromium, url)
        page = watched.page
        await page.get_by_label("Bot target").select_option("ender")
        await expect(page.locator("#bot-target-hint")).to_contain_text("JSON webhook")
        await expect(page.get_by_label("Bot id")).to_be_hidden()
        await expect(page.get_by_label("Bot's prompt")).to_be_hidden()
        await page.get_by_label("Opening message").fill("Hello bot")
        await page.get_by_label("Max turns").fill("5")
        await page.get_by_role("button", name="Start simulation").click()

        await expect_status(page, "Completed")
        assert await bubble_texts(page) == [
            ("Simulated user", "Hello bot"),
            ("Bot", "Reply 1 to: Hello bot"),
            ("Bot", "Anything else?"),
            ("Simulated user", "Learner line 2 after: Anything else?"),
            ("Bot", f"Reply {GOODBYE_AT} to: Learner line 2 after: Anything else?"),
            ("Bot", "Goodbye!"),
        ]
        parts = await page.locator("#bubbles .bubble.bot .meta").all_inner_texts()
        assert [part.rsplit(" · ", 1)[-1] for part in parts] == [
            "message 1 of 2",
            "message 2 of 2",
        ] * 2
        await expect(page.locator("#stop-reason")).to_have_text(
            "Stop reason: bot_ended (the bot ended it)"
        )
        await expect(page.locator("#outcome")).to_contain_text("Completed: 2 bot replies")
        await expect(page.locator("#fact-bot")).to_have_text("ender")
        await expect(page.locator("#prompts")).to_be_hidden()
        watched.assert_no_errors()


async def start_chat(page: Page, *, bot_id: int, persona: str = "", goal: str = "") -> str:
    """Switch the form to Chat, fill the bot's side (and persona, goal), start; the chat's id."""
    await page.get_by_role("radio", name=re.compile(r"^Chat")).check()
    await expect(page.get_by_role("button", name="Start chat")).to_be_visible()
    await expect(page.get_by_label("Opening message")).to_be_hidden()
    await expect(page.get_by_label("Max turns")).to_be_hidden()
    await page.get_by_label("Bot id").fill(str(bot_id))
    if persona:
        await page.get_by_label("Persona").fill(persona)
    if goal:
        await page.get_by_label("Goal").fill(goal)
    await page.get_by_role("button", name="Start chat").click()
    await expect(page).to_have_url(re.compile(r"#/simulations/[A-Za-z0-9_-]+$"), timeout=WAIT_MS)
    return page.url.rsplit("/", 1)[-1]


async def test_a_person_chats_with_the_bot_and_takes_the_simulated_users_suggestion(
    stack: Stack, chromium: Browser, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Chat mode: a typed message, then a suggestion (filled in, not sent until Send), both
    answered as bubbles; End chat ends it `closed`, as the API's transcript says."""
    goal = f"Learn two colours {uuid.uuid4().hex[:6]}"
    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    conversation_id = await start_chat(
        page, bot_id=NORMAL_BOT, persona="You are Minh, ten, learning English.", goal=goal
    )
    await expect_status(page, "Chat open")
    await expect(page.get_by_role("button", name="Cancel simulation")).to_be_hidden()
    box = page.get_by_label("Your message")
    await expect(box).to_be_focused()
    items = page.locator("#bubbles .bubble")

    await box.fill("hello")
    await box.press("Enter")
    await expect(items).to_have_count(2, timeout=WAIT_MS)
    await expect(box).to_have_value("")
    await expect(page.get_by_role("button", name="Send")).to_be_enabled()

    suggestion = "Learner line 1 after: Bot reply 1 to: hello"  # the fake LLM's answer
    await page.get_by_role("button", name="Suggest").click()
    await expect(box).to_have_value(suggestion, timeout=WAIT_MS)
    await expect(box).to_be_focused()
    assert len(await bubble_texts(page)) == 2  # filled in, not sent
    [asked] = stack.llm.requests_with(goal)  # with the persona and goal, once
    assert asked["messages"][0]["content"].startswith("You are Minh")

    await page.get_by_role("button", name="Send").click()
    await expect(items).to_have_count(4, timeout=WAIT_MS)
    shown = await bubble_texts(page)
    assert shown == [
        ("You", "hello"),
        ("Bot", "Bot reply 1 to: hello"),
        ("You", suggestion),
        ("Bot", f"Bot reply 2 to: {suggestion}"),
    ]
    await expect(page.locator("#waiting")).to_be_hidden()
    await box.fill("What colour is the sky?")  # typed, for the picture; never sent
    # CONVSIM_SCREENSHOTS: a directory to keep the picture in, to look at.
    shots = Path(os.environ.get("CONVSIM_SCREENSHOTS") or tmp_path)
    await page.screenshot(path=shots / "chat.png", full_page=True)

    await page.get_by_role("button", name="End chat").click()
    await expect_status(page, "Chat ended")
    await expect(page.locator("#stop-reason")).to_have_text(
        "Stop reason: closed (the chat was ended)"
    )
    await expect(page.locator("#outcome")).to_contain_text("Chat ended: 2 bot replies")
    await expect(page.locator("#chat-form")).to_be_hidden()

    view = (await client.get(f"/v1/conversations/{conversation_id}")).json()
    assert view["status"] == "completed"
    assert view["stop_reason"] == "closed"
    assert view["request"]["goal"] == goal
    assert shown == [
        ("Bot" if turn["role"] == "bot" else "You", turn["content"]) for turn in view["turns"]
    ]
    transcript = (await client.get(f"/v1/simulations/{conversation_id}/transcript")).text
    assert transcript.splitlines() == [
        "User: hello",
        "Bot: Bot reply 1 to: hello",
        f"User: {suggestion}",
        f"Bot: Bot reply 2 to: {suggestion}",
    ]
    assert stack.bot.webhook_calls(conversation_id) == 2

    # Reloaded, the ended chat reads the same from its events, with no message box.
    await page.reload()
    await expect_status(page, "Chat ended")
    await expect(page.locator("#stop-reason")).to_contain_text("closed")
    await expect(page.locator("#chat-form")).to_be_hidden()
    assert await bubble_texts(page) == shown
    await expect(page.get_by_role("link", name=re.compile("^Chat"))).to_contain_text("completed")
    watched.assert_no_errors()


async def test_a_chat_with_api_keys_on_uses_the_key_in_headers_and_a_stream_token(
    isolated: IsolatedStack, chromium: Browser
) -> None:
    keyed = {"CONVSIM_API_KEYS": API_KEY_ALPHA}
    isolated.start_orchestrator("orchestrator-web-chat-keyed", **keyed)
    _, url = isolated.start_gateway("gateway-web-chat-keyed", **keyed)
    watched = await open_page(chromium, url)
    page = watched.page
    await page.get_by_role("radio", name=re.compile(r"^Chat")).check()
    await page.get_by_label("Bot id").fill(str(NORMAL_BOT))
    await page.get_by_role("button", name="Start chat").click()
    await expect(page.get_by_role("alert").first).to_contain_text("needs an API key")
    key_field = page.get_by_label("API key")
    await expect(key_field).to_be_focused()
    await key_field.fill(API_KEY_ALPHA)
    await key_field.press("Enter")
    await expect_status(page, "Chat open")

    box = page.get_by_label("Your message")
    await box.fill("hello")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#bubbles .bubble")).to_have_count(2, timeout=WAIT_MS)
    await page.get_by_role("button", name="Suggest").click()
    await expect(box).to_have_value("Learner line 1 after: Bot reply 1 to: hello")
    await page.get_by_role("button", name="End chat").click()
    await expect(page.locator("#stop-reason")).to_contain_text("closed")

    event_urls = [u for u in watched.urls if u.endswith("/events") or "/events?" in u]
    assert event_urls
    assert all(parse_qs(urlsplit(u).query).get("access_token") for u in event_urls)
    assert not any(API_KEY_ALPHA in u for u in watched.urls)
    assert watched.script_errors == []


async def test_in_a_chat_the_next_message_waits_for_the_bots_reply(
    stack: Stack, chromium: Browser
) -> None:
    """One message at a time (the gateway answers 409 otherwise): while the bot's reply is held,
    Send and Suggest are disabled and the page says the bot is replying."""
    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    conversation_id = await start_chat(page, bot_id=GATED_BOT)
    box = page.get_by_label("Your message")
    items = page.locator("#bubbles .bubble")
    send = page.get_by_role("button", name="Send")
    suggest = page.get_by_role("button", name="Suggest")
    await box.fill("one")
    await box.press("Enter")
    await expect(items).to_have_count(2, timeout=WAIT_MS)

    await box.fill("two")  # the bot's second reply is held
    await box.press("Enter")
    await expect(items).to_have_count(3, timeout=WAIT_MS)
    await expect(page.locator("#waiting")).to_have_text("The bot is replying…")
    await expect(send).to_be_disabled()
    await expect(suggest).to_be_disabled()
    await box.fill("three")
    await box.press("Enter")  # not sent: nothing is posted while a reply is awaited
    await expect(page.locator("#chat-error")).to_be_hidden()

    stack.bot.open(conversation_id)  # this reply and every later one
    await expect(items).to_have_count(4, timeout=WAIT_MS)
    await expect(send).to_be_enabled()
    await expect(box).to_have_value("three")
    await send.click()
    await expect(items).to_have_count(6, timeout=WAIT_MS)
    assert [text for _, text in await bubble_texts(page)][::2] == ["one", "two", "three"]
    await page.get_by_role("button", name="End chat").click()
    await expect(page.locator("#stop-reason")).to_contain_text("closed")
    watched.assert_no_errors()


def _superseded_story(simulation_id: str) -> tuple[list[SimulationEvent], SimulationEvent]:
    """Attempt 1's events up to its reply at seq 4, and attempt 2's end at seq 4: it resumed
    at seq 4 and ended there (its request was cancelled meanwhile)."""
    request = SimulationRequest(simulation_id=simulation_id, bot_id=NORMAL_BOT, user_prompt="hi")

    def turn(seq: int, role: Literal["user", "bot"], content: str) -> TurnEvent:
        return TurnEvent(
            simulation_id=simulation_id,
            seq=seq,
            index=seq - 3,
            role=role,
            content=content,
            latency_ms=5,
        )

    older: list[SimulationEvent] = [
        QueuedEvent(simulation_id=simulation_id, seq=1, request=request),
        StartedEvent(
            simulation_id=simulation_id, seq=2, conversation_id="c", user_simulator="scripted"
        ),
        turn(3, "user", "hi"),
        turn(4, "bot", "attempt 1's reply"),
    ]
    end = CancelledEvent(simulation_id=simulation_id, seq=4, attempt=2, transcript="User: hi\n")
    return older, end


def _sse(events: list[SimulationEvent], *, retry_ms: int | None = None) -> str:
    head = f"retry: {retry_ms}\r\n\r\n" if retry_ms is not None else ""
    return head + "".join(
        f"event: {event.type}\r\nid: {event.seq}\r\ndata: {event.model_dump_json()}\r\n\r\n"
        for event in events
    )


async def _serve_stream_token(page: Page, simulation_id: str) -> None:
    await page.route(
        f"**/v1/simulations/{simulation_id}/stream-token",
        lambda route: route.fulfill(json={"token": "t", "expires_in_s": 60}),
    )


async def test_the_page_ends_on_a_newer_attempts_end_at_a_seq_it_has_shown(
    stack: Stack, chromium: Browser
) -> None:
    """The gateway sends a follower that was shown an older attempt's events the newer
    attempt's end even at a seq shown already (see EventSequence): the page must end on it.
    The stream is served by the test, so the page gets exactly that order."""
    simulation_id = new_simulation_id()
    older, end = _superseded_story(simulation_id)
    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    await _serve_stream_token(page, simulation_id)
    await page.route(
        re.compile(rf".*/v1/simulations/{simulation_id}/events.*"),
        lambda route: route.fulfill(
            status=200, headers={"content-type": "text/event-stream"}, body=_sse([*older, end])
        ),
    )
    await page.goto(f"{stack.gateway_url}/#/simulations/{simulation_id}")
    await expect_status(page, "Cancelled")
    assert await bubble_texts(page) == [("Simulated user", "hi"), ("Bot", "attempt 1's reply")]
    watched.assert_no_errors()


async def test_a_page_refused_at_the_end_it_never_got_shows_the_simulation_again(
    stack: Stack, chromium: Browser
) -> None:
    """The stream broke after an older attempt's seq 4 and before the newer attempt's end at
    seq 4: resuming after seq 4 is refused (204, the end's seq). The page asks whether the
    simulation ended and shows it again from its start, as it now stands."""
    simulation_id = new_simulation_id()
    older, end = _superseded_story(simulation_id)
    streams: list[str] = []

    async def serve_events(route: Route) -> None:
        request = route.request
        # The second request is the browser's own reconnect (its Last-Event-ID header is not
        # shown to a route); the page's own resumes carry last_event_id.
        resumed = len(streams) == 1 or "last_event_id=" in request.url
        streams.append("resumed" if resumed else "from the start")
        if resumed:
            await route.fulfill(status=204)
        elif streams.count("from the start") == 1:  # broke before the end
            await route.fulfill(
                status=200,
                headers={"content-type": "text/event-stream"},
                body=_sse(older, retry_ms=50),
            )
        else:  # as the gateway has it now
            await route.fulfill(
                status=200,
                headers={"content-type": "text/event-stream"},
                body=_sse([*older[:3], end]),
            )

    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    await _serve_stream_token(page, simulation_id)
    await page.route(re.compile(rf".*/v1/simulations/{simulation_id}/events.*"), serve_events)
    await page.route(
        re.compile(rf".*/v1/simulations/{simulation_id}$"),
        lambda route: route.fulfill(json={"simulation_id": simulation_id, "status": "cancelled"}),
    )
    await page.goto(f"{stack.gateway_url}/#/simulations/{simulation_id}")
    await expect_status(page, "Cancelled")
    assert streams == ["from the start", "resumed", "from the start"]
    assert await bubble_texts(page) == [("Simulated user", "hi")]
    assert watched.script_errors == []
