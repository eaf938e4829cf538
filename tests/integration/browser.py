"""A real headless Chromium (Debian's package) driven by Playwright, for the web page's tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

__all__ = ["WatchedPage", "chromium", "chromium_path", "open_page"]

# Without the background-networking flags Chromium keeps calling Google's hosts, which this
# closed network refuses; the page under test needs nothing but the gateway on loopback.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """CONVSIM_CHROMIUM, else Debian's chromium (what `make test` installs when it can)."""
    return (
        os.environ.get("CONVSIM_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no Chromium on this machine: `make test` installs Debian's chromium package when "
            "it runs as root or with sudo; or point CONVSIM_CHROMIUM at a Chromium binary"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class WatchedPage:
    """A page with what it did on the network and every error it reported."""

    page: Page
    urls: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    event_streams: list[Request] = field(default_factory=list)

    async def last_event_ids(self) -> list[str | None]:
        """The Last-Event-ID header of each events request (set by EventSource on reconnect)."""
        return [(await r.all_headers()).get("last-event-id") for r in self.event_streams]

    def assert_no_errors(self) -> None:
        assert self.script_errors == []
        assert self.console_errors == []


async def open_page(
    browser: Browser, url: str, *, width: int = 1200, height: int = 900, phone: bool = False
) -> WatchedPage:
    context = await browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone
    )
    page = await context.new_page()
    watched = WatchedPage(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.script_errors.append(str(error)))

    def on_request(request: Request) -> None:
        watched.urls.append(request.url)
        if "/events" in request.url:
            watched.event_streams.append(request)

    page.on("request", on_request)
    await page.goto(url)
    return watched
