"""The HTML report of `convsim suite run` in a real Chromium: it opens from the file alone
(nothing fetched), shows the summary, and the failing turn is there, marked and visible."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.fakes.server import serve_in_thread
from tests.fakes.suite_gateway import ASSERTION_FAILING, FakeSuiteGateway, canned_runs
from tests.integration.browser import chromium, open_page
from tests.integration.test_cli_suite import SUITE_FILE, convsim

pytestmark = pytest.mark.integration

__all__ = ["chromium"]  # the fixture, imported for pytest


@pytest.fixture
def html_report(tmp_path: Path) -> tuple[Path, FakeSuiteGateway]:
    """The report the CLI writes for the canned suite (one failing assertion, at bot reply 2)."""
    fake = FakeSuiteGateway(canned_runs())
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE_FILE, encoding="utf-8")
    html = tmp_path / "report.html"
    with serve_in_thread(fake.app()) as (url, _):
        done = convsim(url, "suite", "run", suite, "--html", html)
    assert done.returncode == 1, done.stdout + done.stderr
    return html, fake


async def test_the_html_report_opens_offline_with_the_failing_turn_marked(
    chromium: Browser, html_report: tuple[Path, FakeSuiteGateway]
) -> None:
    html, fake = html_report
    watched = await open_page(chromium, html.as_uri())
    page = watched.page

    await expect(page.locator("#pass-rate")).to_have_text("66.7%")
    await expect(page.locator("#pass-hat-k")).to_have_text("33.3%")
    await expect(page.locator("svg.histogram rect.bar").first).to_be_visible()

    failing = page.locator("li.turn.failing")
    await expect(failing).to_have_count(1)
    await expect(failing).to_be_visible()  # its run is open: it did not pass
    await expect(failing).to_contain_text("Next word: dog.")
    await expect(failing).to_contain_text(f"assertion failed: {ASSERTION_FAILING}")
    praises_1 = fake.runs[4].simulation_id
    await expect(failing).to_have_id(f"turn-{praises_1}-reply-2")
    background = await failing.evaluate("e => getComputedStyle(e).backgroundColor")
    passing_bot = page.locator(f"#run-{praises_1} li.turn.bot:not(.failing)").first
    assert background != await passing_bot.evaluate("e => getComputedStyle(e).backgroundColor")

    # The assertion's link leads to the turn.
    await page.locator(f'a[href="#turn-{praises_1}-reply-2"]').click()
    assert page.url.endswith(f"#turn-{praises_1}-reply-2")

    assert [url for url in watched.urls if not url.startswith("file://")] == []
    watched.assert_no_errors()
