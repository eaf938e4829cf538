"""The web page's Suites view in a real headless Chromium: paste a suite (YAML), start it, see
its runs end and their verdicts arrive live, open a member's conversation; bad YAML and bad
fields are named before anything runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from contracts.names import JUDGE_QUEUE
from contracts.scenarios import SuiteCreate
from services.common.suite_files import load_suite
from tests.fakes.bot_api import GATED_BOT, NORMAL_BOT
from tests.integration.browser import chromium, open_page
from tests.integration.conftest import IsolatedStack, Stack
from tests.integration.log_tap import eventually
from tests.integration.processes import ServiceProcess, wait_until

pytestmark = pytest.mark.integration

__all__ = ["chromium"]  # the fixture, imported for pytest

WAIT_MS = 60_000
REPO = Path(__file__).resolve().parents[2]

# Two scenarios against the fake bot ("Bot reply <n> to: <message>"), scripted users, no
# criteria: the verdicts come from the assertions alone (no LLM), so they are known: the first
# scenario passes both its runs, the second fails its one. The first scenario's second bot
# replies wait at the gated bot until the test opens them: the suite cannot end before the
# page follows it.
SUITE_YAML = f"""\
name: pasted in the page
concurrency: 2
scenarios:
  - name: replies
    repeat: 2
    bot: {{bot_id: {GATED_BOT}}}
    user:
      opening: hello
      script: [again]
    max_turns: 2
    assertions:
      - {{turn: 1, contains: "Bot reply 1 to: hello"}}
      - {{not_contains: Traceback}}
  - name: meows
    bot: {{bot_id: {NORMAL_BOT}}}
    user: {{opening: hello}}
    max_turns: 1
    assertions:
      - {{contains: meow}}
"""


async def open_suites(page: Page) -> None:
    await page.get_by_role("link", name="Suites", exact=True).click()
    await expect(page.get_by_role("heading", name="New suite")).to_be_visible()


async def start_suite(page: Page, text: str) -> None:
    await page.get_by_label("Suite (YAML)").fill(text)
    await page.get_by_role("button", name="Start suite").click()


async def suite_body_in_the_page(page: Page, text: str) -> Any:
    """What the page would POST for ``text`` (its own module, in the browser)."""
    return await page.evaluate(
        "async (text) => (await import('/ui/suites.js')).suiteBody(text)", text
    )


def start_judge(isolated: IsolatedStack) -> ServiceProcess:
    judge = ServiceProcess("judge-web", "services.judge", isolated.env, isolated.logs)
    isolated.processes.append(judge)

    def consuming() -> bool:
        judge.check_running()
        try:
            queue = isolated.broker.admin.queue(isolated.broker.vhost, JUDGE_QUEUE)
        except Exception:
            return False
        return int(queue.get("consumers", 0)) >= 1

    wait_until(consuming, timeout_s=30, what="the judge to consume its queue")
    return judge


async def open_gated_runs(
    isolated: IsolatedStack, url: str, suite_id: str, *, scenario: str, runs: int
) -> None:
    """Let every reply of the scenario's runs go at the gated bot (its conversation ids are the
    simulation ids) once the suite has admitted them."""
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def admitted() -> bool:
            suite = (await client.get(f"/v1/suites/{suite_id}")).json()
            ids[:] = [
                run["simulation_id"]
                for s in suite["scenarios"]
                if s["name"] == scenario
                for run in s["runs"]
                if run.get("simulation_id")
            ]
            return len(ids) == runs

        await eventually(admitted, timeout_s=WAIT_MS / 1000, what=f"{scenario}'s runs admitted")
    for simulation_id in ids:
        isolated.bot.open(simulation_id)


async def test_a_pasted_suite_runs_with_its_verdicts_live_and_opens_any_member(
    isolated: IsolatedStack, chromium: Browser
) -> None:
    isolated.start_orchestrator("orchestrator-web-suites")
    start_judge(isolated)
    _, url = isolated.start_gateway("gateway-web-suites")
    watched = await open_page(chromium, url)
    page = watched.page
    await open_suites(page)
    await start_suite(page, SUITE_YAML)
    await expect(page).to_have_url(re.compile(r"#/suites/[A-Za-z0-9_-]+$"), timeout=WAIT_MS)
    suite_id = page.url.rsplit("/", 1)[-1]
    events_path = f"/v1/suites/{suite_id}/events"
    await eventually(  # live, while its runs wait at the bot
        lambda: any(events_path in u for u in watched.urls),
        timeout_s=WAIT_MS / 1000,
        what=f"the page to open {events_path}",
    )
    await open_gated_runs(isolated, url, suite_id, scenario="replies", runs=2)

    await expect(page.get_by_role("heading", name="Suite: pasted in the page")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("Completed", timeout=WAIT_MS)
    summary = page.locator("#suite-summary")
    await expect(summary).to_contain_text("3 of 3 runs ended")
    await expect(summary).to_contain_text("3 judged")
    await expect(summary).to_contain_text("pass rate 67%")
    await expect(summary).to_contain_text("pass^k 50%")
    replies = page.locator('#suite-rows tr[data-scenario="replies"]')
    meows = page.locator('#suite-rows tr[data-scenario="meows"]')
    await expect(replies.locator(".run")).to_have_text(
        ["Run 1: completed, pass", "Run 2: completed, pass"]
    )
    await expect(replies.locator(".scenario-result")).to_have_text("passed")
    await expect(meows.locator(".run")).to_have_text(["Run 1: completed, fail"])
    await expect(meows.locator(".scenario-result")).to_have_text("not passed")

    # The page shows what the API says.
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        suite = (await client.get(f"/v1/suites/{suite_id}")).json()
    assert suite["status"] == "completed"
    failed_run = suite["scenarios"][1]["runs"][0]
    assert failed_run["verdict"] == "fail"

    # The recent suites list has it; any member opens as an ordinary simulation.
    await expect(page.locator("#suites-list")).to_contain_text("pasted in the page")
    await meows.get_by_role("link", name="Run 1: completed, fail").click()
    await expect(page).to_have_url(re.compile(f"#/simulations/{failed_run['simulation_id']}$"))
    await expect(page.get_by_role("status")).to_have_text("Completed", timeout=WAIT_MS)
    await expect(page.locator("#bubbles .bubble .text")).to_have_text(
        ["hello", "Bot reply 1 to: hello"]
    )
    await expect(page.locator("#fact-suite")).to_have_text("meows, run 1")
    await page.locator("#fact-suite").click()  # and back to its suite
    await expect(page.get_by_role("status")).to_have_text("Completed", timeout=WAIT_MS)
    await expect(page.locator("#suite-rows tr")).to_have_count(2)
    watched.assert_no_errors()


async def test_a_bad_field_is_named_with_its_scenario_and_nothing_starts(
    stack: Stack, chromium: Browser
) -> None:
    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    await open_suites(page)
    await start_suite(
        page,
        "- name: too long\n  max_turns: 99\n  user: {opening: hi}\n"
        "- name: silent\n  user: {opening: ''}\n",
    )
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("scenarios[0] (“too long”).max_turns", timeout=WAIT_MS)
    await expect(alert).to_contain_text("50")
    await expect(alert).to_contain_text("scenarios[1] (“silent”)")
    await expect(page.get_by_label("Suite (YAML)")).to_have_attribute("aria-invalid", "true")
    assert "#/suites/" not in page.url
    assert watched.script_errors == []  # (the 422 itself is logged by the browser)


async def test_yaml_that_does_not_parse_is_named_by_line_before_anything_is_sent(
    stack: Stack, chromium: Browser
) -> None:
    watched = await open_page(chromium, stack.gateway_url)
    page = watched.page
    posted: list[str] = []
    page.on(
        "request", lambda request: posted.append(request.url) if request.method == "POST" else None
    )
    await open_suites(page)
    await start_suite(page, "scenarios:\n  - name: a\n    user: {opening: hi\n")
    await expect(page.get_by_role("alert")).to_contain_text("YAML line 4")
    await start_suite(page, "include: [other.yaml]\n")
    await expect(page.get_by_role("alert")).to_contain_text("include")
    await expect(page.get_by_label("Suite (YAML)")).to_have_attribute("aria-invalid", "true")
    assert posted == []
    assert "#/suites/" not in page.url
    assert watched.script_errors == []


async def test_the_page_reads_a_suite_file_as_the_cli_does(stack: Stack, chromium: Browser) -> None:
    """The YAML parser the page ships (js-yaml) and the CLI's loader agree on the examples and
    on the suite the view starts with."""
    watched = await open_page(chromium, f"{stack.gateway_url}/#/suites")
    page = watched.page
    await expect(page.get_by_role("heading", name="New suite")).to_be_visible()
    await expect(page.get_by_role("link", name="Suites", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    for example in ("examples/suite.yaml", "examples/demo-suite.yaml"):
        text = (REPO / example).read_text(encoding="utf-8")
        from_page = SuiteCreate.model_validate(await suite_body_in_the_page(page, text))
        assert from_page == load_suite([REPO / example]), example
    bare_list = await suite_body_in_the_page(page, "- name: a\n  user: {opening: hi}\n")
    assert bare_list == {"scenarios": [{"name": "a", "user": {"opening": "hi"}}]}
    prefilled = await page.get_by_label("Suite (YAML)").input_value()
    SuiteCreate.model_validate(await suite_body_in_the_page(page, prefilled))
    assert watched.script_errors == []

    # The parser is served like the page's own files.
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        for asset in ("/ui/js-yaml.min.js", "/ui/suites.js", "/ui/api.js"):
            response = await client.get(asset)
            assert response.status_code == 200, asset
            assert response.headers["cache-control"] == "no-cache"
            assert "javascript" in response.headers["content-type"]
